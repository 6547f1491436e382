//! The Raft log on redb: one database file `<data-dir>/raft.redb` holding the log entries
//! (serde_json, keyed by index), the vote, the committed log id and the last purged log id.
//!
//! Every change is committed with immediate durability (fsync) before it is reported done: an
//! appended entry acknowledged to the leader survives `kill -9`. Changes go through the
//! [`LogWriter`](super::log_writer::LogWriter) thread, which commits whatever has queued up as one
//! transaction (group commit); reads run on the blocking pool and see queued entries too.

use super::log_writer::LogWriter;
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
    #[error("raft log is inconsistent: {0}")]
    Inconsistent(String),
    #[error("raft log commit failed: {0}")]
    Batch(String),
    #[error("the raft log writer has stopped")]
    Stopped,
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

/// The log database: reads, and the changes a [`LogWriter`] batches into one transaction.
pub struct LogDb {
    /// Dropped by hand (see `Drop`): closing a damaged file can panic inside redb.
    db: std::mem::ManuallyDrop<Database>,
}

impl Drop for LogDb {
    /// Closes the database; redb's own close panics on some damaged files (an unwrap in its page
    /// allocator), which is caught so that a damaged log ends the start with its error, not a
    /// panic.
    fn drop(&mut self) {
        // SAFETY: `db` is taken exactly once, here, and never used afterwards.
        let db = unsafe { std::mem::ManuallyDrop::take(&mut self.db) };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db))).is_err() {
            tracing::warn!("closing the raft log failed (the file is damaged)");
        }
    }
}

/// The Raft log openraft drives; clones share the database and the writer thread (the reader
/// openraft asks for is a clone).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<LogDb>,
    writer: Arc<LogWriter>,
}

impl LogStore {
    /// Opens (or creates) the log database at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<LogStore, LogStoreError> {
        let db = Arc::new(LogDb::open(path)?);
        let writer =
            LogWriter::start(db.clone()).map_err(|e| LogStoreError::Batch(e.to_string()))?;
        Ok(LogStore {
            db,
            writer: Arc::new(writer),
        })
    }

    /// Whether nothing was ever written: no entry, nothing purged, no vote (a first start).
    pub fn is_pristine(&self) -> Result<bool, LogStoreError> {
        self.db.is_pristine()
    }

    /// Reads the whole log back at start: every record must decode, indexes must follow one
    /// another from just after the last purged entry. Answers the last purged log id.
    pub fn check(&self) -> Result<Option<LogId>, LogStoreError> {
        self.db.check()
    }

    /// Durable entries with indexes in `range`, overlaid with those still queued.
    fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry>, LogStoreError> {
        let mut by_index: std::collections::BTreeMap<u64, Entry> = self
            .db
            .entries(range)?
            .into_iter()
            .map(|e| (e.log_id.index, e))
            .collect();
        for e in self.writer.unflushed().range(range) {
            by_index.insert(e.log_id.index, e);
        }
        Ok(by_index.into_values().collect())
    }

    fn log_state(&self) -> Result<LogState<TypeConfig>, LogStoreError> {
        let mut state = self.db.log_state()?;
        if let Some(queued) = self.writer.unflushed().last() {
            state.last_log_id = state.last_log_id.max(Some(queued));
        }
        Ok(state)
    }

    /// Runs a blocking read off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LogStore) -> Result<T, LogStoreError> + Send + 'static,
    ) -> Result<T, LogStoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store)).await?
    }
}

/// The changes of one group commit, applied to its write transaction.
pub struct Batch<'a> {
    tx: &'a redb::WriteTransaction,
}

impl Batch<'_> {
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), LogStoreError> {
        let mut logs = self.tx.open_table(LOGS)?;
        for e in entries {
            logs.insert(e.log_id.index, serde_json::to_vec(e)?.as_slice())?;
        }
        Ok(())
    }

    pub fn truncate_from(&mut self, index: u64) -> Result<(), LogStoreError> {
        self.tx.open_table(LOGS)?.retain_in(index.., |_, _| false)?;
        Ok(())
    }

    pub fn purge_upto(&mut self, log_id: &LogId) -> Result<(), LogStoreError> {
        self.tx
            .open_table(LOGS)?
            .retain_in(..=log_id.index, |_, _| false)?;
        self.put_meta(KEY_PURGED, log_id)
    }

    pub fn vote(&mut self, vote: &Vote<NodeId>) -> Result<(), LogStoreError> {
        self.put_meta(KEY_VOTE, vote)
    }

    pub fn committed(&mut self, committed: &Option<LogId>) -> Result<(), LogStoreError> {
        self.put_meta(KEY_COMMITTED, committed)
    }

    fn put_meta<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), LogStoreError> {
        let bytes = serde_json::to_vec(value)?;
        self.tx.open_table(META)?.insert(key, bytes.as_slice())?;
        Ok(())
    }
}

