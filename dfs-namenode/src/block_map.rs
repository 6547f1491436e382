//! The block map: which datanode holds which replica (block id, generation, length). Soft
//! state, never persisted, rebuilt from block reports. It also queues the delete commands the
//! leader hands each datanode in its heartbeat answers: for replicas the namespace calls stale
//! or orphaned, and for blocks the namespace freed.
//!
//! The map does not read the namespace itself: callers classify reported replicas first (under
//! the namespace lock) and then update the map (under its own lock), so the two locks are never
//! held together.

use crate::namespace::ReplicaStatus;
use dfs_proto::rest::{BlockInfo, ReplicaRef};
use dfs_proto::{BlockId, DatanodeId, Generation};
use std::collections::{HashMap, HashSet};

/// One replica on one datanode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub generation: Generation,
    pub len: u64,
}

#[derive(Debug, Default)]
pub struct BlockMap {
    /// Block id -> datanode -> replicas (a node may briefly hold two generations of a block).
    replicas: HashMap<BlockId, HashMap<DatanodeId, Vec<Holder>>>,
    /// Datanode -> the replicas it holds (so a full report can replace that node's set).
    by_node: HashMap<DatanodeId, HashSet<ReplicaRef>>,
    /// Replicas each datanode should delete, not yet handed out.
    deletes: HashMap<DatanodeId, HashSet<ReplicaRef>>,
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
        // Deletes queued for replicas the node no longer has are done.
        let held: HashSet<ReplicaRef> = report.iter().map(|(b, _)| replica_ref(b)).collect();
        if let Some(q) = self.deletes.get_mut(node) {
            q.retain(|r| held.contains(r));
        }
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

    /// Datanodes holding exactly this generation of the block, with at least its length.
    pub fn holders(&self, block: &BlockInfo) -> Vec<DatanodeId> {
        let mut out: Vec<DatanodeId> = self
            .replicas
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
            .unwrap_or_default();
        out.sort();
        out
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
