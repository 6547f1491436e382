//! Keeping every committed block at its replication factor: the leader's replication monitor.
//!
//! Once a tick the leader looks at every committed block against the block map and the datanode
//! registry and plans ([`plan`]):
//! - a block with fewer counting replicas (good, on a live datanode in normal service) than
//!   wanted is queued by urgency, fewest counting replicas first, and copied from a good replica
//!   (a decommissioning datanode may be the source) to datanodes placement picks, as a
//!   `Replicate` command handed to the source in its next heartbeat answer. A source has at most
//!   [`ReplicationPolicy::streams_per_node`] copies outstanding; a copy not confirmed by its
//!   targets' block reports before its deadline is planned again;
//! - a replica reported corrupt is deleted once the block is back at its factor (or at once when
//!   no other datanode could take a copy, so its own datanode can);
//! - surplus replicas (a dead datanode came back) are trimmed, from the fullest datanodes;
//! - a decommissioning datanode whose every block has enough counting replicas elsewhere becomes
//!   decommissioned.
//!
//! A datanode's bandwidth for copies is throttled at the datanode itself.

use crate::block_map::BlockMap;
use crate::datanodes::{AdminState, DatanodeInfo};
use crate::events::{EventKind, LeaderWatch};
use crate::node::Node;
use crate::placement::choose_pipeline;
use dfs_proto::DatanodeId;
use dfs_proto::rest::BlockInfo;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

/// How often the leader plans replication work.
const TICK: Duration = Duration::from_secs(1);
/// A copy is presumed lost after this long, plus its length at [`SLOWEST_COPY`].
const COPY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes per second the slowest acceptable copy moves (sets copy deadlines).
const SLOWEST_COPY: u64 = 4 * 1024 * 1024;

/// How re-replication behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationPolicy {
    /// Fewest replicas a write may end with: pipeline recovery fails below it.
    pub min_replicas: u32,
    /// Copies one source datanode may have outstanding.
    pub streams_per_node: usize,
}

impl Default for ReplicationPolicy {
    fn default() -> Self {
        ReplicationPolicy {
            min_replicas: 1,
            streams_per_node: 8,
        }
    }
}

/// What one planning round did (for logs and tests).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PlanSummary {
    pub under_replicated: usize,
    pub copies_scheduled: usize,
    pub surplus_deleted: usize,
    pub corrupt_deleted: usize,
    /// Decommissioning datanodes whose blocks all have enough replicas elsewhere.
    pub decommissioned: Vec<DatanodeId>,
}

/// A block short of replicas, waiting for a copy.
struct Shortfall {
    block: BlockInfo,
    counting: usize,
    need: usize,
    sources: Vec<DatanodeId>,
    has_corrupt: bool,
}