/// Runs `f`, turning a panic inside redb into an error: redb panics on some damaged files
/// ("Malformed allocator state", unwraps in its page allocator), and a damaged log must stop the
/// start with a message, not a panic.
fn unpanic<T>(f: impl FnOnce() -> Result<T, LogStoreError>) -> Result<T, LogStoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into());
        Err(LogStoreError::Inconsistent(format!(
            "the database file is damaged: {what}"
        )))
    })
}

impl LogDb {
    /// Opens (or creates) the log database at `path` and makes sure its tables exist.
    ///
    /// redb panics on some damaged files ("Malformed allocator state"); that is caught here and
    /// answered as an error, so a damaged log stops the start with a message, not a panic.
    pub fn open(path: &Path) -> Result<LogDb, LogStoreError> {
        unpanic(|| {
            let log = LogDb {
                db: std::mem::ManuallyDrop::new(Database::create(path)?),
            };
            let mut tx = log.db.begin_write()?;
            tx.set_durability(Durability::Immediate)?;
            tx.open_table(LOGS)?;
            tx.open_table(META)?;
            tx.commit()?;
            Ok(log)
        })
    }

    /// Applies `f`'s changes in one transaction and fsyncs it.
    pub fn commit_batch(
        &self,
        f: impl FnOnce(&mut Batch<'_>) -> Result<(), LogStoreError>,
    ) -> Result<(), LogStoreError> {
        unpanic(|| {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(Durability::Immediate)?;
            f(&mut Batch { tx: &tx })?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Whether nothing was ever written: no entry, nothing purged, no vote (a first start).
    pub fn is_pristine(&self) -> Result<bool, LogStoreError> {
        unpanic(|| {
            let tx = self.db.begin_read()?;
            let logs = tx.open_table(LOGS)?;
            let meta = tx.open_table(META)?;
            Ok(
                logs.is_empty()?
                    && meta.get(KEY_PURGED)?.is_none()
                    && meta.get(KEY_VOTE)?.is_none(),
            )
        })
    }

    /// See [`LogStore::check`]. redb's iterator panics on some damaged pages: an error here.
    pub fn check(&self) -> Result<Option<LogId>, LogStoreError> {
        unpanic(|| self.check_entries())
    }

    fn check_entries(&self) -> Result<Option<LogId>, LogStoreError> {
        let purged: Option<LogId> = self.get_meta(KEY_PURGED)?;
        self.get_meta::<Vote<NodeId>>(KEY_VOTE)?;
        self.get_meta::<Option<LogId>>(KEY_COMMITTED)?;
        let tx = self.db.begin_read()?;
        let logs = tx.open_table(LOGS)?;
        let mut expect = purged.map(|p| p.index + 1);
        for item in logs.iter()? {
            let (key, v) = item?;
            let entry: Entry = serde_json::from_slice(v.value())?;
            let index = key.value();
            if entry.log_id.index != index {
                return Err(LogStoreError::Inconsistent(format!(
                    "record at index {index} holds entry {}",
                    entry.log_id.index
                )));
            }
            if let Some(want) = expect
                && want != index
            {
                return Err(LogStoreError::Inconsistent(format!(
                    "entry {want} is missing (next entry is {index})"
                )));
            }
            expect = Some(index + 1);
        }
        Ok(purged)
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, LogStoreError> {
        unpanic(|| {
            let tx = self.db.begin_read()?;
            let meta = tx.open_table(META)?;
            match meta.get(key)? {
                Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
                None => Ok(None),
            }
        })
    }

    /// Entries with indexes in `range`, in order.
    pub fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry>, LogStoreError> {
        unpanic(|| {
            let tx = self.db.begin_read()?;
            let logs = tx.open_table(LOGS)?;
            let mut out = Vec::new();
            for item in logs.range::<u64>(range)? {
                let (_, v) = item?;
                out.push(serde_json::from_slice(v.value())?);
            }
            Ok(out)
        })
    }

    pub fn log_state(&self) -> Result<LogState<TypeConfig>, LogStoreError> {
        unpanic(|| {
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
        })
    }

    pub fn vote(&self) -> Result<Option<Vote<NodeId>>, LogStoreError> {
        self.get_meta(KEY_VOTE)
    }

    pub fn committed(&self) -> Result<Option<LogId>, LogStoreError> {
        self.get_meta::<Option<LogId>>(KEY_COMMITTED)
            .map(Option::flatten)
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
        self.writer
            .save_vote(vote)
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.blocking(|s| s.db.vote())
            .await
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.writer.save_committed(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.blocking(|s| s.db.committed())
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
        // Readable at once; `callback` runs once the writer has committed them.
        self.writer.append(entries.into_iter().collect(), callback);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.writer
            .truncate_from(log_id.index)
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.writer
            .purge_upto(log_id)
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::{Command, Proposal};
    use crate::raft::dedup::Request;
    use crate::raft::proposer::Batch;
    use dfs_proto::rest::Timestamp;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Batch {
                requests: vec![Request {
                    proposal: Proposal {
                        now: Timestamp { sec: 1, nsec: 0 },
                        cmd: Command::ExpireLeases,
                        caller: dfs_proto::Identity::root(),
                    },
                    request_id: None,
                }],
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

    #[tokio::test]
    async fn append_truncate_purge_and_vote_survive_reopen() {
        use openraft::storage::RaftLogStorageExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("raft.redb");
        {
            let mut store = LogStore::open(&path).expect("open");
            assert!(store.is_pristine().expect("pristine"));
            let entries: Vec<Entry> = (1..=10).map(|i| entry(1, i)).collect();
            store.blocking_append(entries).await.expect("append");
            store.truncate(entry(1, 8).log_id).await.expect("truncate");
            store.purge(entry(1, 3).log_id).await.expect("purge");
            store.save_vote(&Vote::new(2, 1)).await.expect("vote");
            store
                .save_committed(Some(entry(1, 6).log_id))
                .await
                .expect("committed");
            // Dropping the last handle waits for the writer: the database closes.
        }
        let mut store = LogStore::open(&path).expect("reopen");
        assert!(!store.is_pristine().expect("pristine"));
        assert_eq!(indexes(&store), vec![4, 5, 6, 7]);
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(7));
        assert_eq!(
            store.read_vote().await.expect("vote"),
            Some(Vote::new(2, 1))
        );
        assert_eq!(
            store
                .read_committed()
                .await
                .expect("committed")
                .map(|l| l.index),
            Some(6)
        );
        let some = store.try_get_log_entries(5..7).await.expect("range");
        assert_eq!(some.len(), 2);
    }

    #[test]
    fn check_finds_gaps_misplaced_and_undecodable_records() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = LogDb::open(&dir.path().join("raft.redb")).expect("open");
        let put = |index: u64, bytes: Vec<u8>| {
            db.commit_batch(|b| {
                b.tx.open_table(LOGS)?.insert(index, bytes.as_slice())?;
                Ok(())
            })
            .expect("insert");
        };
        let json = |e: &Entry| serde_json::to_vec(e).expect("encode");
        put(1, json(&entry(1, 1)));
        put(2, json(&entry(1, 2)));
        assert_eq!(db.check().expect("good log"), None);
        put(4, json(&entry(1, 4)));
        let err = db.check().expect_err("gap").to_string();
        assert!(err.contains("entry 3 is missing"), "{err}");
        put(3, json(&entry(1, 9)));
        let err = db.check().expect_err("misplaced").to_string();
        assert!(err.contains("record at index 3 holds entry 9"), "{err}");
        put(3, b"{not json".to_vec());
        let err = db.check().expect_err("garbage").to_string();
        assert!(err.contains("corrupt"), "{err}");
        put(3, json(&entry(1, 3)));
        db.commit_batch(|b| b.purge_upto(&entry(1, 1).log_id))
            .expect("purge");
        assert_eq!(db.check().expect("purged log").map(|l| l.index), Some(1));
    }

    #[tokio::test]
    async fn purging_everything_keeps_the_last_log_id() {
        use openraft::storage::RaftLogStorageExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = LogStore::open(&dir.path().join("raft.redb")).expect("open");
        store
            .blocking_append([entry(1, 1), entry(2, 2)])
            .await
            .expect("append");
        store.purge(entry(2, 2).log_id).await.expect("purge");
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, Some(entry(2, 2).log_id));
        assert_eq!(state.last_purged_log_id, Some(entry(2, 2).log_id));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_are_all_durable() {
        use openraft::storage::RaftLogStorageExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("raft.redb");
        {
            let store = LogStore::open(&path).expect("open");
            let mut tasks = Vec::new();
            for i in 1..=200u64 {
                let mut s = store.clone();
                tasks.push(tokio::spawn(async move {
                    s.blocking_append([entry(1, i)]).await.expect("append");
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
        }
        let store = LogStore::open(&path).expect("reopen");
        assert_eq!(indexes(&store), (1..=200).collect::<Vec<_>>());
    }
}
