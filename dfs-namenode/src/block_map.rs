//! The block map: which datanode holds which replica (block id, generation, length). Soft
//! state, never persisted, rebuilt from block reports. It also holds the leader's pending work
//! for datanodes: delete commands (for replicas the namespace calls stale or orphaned, blocks
//! the namespace freed, surplus and corrupt replicas) and replicate commands (planned by
//! [`replication`](crate::replication)), handed out in heartbeat answers; the replicas found
//! corrupt; and the copies handed out but not yet confirmed.
//!
//! The map does not read the namespace itself: callers classify reported replicas first (under
//! the namespace lock) and then update the map (under its own lock), so the two locks are never
//! held together.

use crate::namespace::ReplicaStatus;
use crate::replication::ReplicationPolicy;
use dfs_proto::rest::{BlockInfo, DatanodeAddr, DatanodeCommand, ReplicaRef};
use dfs_proto::{BlockId, DatanodeId, Generation};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// One replica on one datanode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub generation: Generation,
    pub len: u64,
}

/// A copy handed to a source datanode, not yet reported by every target.
#[derive(Debug, Clone)]
pub struct PendingCopy {
    pub generation: Generation,
    pub source: DatanodeId,
    pub targets: Vec<DatanodeId>,
    /// After this the copy is presumed lost and the block is planned again.
    pub deadline: Instant,
}

#[derive(Debug, Default)]
pub struct BlockMap {
    /// Block id -> datanode -> replicas (a node may briefly hold two generations of a block).
    replicas: HashMap<BlockId, HashMap<DatanodeId, Vec<Holder>>>,
    /// Datanode -> the replicas it holds (so a full report can replace that node's set).
    by_node: HashMap<DatanodeId, HashSet<ReplicaRef>>,
    /// Replicas each datanode should delete, not yet handed out.
    deletes: HashMap<DatanodeId, HashSet<ReplicaRef>>,
    /// Good replicas the leader decided to delete (surplus or corrupt): they no longer count
    /// or get read, until the datanode reports them gone.
    doomed: HashSet<(DatanodeId, ReplicaRef)>,
    /// Replicas reported as failing their checksums: never handed to readers, never a source.
    corrupt: HashSet<(DatanodeId, ReplicaRef)>,
    /// Replicate commands not yet handed out, by source datanode.
    replications: HashMap<DatanodeId, Vec<DatanodeCommand>>,
    /// Copies handed out and not yet confirmed, by block.
    copies: HashMap<BlockId, PendingCopy>,
    /// How re-replication behaves (set once at start).
    pub policy: ReplicationPolicy,
}

fn replica_ref(b: &BlockInfo) -> ReplicaRef {
    ReplicaRef {
        id: b.id,
        generation: b.generation,
    }
}

impl BlockMap {
    pub fn new() -> BlockMap {
        BlockMap::default()
    }

    pub fn with_policy(policy: ReplicationPolicy) -> BlockMap {
        BlockMap {
            policy,
            ..BlockMap::default()
        }
    }

    fn add(&mut self, node: &DatanodeId, block: &BlockInfo) {
        let holders = self
            .replicas
            .entry(block.id)
            .or_default()
            .entry(node.clone())
            .or_default();
        holders.retain(|h| h.generation != block.generation);
        holders.push(Holder {
            generation: block.generation,
            len: block.len,
        });
        self.by_node
            .entry(node.clone())
            .or_default()
            .insert(replica_ref(block));
        if let Some(copy) = self.copies.get_mut(&block.id)
            && copy.generation == block.generation
        {
            copy.targets.retain(|t| t != node);
            if copy.targets.is_empty() {
                self.copies.remove(&block.id);
            }
        }
    }

    fn remove(&mut self, node: &DatanodeId, r: &ReplicaRef) {
        if let Some(nodes) = self.replicas.get_mut(&r.id) {
            if let Some(holders) = nodes.get_mut(node) {
                holders.retain(|h| h.generation != r.generation);
                if holders.is_empty() {
                    nodes.remove(node);
                }
            }
            if nodes.is_empty() {
                self.replicas.remove(&r.id);
            }
        }
        if let Some(set) = self.by_node.get_mut(node) {
            set.remove(r);
        }
        if let Some(set) = self.deletes.get_mut(node) {
            set.remove(r);
        }
    }

    /// The replica is gone from the datanode: every mark on it goes too.
    fn forget_marks(&mut self, node: &DatanodeId, r: &ReplicaRef) {
        let key = (node.clone(), *r);
        self.doomed.remove(&key);
        self.corrupt.remove(&key);
    }

    fn reconcile(&mut self, node: &DatanodeId, block: &BlockInfo, status: ReplicaStatus) {
        match status {
            ReplicaStatus::Live | ReplicaStatus::Unknown => self.add(node, block),
            ReplicaStatus::Stale | ReplicaStatus::Orphan => {
                self.deletes
                    .entry(node.clone())
                    .or_default()
                    .insert(replica_ref(block));
            }
        }
    }

