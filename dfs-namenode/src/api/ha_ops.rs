//! High availability: the namenode group's status from openraft's metrics, adding and removing
//! namenodes at run time, and the request-id middleware that lets a retried client request be
//! applied once (see `raft::dedup`).

use super::AppState;
use crate::node::REQUEST_ID;
use crate::raft::dedup::{MAX_REQUEST_ID_LEN, REQUEST_ID_HEADER};
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
