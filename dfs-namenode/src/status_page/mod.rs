//! `GET /`: the namenode status page, plain server-rendered HTML (no script, no build step).
//!
//! It shows the cluster summary, the namenodes with their role and replication lag, every
//! datanode with its state, capacity and last heartbeat, block health and the recent events.
//! Opened on a follower it redirects to the leader's page, since the leader's view (its block
//! map, its replication work) is the one that counts; `/?local=1` shows a follower's own view,
//! as does any namenode while no leader is known. The page reloads itself every few seconds.
//! [`html`] renders a [`View`]; everything rendered is escaped there.

mod html;

use crate::api::AppState;
use crate::events::Event;
use crate::metrics::{BlockHealth, datanode_state};
use crate::node::Node;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use dfs_proto::rest::{DatanodeState, Empty, HaStatusResponse, NamenodeRole};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// What the page's query string may say.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// Present: show this namenode's own view even if it is not the leader.
    local: Option<String>,
}

/// One datanode's row.
#[derive(Debug, Clone)]
pub struct DatanodeRow {
    pub id: String,
    pub grpc_addr: String,
    pub http_addr: String,
    pub state: DatanodeState,
    pub capacity: u64,
    pub used: u64,
    pub remaining: u64,
    pub blocks: u64,
    pub active_transfers: u32,
    pub since_heartbeat: Duration,
}

/// Everything the page shows, gathered from the namenode's state in one go.
#[derive(Debug, Clone)]
pub struct View {
    pub node_id: u64,
    pub role: NamenodeRole,
    /// The leader's REST address when this namenode knows one.
    pub leader_addr: Option<String>,
    /// `None` when Raft could not be asked (it is shutting down).
    pub ha: Option<HaStatusResponse>,
    pub datanodes: Vec<DatanodeRow>,
    pub files: u64,
    pub directories: u64,
    pub health: BlockHealth,
    pub replication: u32,
    pub block_size: u64,
    pub events: Vec<Event>,
}

impl View {
    pub async fn gather(node: &AppState) -> View {
        let ha = crate::api::ha_ops::status(node.clone(), Empty {})
            .await
            .ok();
        let now = Instant::now();
        let all = node.datanodes.all();
        let datanodes = {
            let map = node.blocks();
            all.into_iter()
                .map(|(d, live)| DatanodeRow {
                    id: d.id.to_string(),
                    state: datanode_state(live, d.admin),
                    blocks: map.replica_count(&d.id),
                    grpc_addr: d.grpc_addr,
                    http_addr: d.http_addr,
                    capacity: d.capacity,
                    used: d.used,
                    remaining: d.remaining,
                    active_transfers: d.active_transfers,
                    since_heartbeat: now.saturating_duration_since(d.last_heartbeat),
                })
                .collect()
        };
        let stats = node.state.read(|ns| ns.stats());
        View {
            node_id: node.id,
            role: node.role(),
            leader_addr: node.leader_addr(),
            ha,
            datanodes,
            files: stats.files,
            directories: stats.directories,
            health: BlockHealth::measure(node),
            replication: node.settings.replication,
            block_size: node.settings.block_size,
            events: node.events.recent(),
        }
    }
}

/// Where a follower sends the browser: the leader's page, unless asked for its own view. The
/// URL (like the page's links) has no scheme, so the browser keeps the one it came with: `https`
/// when the cluster serves TLS, `http` otherwise.
fn leader_redirect(node: &Node, query: &PageQuery) -> Option<String> {
    if query.local.is_some() || node.is_leader() {
        return None;
    }
    node.leader_addr().map(|addr| format!("//{addr}/"))
}

/// `GET /`.
pub async fn page(State(node): State<AppState>, Query(query): Query<PageQuery>) -> Response {
    if let Some(url) = leader_redirect(&node, &query) {
        return Redirect::temporary(&url).into_response();
    }
    let view = View::gather(&node).await;
    Html(html::render(&view)).into_response()
}
