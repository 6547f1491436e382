//! One running namenode as the request handlers see it: its Raft handle, the state machine to
//! read from, and the soft datanode state. Proposing a command and making a read linearizable
//! live here, with their mapping of Raft errors to [`ApiError`].
//!
//! A proposal carries the client's request id when the request named one (the `REQUEST_ID`
//! task-local, set by the API's middleware), so that a retry is applied once.

use crate::block_map::BlockMap;
use crate::datanodes::Datanodes;
use crate::events::Events;
use crate::metrics::Metrics;
use crate::namespace::{Command, Namespace, Proposal, Reply};
use crate::raft::dedup::Request;
use crate::raft::proposer::Proposer;
use crate::raft::read_lease::ReadLease;
use crate::raft::state_machine::{StateMachine, lock_blocks};
use crate::raft::{NodeId, Raft};
use dfs_proto::rest::{NamenodeRole, Timestamp};
use dfs_proto::{ApiError, ErrorCode};
use openraft::ServerState;
use openraft::error::{CheckIsLeaderError, RaftError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a proposal may wait to be committed. A leader cut off from its followers cannot
/// commit; the client is answered `UNAVAILABLE` and retries elsewhere (with the same request id,
/// so the change is applied at most once even if this proposal commits later).
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(8);

tokio::task_local! {
    /// The id of the client request being handled (see `raft::dedup`).
    pub static REQUEST_ID: Option<String>;
}

/// Cluster-wide settings the API reports and placement uses.
#[derive(Debug, Clone)]
pub struct Settings {
    pub block_size: u64,
    pub replication: u32,
    pub lease_ms: u64,
    /// Most write leases one client may hold (checked before an open is proposed).
    pub max_leases_per_client: u32,
    /// Longest a REST request may take (see [`crate::api::request_timeout`]).
    pub request_timeout: std::time::Duration,
}

/// Shared by every handler and background task.
pub struct Node {
    pub id: NodeId,
    pub raft: Raft,
    /// Where changes are proposed (batched into log entries).
    pub proposer: Proposer,
    /// Reads served without a new leadership confirmation for a while after one.
    pub read_lease: ReadLease,
    /// The applied namespace (reads only; changes go through `raft`).
    pub state: StateMachine,
    pub datanodes: Datanodes,
    /// Soft replica locations and queued delete commands. Lock order: never taken while the
    /// namespace lock is held (see `StateMachine`).
    pub blocks: Arc<Mutex<BlockMap>>,
    /// Woken when the leader queues commands for datanodes, so that datanodes waiting in a
    /// command poll get them at once.
    pub commands_ready: tokio::sync::Notify,
    pub settings: Settings,
    /// Counters and histograms for `/metrics`.
    pub metrics: Metrics,
    /// Recent events for the status page.
    pub events: Events,
    /// The cluster credential requests must carry, and the block token signer.
    pub security: crate::api::auth::Security,
    /// Where the Raft log and snapshots live (a promotion marker is written there).
    pub data_dir: std::path::PathBuf,
    /// Cancelled to restart this namenode's Raft node in-process (after `ha promote`): the
    /// REST listener stays, everything else is built again from disk.
    pub restart: tokio_util::sync::CancellationToken,
}

/// The wall clock as a timestamp (the leader stamps proposals with it).
pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nsec: d.subsec_nanos(),
    }
}

impl Node {
    pub fn blocks(&self) -> MutexGuard<'_, BlockMap> {
        lock_blocks(&self.blocks)
    }

    /// The REST address of a namenode in the current membership.
    fn addr_of(&self, id: NodeId) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// The leader's REST address, when one is known.
    pub fn leader_addr(&self) -> Option<String> {
        let leader = self.raft.metrics().borrow().current_leader;
        leader.and_then(|id| self.addr_of(id))
    }

    /// The current Raft term as this node knows it.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.id)
    }

    /// This node's part in the group. `Leader` only once it takes writes ([`Node::is_leader`]):
    /// a node just elected, whose leadership is not yet established, still answers
    /// `NOT_LEADER`, so it reports itself a candidate until then.
    pub fn role(&self) -> NamenodeRole {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        match metrics.state {
            ServerState::Leader if metrics.current_leader == Some(self.id) => NamenodeRole::Leader,
            ServerState::Leader => NamenodeRole::Candidate,
            ServerState::Candidate => NamenodeRole::Candidate,
            ServerState::Learner => NamenodeRole::Learner,
            ServerState::Follower | ServerState::Shutdown => NamenodeRole::Follower,
        }
    }

    /// Fails with `NOT_LEADER` (and the leader's address) unless this node leads.
    pub fn require_leader(&self) -> Result<(), ApiError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(ApiError::not_leader(self.leader_addr()))
        }
    }

    /// Proposes a command stamped with this node's clock and waits until it is committed and
    /// applied (batched with whatever else is being proposed); answers what the namespace
    /// answered.
    pub async fn propose(&self, cmd: Command) -> Result<Reply, ApiError> {
        let request = Request {
            proposal: Proposal {
                now: now(),
                cmd,
                // Who asked: every namenode checks permissions against it when applying.
                caller: crate::api::caller::current(),
            },
            request_id: REQUEST_ID.try_with(Clone::clone).ok().flatten(),
        };
        self.proposer.propose(request).await
    }

    /// Runs a read on the namespace after confirming leadership with a quorum and catching up
    /// with the log (or under the lease of a recent confirmation), so the read sees every
    /// acknowledged change.
    pub async fn read<T>(
        &self,
        f: impl FnOnce(&Namespace) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        if self.read_lease.holds(&self.raft) {
            return self.state.read(f);
        }
        let asked = std::time::Instant::now();
        let term = self.term();
        let confirmed =
            tokio::time::timeout(PROPOSE_TIMEOUT, self.raft.ensure_linearizable()).await;
        let Ok(confirmed) = confirmed else {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "leadership could not be confirmed in time (no quorum?)",
            ));
        };
        match confirmed {
            Ok(_) => {
                // Confirmed in `term` only if the term did not move meanwhile.
                if self.term() == term {
                    self.read_lease.confirmed(term, asked);
                }
                self.state.read(f)
            }
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(fw))) => {
                Err(ApiError::not_leader(
                    fw.leader_node
                        .map(|n| n.addr)
                        .or_else(|| self.leader_addr()),
                ))
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q))) => Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("no quorum: {q}"),
            )),
            Err(e) => Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("namenode is not serving: {e}"),
            )),
        }
    }
}

/// The namespace answered with an unexpected kind of reply (a bug, not a user error).
pub fn unexpected(reply: Reply) -> ApiError {
    ApiError::new(
        ErrorCode::Io,
        format!("internal error: unexpected namespace reply {reply:?}"),
    )
}
