//! The conversation with one namenode: register (retrying with back-off until it answers),
//! send a full block report, then heartbeat every interval with `sleep_until` so the rhythm
//! does not drift. A reply with `reregister` starts over; commands in replies go to the
//! command worker; full reports repeat on their own interval; incremental reports go out as
//! soon as changes are recorded. A failing namenode is logged and retried, never fatal.
//!
//! Beside it runs a command poll ([`command_loop`]) that the namenode answers as soon as the
//! leader has work for this datanode.
//!
//! Fencing: every heartbeat and command poll answer carries the namenode's Raft term. Commands
//! are taken only from an answer whose term is at least the newest this datanode has seen from
//! any namenode, so a deposed leader (an older term) can no longer order deletes or copies.

use crate::Node;
use crate::commands::CommandQueue;
use crate::reports::{PendingReports, RestError};
use dfs_proto::DatanodeId;
use dfs_proto::rest::{
    BlockReport, BlockReportRequest, CommandPoll, CommandPollRequest, DatanodeCommand, Heartbeat,
    HeartbeatRequest, IncrementalBlockReport, RegisterDatanode, RegisterDatanodeRequest,
};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// One namenode's loop; returns when `shutdown` is cancelled.
#[tracing::instrument(skip_all, fields(namenode = %namenode))]
pub async fn namenode_loop(
    node: Arc<Node>,
    namenode: String,
    pending: Arc<PendingReports>,
    commands: CommandQueue,
    shutdown: CancellationToken,
) {
    let talk = Conversation {
        node: &node,
        namenode: &namenode,
        pending: &pending,
    };
    let interval = node.heartbeat_interval;
    'register: loop {
        if !talk.register(&shutdown).await {
            return;
        }
        let mut report_due = !talk.full_report().await;
        let mut next_beat = Instant::now() + interval;
        let mut next_report = Instant::now() + node.block_report_interval;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = sleep_until(next_beat) => {
                    next_beat += interval;
                    if next_beat < Instant::now() {
                        next_beat = Instant::now() + interval; // fell behind: do not burst
                    }
                    match talk.heartbeat().await {
                        Ok(reply) if reply.reregister => {
                            tracing::info!("namenode asked this datanode to register again");
                            continue 'register;
                        }
                        Ok(reply) => {
                            if failing {
                                tracing::info!("namenode answers heartbeats again");
                                failing = false;
                            }
                            hand_over(&node, &commands, reply.term, reply.commands);
                            if report_due {
                                report_due = !talk.full_report().await;
                            }
                            talk.incremental_report().await;
                        }
                        Err(e) => {
                            if !failing {
                                tracing::warn!(error = %e, "heartbeat failed; will retry");
                            }
                            failing = true;
                        }
                    }
                }
                _ = sleep_until(next_report) => {
                    next_report = Instant::now() + node.block_report_interval;
                    report_due = !talk.full_report().await;
                }
                _ = pending.notify.notified(), if !failing => {
                    talk.incremental_report().await;
                }
            }
        }
    }
}

/// How long a command poll asks the namenode to wait for work (well inside the REST timeout).
const POLL_WAIT: Duration = Duration::from_secs(5);
/// An empty poll answer sooner than this is taken as a failing namenode (it should have waited).
const POLL_TOO_SOON: Duration = Duration::from_millis(500);