/// One planning round over `blocks` (the committed blocks) and `nodes` (every datanode with
/// whether it is live). Queues commands in `map`.
pub fn plan(
    map: &mut BlockMap,
    blocks: &[BlockInfo],
    nodes: &[(DatanodeInfo, bool)],
    replication: u32,
    now: std::time::Instant,
    rng: &mut impl Rng,
) -> PlanSummary {
    let wanted = replication as usize;
    let info: HashMap<&DatanodeId, (&DatanodeInfo, bool)> =
        nodes.iter().map(|(i, live)| (&i.id, (i, *live))).collect();
    let is_live = |id: &DatanodeId| info.get(id).is_some_and(|(_, live)| *live);
    let counts = |id: &DatanodeId| {
        info.get(id)
            .is_some_and(|(i, live)| *live && i.admin == AdminState::Normal)
    };
    let mut summary = PlanSummary::default();
    let mut queue = Vec::new();
    let mut draining_unfinished: HashSet<DatanodeId> = HashSet::new();

    for block in blocks {
        let good: Vec<DatanodeId> = map
            .holders(block)
            .into_iter()
            .filter(|n| is_live(n))
            .collect();
        let counting: Vec<&DatanodeId> = good.iter().filter(|n| counts(n)).collect();
        let corrupt: Vec<DatanodeId> = map
            .corrupt_holders(block)
            .into_iter()
            .filter(|n| is_live(n))
            .collect();
        let pending = map.pending_targets(block, now).len();
        if counting.len() < wanted {
            summary.under_replicated += 1;
            for n in good.iter().filter(|n| !counts(n)) {
                draining_unfinished.insert(n.clone());
            }
        }
        if counting.len() >= wanted && !corrupt.is_empty() {
            for n in &corrupt {
                map.delete_replica(n, replica_of(block));
                summary.corrupt_deleted += 1;
            }
        }
        let effective = counting.len() + pending;
        if effective < wanted && !good.is_empty() {
            queue.push(Shortfall {
                block: *block,
                counting: counting.len(),
                need: wanted - effective,
                sources: good.clone(),
                has_corrupt: !corrupt.is_empty(),
            });
        } else if counting.len() > wanted && pending == 0 && corrupt.is_empty() {
            let mut extra: Vec<&DatanodeId> = counting.clone();
            // Trim from the fullest datanodes.
            extra.sort_by_key(|n| info.get(n).map_or(0, |(i, _)| i.remaining));
            for n in extra.into_iter().take(counting.len() - wanted) {
                map.delete_replica(n, replica_of(block));
                summary.surplus_deleted += 1;
            }
        }
    }

    // Most urgent first: fewest counting replicas, then fewest sources.
    queue.sort_by_key(|s| (s.counting, s.sources.len()));
    // Placement weighs datanodes by the transfers they last reported; the copies planned since
    // (earlier rounds' unconfirmed ones and this round's) count too, so that one round's copies
    // spread over the targets instead of piling onto whichever looked idlest at its start.
    let mut writable: Vec<DatanodeInfo> = nodes
        .iter()
        .filter(|(_, live)| *live)
        .map(|(i, _)| {
            let mut i = i.clone();
            i.active_transfers += (map.copies_to(&i.id) + map.copies_from(&i.id)) as u32;
            i
        })
        .collect();
    let mut outstanding: HashMap<DatanodeId, usize> = writable
        .iter()
        .map(|i| (i.id.clone(), map.copies_from(&i.id)))
        .collect();
    for s in queue {
        let Some(source) = s
            .sources
            .iter()
            .filter(|n| outstanding.get(*n).copied().unwrap_or(0) < map.policy.streams_per_node)
            .min_by_key(|n| outstanding.get(*n).copied().unwrap_or(0))
            .cloned()
        else {
            continue; // every source is busy: next round
        };
        let exclude = map.nodes_with_id(s.block.id);
        let targets = match choose_pipeline(&writable, s.block.len, s.need as u32, &exclude, rng) {
            Ok(targets) => targets,
            Err(_) => {
                // No datanode can take a copy: a corrupt replica's datanode can once it is gone.
                if s.has_corrupt && s.counting >= 1 {
                    for n in map.corrupt_holders(&s.block) {
                        map.delete_replica(&n, replica_of(&s.block));
                        summary.corrupt_deleted += 1;
                    }
                }
                continue;
            }
        };
        let deadline = now + copy_timeout(s.block.len);
        tracing::debug!(block = %s.block.id, %source, ?targets, live = s.counting, "scheduling copy");
        for n in writable.iter_mut() {
            if n.id == source || targets.iter().any(|t| t.id == n.id) {
                n.active_transfers += 1;
            }
        }
        map.schedule_copy(s.block, &source, targets, deadline);
        *outstanding.entry(source).or_default() += 1;
        summary.copies_scheduled += 1;
    }

    summary.decommissioned = nodes
        .iter()
        .filter(|(i, live)| *live && i.admin == AdminState::Decommissioning)
        .filter(|(i, _)| !draining_unfinished.contains(&i.id))
        .map(|(i, _)| i.id.clone())
        .collect();
    summary
}

