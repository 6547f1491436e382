//! Raft plumbing: the openraft type configuration, the durable log store on redb, the state
//! machine that drives the namespace, exactly-once application of retried requests, and the
//! REST transport between namenodes.

pub mod dedup;
#[cfg(test)]
mod fuzz_tests;
pub mod log_store;
pub mod log_writer;
pub mod network;
pub mod promote;
pub mod proposer;
pub mod read_lease;
pub mod snapshot_file;
pub mod state_machine;

use crate::namespace::Reply;
use dfs_proto::ApiError;
use std::io::Cursor;

/// What applying one proposal answers: the namespace's reply or its refusal.
pub type Response = Result<Reply, ApiError>;

openraft::declare_raft_types!(
    /// The namenode's Raft types: log entries carry batches of namespace proposals (each with
    /// its client's request id) and answer one reply per proposal; nodes are REST addresses.
    pub TypeConfig:
        D = proposer::Batch,
        R = proposer::Replies,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
