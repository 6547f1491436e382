//! The Raft log on redb: one database file `<data-dir>/raft.redb` holding the log entries
//! (serde_json, keyed by index), the vote, the committed log id and the last purged log id.
//!
//! Every change commits a write transaction with immediate durability (fsync) before it is
//! reported done: an appended entry acknowledged to the leader survives `kill -9`. redb is
//! blocking, so every call runs on the blocking pool.

use super::{Entry, LogId, NodeId, StorageError, TypeConfig};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader, StorageIOError, Vote};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";

/// Why a log store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("raft log database: {0}")]
    Db(#[from] redb::Error),
    #[error("raft log record is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("raft log task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for LogStoreError {
            fn from(e: $t) -> Self { LogStoreError::Db(e.into()) }
        }
    )*};
}
redb_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// A handle on the log database; clones share it (the reader openraft asks for is a clone).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// Opens (or creates) the log database at `path` and makes sure its tables exist.
    pub fn open(path: &Path) -> Result<LogStore, LogStoreError> {
        let db = Database::create(path)?;
        let mut tx = db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        tx.open_table(LOGS)?;
        tx.open_table(META)?;
        tx.commit()?;
        Ok(LogStore { db: Arc::new(db) })
    }

    /// Whether nothing was ever written: no entry, nothing purged, no vote (a first start).
    pub fn is_pristine(&self) -> Result<bool, LogStoreError> {
        let tx = self.db.begin_read()?;
        let logs = tx.open_table(LOGS)?;
        let meta = tx.open_table(META)?;
        Ok(logs.is_empty()? && meta.get(KEY_PURGED)?.is_none() && meta.get(KEY_VOTE)?.is_none())
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, LogStoreError>,
    ) -> Result<T, LogStoreError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, LogStoreError> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        match meta.get(key)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<(), LogStoreError> {
        let bytes = serde_json::to_vec(value)?;
        self.write(|tx| {
            tx.open_table(META)?.insert(key, bytes.as_slice())?;
            Ok(())
        })
    }

    /// Appends entries in one durable transaction.
    pub fn append_entries(&self, entries: &[Entry]) -> Result<(), LogStoreError> {
        let encoded = entries
            .iter()
            .map(|e| Ok((e.log_id.index, serde_json::to_vec(e)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        self.write(|tx| {
            let mut logs = tx.open_table(LOGS)?;
            for (index, bytes) in &encoded {
                logs.insert(*index, bytes.as_slice())?;
            }
            Ok(())
        })
    }

    /// Entries with indexes in `range`, in order.
    pub fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry>, LogStoreError> {
        let tx = self.db.begin_read()?;
        let logs = tx.open_table(LOGS)?;
        let mut out = Vec::new();
        for item in logs.range::<u64>(range)? {
            let (_, v) = item?;
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }

    /// Deletes every entry at or after `index` (conflicting entries being replaced).
    pub fn truncate_from(&self, index: u64) -> Result<(), LogStoreError> {
        self.write(|tx| {
            tx.open_table(LOGS)?.retain_in(index.., |_, _| false)?;
            Ok(())
        })
    }

    /// Deletes every entry up to and including `log_id` and remembers it as the last purged.
    pub fn purge_upto(&self, log_id: &LogId) -> Result<(), LogStoreError> {
        let purged = serde_json::to_vec(log_id)?;
        self.write(|tx| {
            tx.open_table(LOGS)?
                .retain_in(..=log_id.index, |_, _| false)?;
            tx.open_table(META)?.insert(KEY_PURGED, purged.as_slice())?;
            Ok(())
        })
    }

    pub fn log_state(&self) -> Result<LogState<TypeConfig>, LogStoreError> {
        let last_purged: Option<LogId> = self.get_meta(KEY_PURGED)?;
        let last = {
            let tx = self.db.begin_read()?;
            let logs = tx.open_table(LOGS)?;
            match logs.last()? {
                Some((_, v)) => Some(serde_json::from_slice::<Entry>(v.value())?.log_id),
                None => None,
            }
        };
        Ok(LogState {
            last_log_id: last.or(last_purged),
            last_purged_log_id: last_purged,
        })
    }

    pub fn vote(&self) -> Result<Option<Vote<NodeId>>, LogStoreError> {
        self.get_meta(KEY_VOTE)
    }

    pub fn set_vote(&self, vote: &Vote<NodeId>) -> Result<(), LogStoreError> {
        self.put_meta(KEY_VOTE, vote)
    }

    pub fn committed(&self) -> Result<Option<LogId>, LogStoreError> {
        self.get_meta::<Option<LogId>>(KEY_COMMITTED)
            .map(Option::flatten)
    }

    pub fn set_committed(&self, committed: &Option<LogId>) -> Result<(), LogStoreError> {
        self.put_meta(KEY_COMMITTED, committed)
    }

    /// Runs a blocking store call off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LogStore) -> Result<T, LogStoreError> + Send + 'static,
    ) -> Result<T, LogStoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store)).await?
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let range = (range.start_bound().cloned(), range.end_bound().cloned());
        self.blocking(move |s| s.entries(range))
            .await
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.blocking(|s| s.log_state())
            .await
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(move |s| s.set_vote(&vote))
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.blocking(|s| s.vote())
            .await
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.blocking(move |s| s.set_committed(&committed))
            .await
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.blocking(|s| s.committed())
            .await
            .map_err(|e| StorageIOError::read(&e).into())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        // The transaction is committed with immediate durability before the callback runs.
        let result = self.blocking(move |s| s.append_entries(&entries)).await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |s| s.truncate_from(log_id.index))
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |s| s.purge_upto(&log_id))
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::{Command, Proposal};
    use dfs_proto::rest::Timestamp;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Proposal {
                now: Timestamp { sec: 1, nsec: 0 },
                cmd: Command::ExpireLeases,
            }),
        }
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store
            .entries((Bound::Unbounded, Bound::Unbounded))
            .expect("read entries")
            .iter()
            .map(|e| e.log_id.index)
            .collect()
    }

    #[test]
    fn append_truncate_purge_and_vote_survive_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("raft.redb");
        {
            let store = LogStore::open(&path).expect("open");
            assert!(store.is_pristine().expect("pristine"));
            let entries: Vec<Entry> = (1..=10).map(|i| entry(1, i)).collect();
            store.append_entries(&entries).expect("append");
            store.truncate_from(8).expect("truncate");
            store.purge_upto(&entry(1, 3).log_id).expect("purge");
            store.set_vote(&Vote::new(2, 1)).expect("vote");
            store
                .set_committed(&Some(entry(1, 6).log_id))
                .expect("committed");
        }
        let store = LogStore::open(&path).expect("reopen");
        assert!(!store.is_pristine().expect("pristine"));
        assert_eq!(indexes(&store), vec![4, 5, 6, 7]);
        let state = store.log_state().expect("state");
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(7));
        assert_eq!(store.vote().expect("vote"), Some(Vote::new(2, 1)));
        assert_eq!(
            store.committed().expect("committed").map(|l| l.index),
            Some(6)
        );
        let some = store
            .entries((Bound::Included(5), Bound::Excluded(7)))
            .expect("range");
        assert_eq!(some.len(), 2);
    }

    #[test]
    fn purging_everything_keeps_the_last_log_id() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = LogStore::open(&dir.path().join("raft.redb")).expect("open");
        store
            .append_entries(&[entry(1, 1), entry(2, 2)])
            .expect("append");
        store.purge_upto(&entry(2, 2).log_id).expect("purge");
        let state = store.log_state().expect("state");
        assert_eq!(state.last_log_id, Some(entry(2, 2).log_id));
        assert_eq!(state.last_purged_log_id, Some(entry(2, 2).log_id));
    }
}