    /// A full report: replaces everything known about `node` with these replicas.
    pub fn full_report(&mut self, node: &DatanodeId, report: &[(BlockInfo, ReplicaStatus)]) {
        let old: Vec<ReplicaRef> = self
            .by_node
            .get(node)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for r in &old {
            self.remove(node, r);
        }
        // Deletes queued for replicas the node no longer has are done; marks on replicas it
        // no longer has are dropped; doomed replicas it still has are deleted again.
        let held: HashSet<ReplicaRef> = report.iter().map(|(b, _)| replica_ref(b)).collect();
        if let Some(q) = self.deletes.get_mut(node) {
            q.retain(|r| held.contains(r));
        }
        self.corrupt.retain(|(n, r)| n != node || held.contains(r));
        self.doomed.retain(|(n, r)| n != node || held.contains(r));
        let again: Vec<ReplicaRef> = self
            .doomed
            .iter()
            .filter(|(n, _)| n == node)
            .map(|(_, r)| *r)
            .collect();
        self.deletes.entry(node.clone()).or_default().extend(again);
        for (block, status) in report {
            self.reconcile(node, block, *status);
        }
    }

    /// An incremental report: replicas received and deleted since the last one.
    pub fn incremental_report(
        &mut self,
        node: &DatanodeId,
        received: &[(BlockInfo, ReplicaStatus)],
        deleted: &[ReplicaRef],
    ) {
        for r in deleted {
            self.remove(node, r);
            self.forget_marks(node, r);
        }
        for (block, status) in received {
            self.reconcile(node, block, *status);
        }
    }

    /// Blocks the namespace dropped: every node holding one of them is told to delete it.
    pub fn free(&mut self, blocks: &[BlockInfo]) {
        for block in blocks.iter().filter(|b| !b.is_hole()) {
            let r = replica_ref(block);
            let nodes: Vec<DatanodeId> = self
                .replicas
                .get(&block.id)
                .map(|nodes| {
                    nodes
                        .iter()
                        .filter(|(_, hs)| hs.iter().any(|h| h.generation == block.generation))
                        .map(|(n, _)| n.clone())
                        .collect()
                })
                .unwrap_or_default();
            for node in nodes {
                self.deletes.entry(node.clone()).or_default().insert(r);
            }
        }
    }

    /// Tells `node` to delete a good replica (surplus, or corrupt once a good copy exists). It
    /// stops counting at once.
    pub fn delete_replica(&mut self, node: &DatanodeId, r: ReplicaRef) {
        self.doomed.insert((node.clone(), r));
        self.deletes.entry(node.clone()).or_default().insert(r);
    }

    /// The deletes queued for `node`, handed out once.
    pub fn take_deletes(&mut self, node: &DatanodeId) -> Vec<ReplicaRef> {
        let mut out: Vec<ReplicaRef> = self
            .deletes
            .remove(node)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        out.sort_by_key(|r| (r.id, r.generation));
        out
    }

    /// The replicate commands queued for `node`, handed out once.
    pub fn take_replications(&mut self, node: &DatanodeId) -> Vec<DatanodeCommand> {
        self.replications.remove(node).unwrap_or_default()
    }

    /// Datanodes holding exactly this generation of the block, with at least its length, and
    /// neither corrupt nor being deleted: the replicas to read from.
    pub fn holders(&self, block: &BlockInfo) -> Vec<DatanodeId> {
        let r = replica_ref(block);
        let mut out: Vec<DatanodeId> = self
            .holders_any(block)
            .into_iter()
            .filter(|n| {
                let key = (n.clone(), r);
                !self.corrupt.contains(&key) && !self.doomed.contains(&key)
            })
            .collect();
        out.sort();
        out
    }

