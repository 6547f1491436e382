//! High availability: the namenode group's status from openraft's metrics, adding and removing
//! namenodes at run time, promoting the survivor of a two-namenode group, and the request-id
//! middleware that lets a retried client request be
//! applied once (see `raft::dedup`).

use super::AppState;
use crate::node::REQUEST_ID;
use crate::raft::dedup::{MAX_REQUEST_ID_LEN, REQUEST_ID_HEADER};
use crate::raft::promote::{self, Promotion};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use dfs_proto::rest::{
    Empty, HaAddNodeRequest, HaMember, HaRemoveNodeRequest, HaStatusResponse, NamenodeRole,
};
use dfs_proto::{ApiError, ErrorCode, NamenodeId};
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long promote waits for the other namenode to accept a connection before taking it for
/// down.
const PEER_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the rest of the request with its `x-dfs-request-id` (if any) in [`REQUEST_ID`].
pub async fn with_request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID_LEN)
        .map(str::to_string);
    REQUEST_ID.scope(id, next.run(req)).await
}

/// Members, roles, term and log positions as this namenode sees them; the leader also knows
/// how far each member has replicated.
pub async fn status(node: AppState, _: Empty) -> Result<HaStatusResponse, ApiError> {
    let commit_index = node
        .raft
        .with_raft_state(|s| s.committed.map(|l| l.index))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("raft stopped: {e}")))?;
    let m = node.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(id, n)| {
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(id))
                .map(|l| l.map_or(0, |l| l.index));
            let role = if Some(*id) == m.current_leader {
                Some(NamenodeRole::Leader)
            } else if !voters.contains(id) {
                Some(NamenodeRole::Learner)
            } else if *id == node.id {
                Some(node.role())
            } else if m.current_leader.is_some() {
                Some(NamenodeRole::Follower)
            } else {
                None
            };
            let lag = match (m.last_log_index, matched) {
                (Some(last), Some(matched)) => Some(last.saturating_sub(matched)),
                _ => None,
            };
            HaMember {
                id: NamenodeId(*id),
                addr: n.addr.clone(),
                role,
                voter: voters.contains(id),
                matched,
                lag,
            }
        })
        .collect();
    Ok(HaStatusResponse {
        namenode: NamenodeId(node.id),
        role: node.role(),
        term: m.current_term,
        leader: m.current_leader.map(NamenodeId),
        last_log_index: m.last_log_index,
        commit_index,
        applied_index: m.last_applied.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
        members,
    })
}

fn membership_error(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> ApiError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            ApiError::not_leader(f.leader_node.map(|n| n.addr))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            e @ ChangeMembershipError::LearnerNotFound(_),
        )) => ApiError::new(ErrorCode::NotFound, e.to_string()),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ApiError::new(ErrorCode::Busy, e.to_string())
        }
        e => ApiError::new(ErrorCode::Unavailable, e.to_string()),
    }
}

/// Adds a namenode: first as a learner (the call returns once it has caught up, by log or by
/// snapshot), then as a voter.
pub async fn add(node: AppState, req: HaAddNodeRequest) -> Result<HaStatusResponse, ApiError> {
    node.require_leader()?;
    let id = req.id.0;
    if req.addr.trim().is_empty() {
        return Err(ApiError::new(ErrorCode::Invalid, "the address is empty"));
    }
    let basic = BasicNode {
        addr: req.addr.clone(),
    };
    tracing::info!(namenode = id, addr = %req.addr, "adding namenode as learner");
    node.raft
        .add_learner(id, basic, true)
        .await
        .map_err(membership_error)?;
    tracing::info!(namenode = id, "promoting namenode to voter");
    node.raft
        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
        .await
        .map_err(membership_error)?;
    status(node, Empty {}).await
}

/// Removes a namenode from the group (voter and node entry).
pub async fn remove(
    node: AppState,
    req: HaRemoveNodeRequest,
) -> Result<HaStatusResponse, ApiError> {
    node.require_leader()?;
    let id = req.id.0;
    let voters: BTreeSet<u64> = node
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    if !voters.contains(&id) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("namenode {id} is not a voter"),
        ));
    }
    if voters.len() == 1 {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            "cannot remove the last voter",
        ));
    }
    tracing::info!(namenode = id, "removing namenode");
    node.raft
        .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
        .await
        .map_err(membership_error)?;
    status(node, Empty {}).await
}

/// Makes this namenode the only voter of a two-namenode group whose other namenode is down
/// (`dfs admin ha promote`; see `raft::promote`). Refused unless the group has exactly two
/// voters, this is one of them, and the other does not accept connections. Answers this
/// namenode's status as the Raft node restarts in the new membership.
pub async fn promote(node: AppState, _: Empty) -> Result<HaStatusResponse, ApiError> {
    if node.is_leader() {
        return status(node, Empty {}).await;
    }
    let (me, other) = {
        let metrics = node.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        if !voters.contains(&node.id) {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!("namenode {} is not a voter: nothing to promote", node.id),
            ));
        }
        if voters.len() != 2 {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!(
                    "promote is for a group of two namenodes that lost one; this group has {} \
                     voters, and a majority of them elects a leader by itself",
                    voters.len()
                ),
            ));
        }
        let addr = |id: u64| membership.get_node(&id).map(|n| n.addr.clone());
        let other = voters
            .into_iter()
            .find(|&v| v != node.id)
            .unwrap_or(node.id);
        (addr(node.id), (other, addr(other)))
    };
    let (other_id, other_addr) = other;
    let Some(me) = me else {
        return Err(ApiError::new(
            ErrorCode::Io,
            "this namenode's address is missing from the membership",
        ));
    };
    if let Some(addr) = &other_addr
        && peer_accepts(addr).await
    {
        return Err(ApiError::new(
            ErrorCode::Busy,
            format!(
                "namenode {other_id} at {addr} still accepts connections: promoting now could \
                 split the group in two; stop it first"
            ),
        ));
    }
    let promotion = Promotion {
        node_id: node.id,
        addr: me,
    };
    let data_dir = node.data_dir.clone();
    tokio::task::spawn_blocking(move || promote::request(&data_dir, &promotion))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Io, e.to_string()))?
        .map_err(|e| ApiError::new(ErrorCode::Io, format!("record the promotion: {e}")))?;
    tracing::warn!(
        namenode = node.id,
        lost = other_id,
        "promoting this namenode to the only voter; restarting its raft node"
    );
    let answer = status(node.clone(), Empty {}).await;
    node.restart.cancel();
    answer
}

/// Whether something accepts TCP connections at `addr` within [`PEER_PROBE_TIMEOUT`].
async fn peer_accepts(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(PEER_PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}
