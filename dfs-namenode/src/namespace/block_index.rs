//! The derived index of live blocks: every (block id, generation) that is committed in a file or
//! pending in a lease. It answers [`ReplicaStatus`] for block reports without a scan, and is
//! rebuilt from the inodes and leases when a snapshot is loaded.

use super::ReplicaStatus;
use super::inode::Inode;
use super::lease::Lease;
use dfs_proto::{BlockId, Generation, InodeId};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct BlockIndex {
    /// Ordered so that every generation of one id is a contiguous range.
    live: BTreeSet<(BlockId, Generation)>,
}

impl BlockIndex {
    pub fn build(inodes: &BTreeMap<InodeId, Inode>, leases: &BTreeMap<InodeId, Lease>) -> Self {
        let mut index = BlockIndex::default();
        let committed = inodes
            .values()
            .filter_map(Inode::as_file)
            .flat_map(|f| f.blocks.iter());
        let pending = leases
            .values()
            .flat_map(|l| l.pending.iter().map(|p| &p.block));
        for block in committed.chain(pending) {
            if !block.is_hole() {
                index.insert(block.id, block.generation);
            }
        }
        index
    }

    pub fn insert(&mut self, id: BlockId, generation: Generation) {
        self.live.insert((id, generation));
    }

    pub fn remove(&mut self, id: BlockId, generation: Generation) {
        self.live.remove(&(id, generation));
    }

    /// Live, Stale (the id lives under another generation) or Orphan. The caller has already
    /// answered Unknown for ids beyond the allocation counter.
    pub fn status(&self, id: BlockId, generation: Generation) -> ReplicaStatus {
        if self.live.contains(&(id, generation)) {
            return ReplicaStatus::Live;
        }
        let mut generations = self
            .live
            .range((id, Generation(0))..=(id, Generation(u64::MAX)));
        if generations.next().is_some() {
            ReplicaStatus::Stale
        } else {
            ReplicaStatus::Orphan
        }
    }
}