    /// Datanodes holding this generation with at least its length, whatever their marks.
    fn holders_any(&self, block: &BlockInfo) -> Vec<DatanodeId> {
        self.replicas
            .get(&block.id)
            .map(|nodes| {
                nodes
                    .iter()
                    .filter(|(_, hs)| {
                        hs.iter()
                            .any(|h| h.generation == block.generation && h.len >= block.len)
                    })
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Datanodes holding a replica of this block reported corrupt and not yet deleted.
    pub fn corrupt_holders(&self, block: &BlockInfo) -> Vec<DatanodeId> {
        let r = replica_ref(block);
        let mut out: Vec<DatanodeId> = self
            .holders_any(block)
            .into_iter()
            .filter(|n| {
                let key = (n.clone(), r);
                self.corrupt.contains(&key) && !self.doomed.contains(&key)
            })
            .collect();
        out.sort();
        out
    }

    /// Every datanode holding any replica of the block id (a copy must go elsewhere).
    pub fn nodes_with_id(&self, id: BlockId) -> Vec<DatanodeId> {
        self.replicas
            .get(&id)
            .map(|nodes| nodes.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Marks a replica corrupt (a reader or scrubber found a checksum mismatch). `false` if the
    /// map does not know that replica on that datanode.
    pub fn mark_corrupt(&mut self, node: &DatanodeId, r: ReplicaRef) -> bool {
        let known = self
            .replicas
            .get(&r.id)
            .and_then(|nodes| nodes.get(node))
            .is_some_and(|hs| hs.iter().any(|h| h.generation == r.generation));
        if known {
            self.corrupt.insert((node.clone(), r));
        }
        known
    }

    /// Targets of an unexpired copy of this block (an expired copy is forgotten).
    pub fn pending_targets(&mut self, block: &BlockInfo, now: Instant) -> Vec<DatanodeId> {
        match self.copies.get(&block.id) {
            Some(c) if c.generation == block.generation && c.deadline > now => c.targets.clone(),
            Some(_) => {
                self.copies.remove(&block.id);
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// Copies `node` was asked to send that are not confirmed yet.
    pub fn copies_from(&self, node: &DatanodeId) -> usize {
        self.copies.values().filter(|c| &c.source == node).count()
    }

    /// Copies `node` is to receive that are not confirmed yet.
    pub fn copies_to(&self, node: &DatanodeId) -> usize {
        self.copies
            .values()
            .filter(|c| c.targets.contains(node))
            .count()
    }

    /// Copies handed out and not confirmed yet.
    pub fn pending_copies(&self) -> usize {
        self.copies.len()
    }

    /// Queues a replicate command for `source` and remembers the copy until its targets report
    /// the replica or `deadline` passes.
    pub fn schedule_copy(
        &mut self,
        block: BlockInfo,
        source: &DatanodeId,
        targets: Vec<DatanodeAddr>,
        deadline: Instant,
    ) {
        self.copies.insert(
            block.id,
            PendingCopy {
                generation: block.generation,
                source: source.clone(),
                targets: targets.iter().map(|t| t.id.clone()).collect(),
                deadline,
            },
        );
        self.replications
            .entry(source.clone())
            .or_default()
            .push(DatanodeCommand::Replicate {
                block,
                targets,
                token: None,
            });
    }

    /// How many replicas the map records on `node`.
    pub fn replica_count(&self, node: &DatanodeId) -> u64 {
        self.by_node.get(node).map_or(0, |s| s.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(id: u64, generation: u64) -> BlockInfo {
        BlockInfo {
            id: BlockId(id),
            generation: Generation(generation),
            len: 10,
        }
    }

    fn dn(s: &str) -> DatanodeId {
        DatanodeId(s.into())
    }

    #[test]
    fn full_report_replaces_the_nodes_set() {
        let mut map = BlockMap::new();
        let live = ReplicaStatus::Live;
        map.full_report(&dn("a"), &[(block(1, 1), live), (block(2, 1), live)]);
        map.full_report(&dn("b"), &[(block(1, 1), live)]);
        assert_eq!(map.holders(&block(1, 1)), vec![dn("a"), dn("b")]);
        map.full_report(&dn("a"), &[(block(2, 1), live)]);
        assert_eq!(map.holders(&block(1, 1)), vec![dn("b")]);
        assert_eq!(map.replica_count(&dn("a")), 1);
        // Another generation is not a location of this one.
        assert!(map.holders(&block(2, 2)).is_empty());
    }

    #[test]
    fn stale_and_orphan_replicas_are_queued_for_deletion() {
        let mut map = BlockMap::new();
        map.full_report(
            &dn("a"),
            &[
                (block(1, 1), ReplicaStatus::Stale),
                (block(2, 1), ReplicaStatus::Orphan),
                (block(3, 1), ReplicaStatus::Unknown),
            ],
        );
        assert!(map.holders(&block(1, 1)).is_empty());
        assert_eq!(map.holders(&block(3, 1)), vec![dn("a")]);
        let deletes = map.take_deletes(&dn("a"));
        assert_eq!(deletes.len(), 2);
        assert!(map.take_deletes(&dn("a")).is_empty(), "handed out once");
    }

    #[test]
    fn freed_blocks_are_deleted_everywhere_and_incremental_reports_apply() {
        let mut map = BlockMap::new();
        let live = ReplicaStatus::Live;
        map.incremental_report(&dn("a"), &[(block(7, 2), live)], &[]);
        map.incremental_report(&dn("b"), &[(block(7, 2), live)], &[]);
        map.free(&[block(7, 2), BlockInfo::HOLE]);
        assert_eq!(map.take_deletes(&dn("a")).len(), 1);
        assert_eq!(map.take_deletes(&dn("b")).len(), 1);
        map.incremental_report(&dn("a"), &[], &[replica_ref(&block(7, 2))]);
        assert_eq!(map.holders(&block(7, 2)), vec![dn("b")]);
    }
}
