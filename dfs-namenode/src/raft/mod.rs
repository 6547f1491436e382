//! Raft plumbing: the openraft type configuration, the durable log store on redb, the state
//! machine that drives the namespace, and the REST transport between namenodes.

pub mod log_store;
pub mod network;
pub mod snapshot_file;
pub mod state_machine;

use crate::namespace::{Proposal, Reply};
use dfs_proto::ApiError;
use std::io::Cursor;

/// What applying one log entry answers: the namespace's reply or its refusal.
pub type Response = Result<Reply, ApiError>;

openraft::declare_raft_types!(
    /// The namenode's Raft types: log entries carry namespace proposals; nodes are REST
    /// addresses.
    pub TypeConfig:
        D = Proposal,
        R = Response,
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