/// Waits at one namenode for commands, over and over (a long poll), so work the leader plans
/// between heartbeats reaches this datanode at once. Heartbeat answers still carry commands:
/// each is handed out once, to whichever request asks first. Returns when `shutdown` is
/// cancelled.
#[tracing::instrument(skip_all, fields(namenode = %namenode))]
pub async fn command_loop(
    node: Arc<Node>,
    namenode: String,
    commands: CommandQueue,
    shutdown: CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let request = CommandPollRequest {
            id: node.store.datanode_id().clone(),
            wait_ms: POLL_WAIT.as_millis() as u64,
        };
        let asked = Instant::now();
        let answer = tokio::select! {
            _ = shutdown.cancelled() => return,
            answer = node.rest.post::<CommandPoll>(&namenode, &request) => answer,
        };
        match answer {
            Ok(reply) if !reply.commands.is_empty() || asked.elapsed() >= POLL_TOO_SOON => {
                backoff = FIRST_BACKOFF;
                hand_over(&node, &commands, reply.term, reply.commands);
                continue;
            }
            Ok(_) => tracing::debug!("namenode answered a command poll without waiting"),
            Err(e) => {
                tracing::debug!(error = %e, "command poll failed; heartbeats still carry commands")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Queues commands from a namenode answer, unless a newer term has been seen (fencing).
fn hand_over(node: &Node, queue: &CommandQueue, term: u64, commands: Vec<DatanodeCommand>) {
    if fence_admits(node.store.datanode_id(), term) {
        for command in commands {
            queue.submit(command);
        }
    } else if !commands.is_empty() {
        tracing::warn!(
            term,
            count = commands.len(),
            "ignoring commands from a namenode with an older term"
        );
    }
}

/// The newest namenode term each datanode of this process has seen (keyed by datanode id so
/// that datanodes run in-process by tests do not share it).
static NEWEST_TERM: LazyLock<Mutex<HashMap<DatanodeId, u64>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Records `term` and answers whether commands stamped with it may be carried out: only when no
/// namenode has shown a newer term.
fn fence_admits(datanode: &DatanodeId, term: u64) -> bool {
    let mut seen = NEWEST_TERM.lock().unwrap_or_else(|e| e.into_inner());
    let newest = seen.entry(datanode.clone()).or_insert(0);
    if term >= *newest {
        *newest = term;
        true
    } else {
        false
    }
}

/// What every step of the conversation needs.
struct Conversation<'a> {
    node: &'a Node,
    namenode: &'a str,
    pending: &'a PendingReports,
}

impl Conversation<'_> {
    /// Registers, retrying with back-off; false if shut down first.
    async fn register(&self, shutdown: &CancellationToken) -> bool {
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0u32;
        loop {
            let space = self.node.space().await;
            let request = RegisterDatanodeRequest {
                id: self.node.store.datanode_id().clone(),
                grpc_addr: self.node.grpc_addr.clone(),
                http_addr: self.node.http_addr.clone(),
                local_socket: self.node.local_socket.clone(),
                capacity: space.capacity,
                used: space.used,
                remaining: space.remaining,
            };
            match self
                .node
                .rest
                .post::<RegisterDatanode>(self.namenode, &request)
                .await
            {
                Ok(reply) => {
                    tracing::info!(namenode_id = %reply.namenode, "registered");
                    return true;
                }
                Err(e) => {
                    attempts += 1;
                    // Loud at first, then quiet: a namenode may be down for a long time.
                    if attempts <= 3 || attempts.is_multiple_of(30) {
                        tracing::warn!(error = %e, attempts, "registration failed; retrying");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Sends every replica held; false if the namenode did not take it.
    async fn full_report(&self) -> bool {
        // Changes recorded from here on are sent after; earlier ones are in the list.
        self.pending.clear();
        let store = Arc::clone(&self.node.store);
        let blocks = match tokio::task::spawn_blocking(move || store.list()).await {
            Ok(blocks) => blocks,
            Err(e) => {
                tracing::error!(error = %e, "listing replicas failed");
                return false;
            }
        };
        let count = blocks.len();
        let request = BlockReportRequest {
            id: self.node.store.datanode_id().clone(),
            blocks,
        };
        match self
            .node
            .rest
            .post::<BlockReport>(self.namenode, &request)
            .await
        {
            Ok(_) => {
                tracing::info!(blocks = count, "full block report sent");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "full block report failed; will retry");
                false
            }
        }
    }

    async fn heartbeat(&self) -> Result<dfs_proto::rest::HeartbeatResponse, RestError> {
        let space = self.node.space().await;
        let request = HeartbeatRequest {
            id: self.node.store.datanode_id().clone(),
            capacity: space.capacity,
            used: space.used,
            remaining: space.remaining,
            active_transfers: self.node.transfers.count(),
            block_count: self.node.store.block_count(),
        };
        let answer = self
            .node
            .rest
            .post::<Heartbeat>(self.namenode, &request)
            .await;
        self.node.metrics.heartbeats.count(answer.is_ok());
        self.node.metrics.upkeep_now_and_then();
        answer
    }

    /// Sends the changes recorded since the last report; on failure they wait for the next.
    async fn incremental_report(&self) {
        let Some(request) = self.pending.take(self.node.store.datanode_id()) else {
            return;
        };
        let (received, deleted) = (request.received.len(), request.deleted.len());
        match self
            .node
            .rest
            .post::<IncrementalBlockReport>(self.namenode, &request)
            .await
        {
            Ok(_) => tracing::debug!(received, deleted, "incremental block report sent"),
            Err(e) => {
                tracing::warn!(error = %e, "incremental block report failed; will retry");
                self.pending.restore(request);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_from_an_older_term_are_fenced_off() {
        let a = DatanodeId("fence-test-a".to_string());
        let b = DatanodeId("fence-test-b".to_string());
        assert!(fence_admits(&a, 3));
        assert!(fence_admits(&a, 3), "the same term still leads");
        assert!(!fence_admits(&a, 2), "a deposed leader is ignored");
        assert!(fence_admits(&a, 4));
        assert!(
            fence_admits(&b, 1),
            "each datanode keeps its own newest term"
        );
    }
}