/// Updates the replication metrics, and records an event when copies start being made and when
/// every block is back at its factor.
fn record_progress(node: &Node, summary: &PlanSummary, replicating: &mut bool) {
    node.metrics
        .replication_queue
        .set(summary.under_replicated as f64);
    node.metrics
        .copies_scheduled
        .increment(summary.copies_scheduled as u64);
    if !*replicating && summary.copies_scheduled > 0 {
        *replicating = true;
        tracing::info!(
            under_replicated = summary.under_replicated,
            "re-replication started"
        );
        node.events.push(
            EventKind::ReplicationStarted,
            format!(
                "{} block(s) short of replicas; copying",
                summary.under_replicated
            ),
        );
    } else if *replicating && summary.under_replicated == 0 {
        *replicating = false;
        tracing::info!(
            replication = node.settings.replication,
            "re-replication finished: every block is at its factor"
        );
        node.events.push(
            EventKind::ReplicationFinished,
            format!(
                "re-replication finished: every block has {} replicas",
                node.settings.replication
            ),
        );
    }
}

fn replica_of(block: &BlockInfo) -> dfs_proto::rest::ReplicaRef {
    dfs_proto::rest::ReplicaRef {
        id: block.id,
        generation: block.generation,
    }
}

fn copy_timeout(len: u64) -> Duration {
    COPY_TIMEOUT + Duration::from_secs(len / SLOWEST_COPY)
}

/// The leader's replication monitor; runs until `shutdown` is cancelled. Every namenode runs
/// it: each tick also notes datanodes lost and back and changes of leader as events for the
/// status page (`crate::events`), so followers record what they observe too.
pub async fn run(node: Arc<Node>, shutdown: CancellationToken) {
    let mut next = Instant::now() + TICK;
    let mut dead: HashSet<DatanodeId> = HashSet::new();
    let mut leader_watch = LeaderWatch::default();
    // Whether copies were scheduled and not every block is back at its factor (for events).
    let mut replicating = false;
    loop {
        // A datanode falling silent is acted on the moment it counts as dead, not a tick later.
        let death = node
            .datanodes
            .next_death()
            .map(|at| Instant::from_std(at) + Duration::from_millis(1));
        let wake = death.map_or(next, |d| d.min(next));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sleep_until(wake) => {}
        }
        if wake == next {
            next += TICK;
            if next < Instant::now() {
                next = Instant::now() + TICK;
            }
        }
        let nodes = node.datanodes.all();
        for (info, live) in &nodes {
            if !live && dead.insert(info.id.clone()) {
                tracing::warn!(datanode = %info.id, "datanode is dead; its replicas no longer count");
                let silent = info.last_heartbeat.elapsed().as_secs();
                node.events.push(
                    EventKind::DatanodeLost,
                    format!("datanode {} lost: no heartbeat for {silent} s", info.id),
                );
            } else if *live && dead.remove(&info.id) {
                tracing::info!(datanode = %info.id, "datanode is live again");
                node.events.push(
                    EventKind::DatanodeBack,
                    format!("datanode {} is live again", info.id),
                );
            }
        }
        leader_watch.observe(&node);
        if !node.is_leader() {
            replicating = false;
            node.metrics.replication_queue.set(0.0);
            continue;
        }
        let blocks: Vec<BlockInfo> = node.state.read(|ns| ns.committed_blocks().collect());
        let summary = {
            let mut map = node.blocks();
            plan(
                &mut map,
                &blocks,
                &nodes,
                node.settings.replication,
                std::time::Instant::now(),
                &mut rand::rng(),
            )
        };
        for id in &summary.decommissioned {
            if node.datanodes.set_admin(id, AdminState::Decommissioned) {
                tracing::info!(datanode = %id, "datanode decommissioned: safe to remove");
                node.events.push(
                    EventKind::Decommissioned,
                    format!("datanode {id} decommissioned: safe to remove"),
                );
            }
        }
        record_progress(&node, &summary, &mut replicating);
        if summary.copies_scheduled + summary.surplus_deleted + summary.corrupt_deleted > 0 {
            node.commands_ready.notify_waiters();
            tracing::info!(
                under_replicated = summary.under_replicated,
                copies = summary.copies_scheduled,
                surplus_deleted = summary.surplus_deleted,
                corrupt_deleted = summary.corrupt_deleted,
                "replication work planned"
            );
        }
    }
}

#[cfg(test)]
mod tests;
