//! The Raft state machine: the namespace in memory, the last applied log id and membership, and
//! the current snapshot on disk.
//!
//! The state machine itself is not persisted between snapshots: on start it is loaded from the
//! newest snapshot and openraft replays the committed log entries after it. Blocks freed by each
//! applied batch go to the block map as delete commands. A snapshot holds the namespace and the
//! replies of recently applied client requests ([`RecentRequests`]), so that a retry is answered
//! the same way after a snapshot is installed.

use super::dedup::RecentRequests;
use super::proposer::Replies;
use super::snapshot_file::{SnapshotDir, SnapshotFileError};
use super::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::block_map::BlockMap;
use crate::namespace::{Namespace, NamespaceConfig};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A stored snapshot: its meta and its data, shared without copying.
type StoredSnapshot = (SnapshotMeta, Arc<Vec<u8>>);

/// The applied state.
#[derive(Debug)]
struct Applied {
    namespace: Namespace,
    recent: RecentRequests,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// What a snapshot file holds.
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotBody {
    namespace: Namespace,
    #[serde(default)]
    recent: RecentRequests,
}

/// A handle on the state machine; clones share it (openraft owns one, the API reads another).
#[derive(Clone)]
pub struct StateMachine {
    /// Lock order: never held while `blocks` is locked (the block map is updated after this
    /// lock is released).
    state: Arc<RwLock<Applied>>,
    snapshots: SnapshotDir,
    /// The snapshot last built or installed (also on disk), as openraft sends it to followers.
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    blocks: Arc<Mutex<BlockMap>>,
    /// Makes snapshot ids unique within this process.
    built: Arc<AtomicU64>,
}

/// Why the state machine could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    File(#[from] SnapshotFileError),
    #[error("snapshot {path} ({id}) is corrupt: it does not hold a valid namespace: {source}")]
    BadNamespace {
        path: std::path::PathBuf,
        id: String,
        source: serde_json::Error,
    },
}

/// Decodes a snapshot; one written before request ids existed holds only the namespace.
pub(crate) fn decode_snapshot(data: &[u8]) -> Result<SnapshotBody, serde_json::Error> {
    match serde_json::from_slice::<SnapshotBody>(data) {
        Ok(body) => Ok(body),
        Err(e) => match serde_json::from_slice::<Namespace>(data) {
            Ok(namespace) => Ok(SnapshotBody {
                namespace,
                recent: RecentRequests::default(),
            }),
            Err(_) => Err(e),
        },
    }
}

/// Locks the block map; a panicked holder cannot leave it half-updated in a harmful way (it
/// is soft state rebuilt from reports), so poisoning is ignored.
pub fn lock_blocks(blocks: &Mutex<BlockMap>) -> std::sync::MutexGuard<'_, BlockMap> {
    blocks.lock().unwrap_or_else(|e| e.into_inner())
}

impl StateMachine {
    /// Loads the newest snapshot from `snapshots`, or starts from an empty namespace when there
    /// is none. A snapshot that cannot be read is an error, never an empty namespace.
    pub fn open(
        snapshots: SnapshotDir,
        config: NamespaceConfig,
        blocks: Arc<Mutex<BlockMap>>,
    ) -> Result<StateMachine, LoadError> {
        let (applied, current) = match snapshots.load_newest()? {
            Some((meta, data, path)) => {
                let body = decode_snapshot(&data).map_err(|source| LoadError::BadNamespace {
                    path,
                    id: meta.snapshot_id.clone(),
                    source,
                })?;
                tracing::info!(snapshot = %meta.snapshot_id, "loaded namespace snapshot");
                let applied = Applied {
                    namespace: body.namespace,
                    recent: body.recent,
                    last_applied: meta.last_log_id,
                    membership: meta.last_membership.clone(),
                };
                (applied, Some((meta, Arc::new(data))))
            }
            None => (
                Applied {
                    namespace: Namespace::new(config),
                    recent: RecentRequests::default(),
                    last_applied: None,
                    membership: StoredMembership::default(),
                },
                None,
            ),
        };
        Ok(StateMachine {
            state: Arc::new(RwLock::new(applied)),
            snapshots,
            current: Arc::new(Mutex::new(current)),
            blocks,
            built: Arc::new(AtomicU64::new(0)),
        })
    }

    fn read_state(&self) -> RwLockReadGuard<'_, Applied> {
        // A panic inside `Namespace::apply` would poison the lock; the namespace promises to
        // leave its state unchanged on refusal, so reads carry on.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, Applied> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The last log entry reflected in the state (the loaded snapshot's, at start).
    pub fn last_applied(&self) -> Option<LogId> {
        self.read_state().last_applied
    }

    /// Runs a read against the current namespace.
    pub fn read<T>(&self, f: impl FnOnce(&Namespace) -> T) -> T {
        f(&self.read_state().namespace)
    }

    fn current_snapshot(&self) -> Option<StoredSnapshot> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_current(&self, meta: SnapshotMeta, data: Arc<Vec<u8>>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((meta, data));
    }

    /// Writes a snapshot to disk off the async runtime.
    async fn save(&self, meta: SnapshotMeta, data: Arc<Vec<u8>>) -> Result<(), StorageError> {
        let snapshots = self.snapshots.clone();
        let signature = meta.signature();
        let saved = {
            let data = data.clone();
            let meta = meta.clone();
            tokio::task::spawn_blocking(move || snapshots.save(&meta, &data))
                .await
                .map_err(|e| StorageIOError::write_snapshot(Some(signature.clone()), &e))?
        };
        saved.map_err(|e| StorageIOError::write_snapshot(Some(signature), &e))?;
        self.set_current(meta, data);
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (body, last_applied, membership) = {
            let state = self.read_state();
            let body = SnapshotBody {
                namespace: state.namespace.clone(),
                recent: state.recent.clone(),
            };
            (body, state.last_applied, state.membership.clone())
        };
        let data = tokio::task::spawn_blocking(move || serde_json::to_vec(&body))
            .await
            .map_err(|e| StorageIOError::read_state_machine(&e))?
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        let n = self.built.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{n}", l.leader_id.term, l.index),
            None => format!("0-0-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let data = Arc::new(data);
        self.save(meta.clone(), data.clone()).await?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data.as_ref().clone())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = self.read_state();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Replies>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let (replies, freed) = {
            let mut state = self.write_state();
            let mut replies = Vec::new();
            for entry in entries {
                state.last_applied = Some(entry.log_id);
                let reply = match entry.payload {
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Normal(batch) => batch
                        .requests
                        .into_iter()
                        .map(|req| match req.request_id {
                            Some(id) => match state.recent.get(&id) {
                                // A retry of a request already applied: answer as the first time.
                                Some(reply) => reply.clone(),
                                None => {
                                    let reply = state.namespace.apply(&req.proposal);
                                    state.recent.remember(id, req.proposal.now, reply.clone());
                                    reply
                                }
                            },
                            None => state.namespace.apply(&req.proposal),
                        })
                        .collect(),
                    EntryPayload::Membership(m) => {
                        state.membership = StoredMembership::new(Some(entry.log_id), m);
                        Vec::new()
                    }
                };
                replies.push(reply);
            }
            (replies, state.namespace.take_freed_blocks())
        };
        if !freed.is_empty() {
            lock_blocks(&self.blocks).free(&freed);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let body = decode_snapshot(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.save(meta.clone(), Arc::new(data)).await?;
        let mut state = self.write_state();
        state.namespace = body.namespace;
        state.recent = body.recent;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot from leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.current_snapshot().map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data.as_ref().clone())),
        }))
    }
}
