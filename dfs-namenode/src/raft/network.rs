//! Raft between namenodes over REST: `POST /raft/append`, `/raft/vote` and `/raft/snapshot`
//! with JSON bodies, answered with the JSON of openraft's `Result<response, RaftError>`.
//!
//! The client side shares one `reqwest::Client` (connect and request timeouts set) across all
//! peers. The server side is an axum router merged into the namenode's listener; its body limit
//! is [`RAFT_BODY_LIMIT`] (snapshots travel in chunks of openraft's `snapshot_max_chunk_size`,
//! 3 MiB by default, and append batches are bounded by `max_payload_entries`).

use super::{NodeId, Raft, TypeConfig};
use crate::api::error::ApiJson;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};
use dfs_proto::ClusterSecret;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes, RaftNetwork, RaftNetworkFactory};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::IpAddr;
use std::time::Duration;

/// Largest Raft request body a namenode accepts: 64 MiB, room for a snapshot chunk or a large
/// batch of log entries.
pub const RAFT_BODY_LIMIT: usize = 64 * 1024 * 1024;

pub const APPEND_PATH: &str = "/raft/append";
pub const VOTE_PATH: &str = "/raft/vote";
pub const SNAPSHOT_PATH: &str = "/raft/snapshot";

/// Builds the shared HTTP client for Raft traffic. With `source`, connections leave from that
/// address (the one this namenode listens on), so that traffic between two namenodes on one
/// host can be told apart and cut, as the partition tests do with loopback aliases.
///
/// With `secret`, every request carries the cluster credential (peers refuse Raft RPCs without);
/// with `tls`, requests go over HTTPS to peers whose certificate that CA signed.
pub fn http_client(
    source: Option<IpAddr>,
    secret: Option<&ClusterSecret>,
    tls: Option<&dfs_tls::ClientTls>,
) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(secret) = secret {
        let mut value = reqwest::header::HeaderValue::try_from(secret.authorization())?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(dfs_tls::http_client(tls)
        .default_headers(headers)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .local_address(source)
        .build()?)
}

/// Hands openraft one [`PeerClient`] per peer, all sharing one HTTP client.
#[derive(Clone)]
pub struct NetworkFactory {
    pub client: reqwest::Client,
    /// `http` or `https`, as `client` was built.
    pub scheme: &'static str,
    /// This node's id (reported in timeouts).
    pub node_id: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            client: self.client.clone(),
            scheme: self.scheme,
            node_id: self.node_id,
            target,
            addr: node.addr.clone(),
        }
    }
}

/// Raft calls to one peer.
pub struct PeerClient {
    client: reqwest::Client,
    scheme: &'static str,
    node_id: NodeId,
    target: NodeId,
    addr: String,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        action: RPCTypes,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let url = format!("{}://{}{}", self.scheme, self.addr, path);
        let ttl = option.hard_ttl();
        let sent = self.client.post(&url).timeout(ttl).json(req).send().await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) if e.is_timeout() => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.node_id,
                    target: self.target,
                    timeout: ttl,
                }));
            }
            // A refused connection is a plain network error, not `Unreachable`: openraft 0.9
            // answers `Unreachable` with a backoff after which replication to the peer stalls
            // until something else wakes it (seen: a restarted follower got no entries for
            // seconds, so it was still behind, and stood for election in vain, at the next
            // leader crash). Without it, the next heartbeat tick retries.
            Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            let err = std::io::Error::other(format!("{url} answered {status}: {body}"));
            return Err(RPCError::Network(NetworkError::new(&err)));
        }
        let answer: Result<Resp, RaftError<NodeId, E>> = resp
            .json()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.call(RPCTypes::AppendEntries, APPEND_PATH, &rpc, &option)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(RPCTypes::InstallSnapshot, SNAPSHOT_PATH, &rpc, &option)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(RPCTypes::Vote, VOTE_PATH, &rpc, &option).await
    }
}

async fn append(
    State(raft): State<Raft>,
    ApiJson(req): ApiJson<AppendEntriesRequest<TypeConfig>>,
) -> Json<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>> {
    Json(raft.append_entries(req).await)
}

async fn vote(
    State(raft): State<Raft>,
    ApiJson(req): ApiJson<VoteRequest<NodeId>>,
) -> Json<Result<VoteResponse<NodeId>, RaftError<NodeId>>> {
    Json(raft.vote(req).await)
}

async fn snapshot(
    State(raft): State<Raft>,
    ApiJson(req): ApiJson<InstallSnapshotRequest<TypeConfig>>,
) -> Json<Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>> {
    Json(raft.install_snapshot(req).await)
}

/// The Raft endpoints, with their own body limit.
pub fn routes(raft: Raft) -> Router {
    Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(SNAPSHOT_PATH, post(snapshot))
        .layer(DefaultBodyLimit::max(RAFT_BODY_LIMIT))
        .with_state(raft)
}
