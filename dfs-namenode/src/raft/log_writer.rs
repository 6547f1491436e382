//! The Raft log's writer: one thread turns every log change waiting in its queue into one redb
//! transaction and one fsync.
//!
//! openraft 0.9's core waits for each append to be durable (the `LogFlushed` callback) before it
//! takes the next client write, so appends reach the store one at a time; batching many client
//! changes into one entry is the proposer's job (`raft::proposer`). What the writer adds is that
//! nothing else costs an fsync of its own: the committed log id rides along with the next append,
//! and a vote, truncation or purge queued behind an append shares its transaction.
//!
//! Entries queued but not yet committed must be readable at once (openraft replicates and applies
//! from the reader right after `append` returns), so they stay in [`Unflushed`] until the writer
//! has committed them. Changes that openraft awaits (vote, truncate, purge) go through the same
//! queue, so they are ordered after every append before them, and answer once durable. The
//! committed log id needs no fsync of its own: it rides along with the next commit.

use super::log_store::{LogDb, LogStoreError};
use super::{Entry, LogId, NodeId, TypeConfig};
use openraft::Vote;
use openraft::storage::LogFlushed;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

/// Most queued changes the writer folds into one transaction.
const MAX_BATCH: usize = 4096;

/// Entries appended but not yet durable, by index.
#[derive(Default)]
pub struct Unflushed {
    entries: Mutex<BTreeMap<u64, Entry>>,
}

impl Unflushed {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queued entries with indexes in `range`.
    pub fn range(&self, range: (std::ops::Bound<u64>, std::ops::Bound<u64>)) -> Vec<Entry> {
        self.lock().range(range).map(|(_, e)| e.clone()).collect()
    }

    /// The last queued entry's log id.
    pub fn last(&self) -> Option<LogId> {
        self.lock().last_key_value().map(|(_, e)| e.log_id)
    }

    fn insert(&self, entries: &[Entry]) {
        let mut map = self.lock();
        for e in entries {
            map.insert(e.log_id.index, e.clone());
        }
    }

    /// Forgets committed entries (only where the queued entry is still the one committed).
    fn committed(&self, ids: &[LogId]) {
        let mut map = self.lock();
        for id in ids {
            if map.get(&id.index).is_some_and(|e| e.log_id == *id) {
                map.remove(&id.index);
            }
        }
    }

    fn truncate_from(&self, index: u64) {
        self.lock().split_off(&index);
    }

    fn purge_upto(&self, index: u64) {
        let mut map = self.lock();
        *map = map.split_off(&(index + 1));
    }
}

/// One change waiting for the writer.
enum Change {
    Append {
        entries: Vec<Entry>,
        flushed: LogFlushed<TypeConfig>,
    },
    Vote(Vote<NodeId>, oneshot::Sender<Result<(), LogStoreError>>),
    Truncate(u64, oneshot::Sender<Result<(), LogStoreError>>),
    Purge(LogId, oneshot::Sender<Result<(), LogStoreError>>),
    Committed(Option<LogId>),
}

/// The queue into the writer thread. Dropping it lets the thread finish what is queued and
/// waits for it, so the database is closed when the drop returns (a restart in the same process
/// can open it again).
pub struct LogWriter {
    /// `None` only while dropping.
    tx: Option<mpsc::Sender<Change>>,
    thread: Option<std::thread::JoinHandle<()>>,
    unflushed: Arc<Unflushed>,
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl LogWriter {
    /// Starts the writer thread for `db`.
    pub fn start(db: Arc<LogDb>) -> std::io::Result<LogWriter> {
        let (tx, rx) = mpsc::channel();
        let unflushed = Arc::new(Unflushed::default());
        let u = unflushed.clone();
        let thread = std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || run(&db, rx, &u))?;
        Ok(LogWriter {
            tx: Some(tx),
            thread: Some(thread),
            unflushed,
        })
    }

    fn send(&self, change: Change) -> Result<(), mpsc::SendError<Change>> {
        match &self.tx {
            Some(tx) => tx.send(change),
            None => Err(mpsc::SendError(change)),
        }
    }

    pub fn unflushed(&self) -> &Unflushed {
        &self.unflushed
    }

    /// Queues entries; they are readable at once and `flushed` is called once they are durable.
    pub fn append(&self, entries: Vec<Entry>, flushed: LogFlushed<TypeConfig>) {
        self.unflushed.insert(&entries);
        if let Err(mpsc::SendError(change)) = self.send(Change::Append { entries, flushed })
            && let Change::Append { flushed, .. } = change
        {
            flushed.log_io_completed(Err(std::io::Error::other(
                "the raft log writer has stopped",
            )));
        }
    }

    pub async fn save_vote(&self, vote: Vote<NodeId>) -> Result<(), LogStoreError> {
        self.wait(|done| Change::Vote(vote, done)).await
    }

    pub async fn truncate_from(&self, index: u64) -> Result<(), LogStoreError> {
        self.unflushed.truncate_from(index);
        self.wait(|done| Change::Truncate(index, done)).await
    }

    pub async fn purge_upto(&self, log_id: LogId) -> Result<(), LogStoreError> {
        self.unflushed.purge_upto(log_id.index);
        self.wait(|done| Change::Purge(log_id, done)).await
    }

    /// Records the committed log id with the next commit (not waited for: losing it in a crash
    /// only means re-applying from the snapshot after a restart).
    pub fn save_committed(&self, committed: Option<LogId>) {
        let _ = self.send(Change::Committed(committed));
    }

    async fn wait(
        &self,
        change: impl FnOnce(oneshot::Sender<Result<(), LogStoreError>>) -> Change,
    ) -> Result<(), LogStoreError> {
        let (done, rx) = oneshot::channel();
        self.send(change(done))
            .map_err(|_| LogStoreError::Stopped)?;
        rx.await.map_err(|_| LogStoreError::Stopped)?
    }
}

/// The writer thread: takes everything queued, commits it as one transaction, then answers.
///
/// A batch of nothing but committed-id updates is not worth an fsync of its own: the latest one
/// waits for the next real change (or the writer's end).
fn run(db: &LogDb, rx: mpsc::Receiver<Change>, unflushed: &Unflushed) {
    let mut committed: Option<Change> = None;
    loop {
        let Ok(first) = rx.recv() else {
            if let Some(c) = committed.take() {
                commit(db, vec![c], unflushed);
            }
            return;
        };
        let mut batch: Vec<Change> = committed.take().into_iter().collect();
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(change) => batch.push(change),
                Err(_) => break,
            }
        }
        if batch.iter().all(|c| matches!(c, Change::Committed(_))) {
            committed = batch.pop();
            continue;
        }
        commit(db, batch, unflushed);
    }
}

/// Commits `batch` as one transaction, then answers every change in it.
fn commit(db: &LogDb, batch: Vec<Change>, unflushed: &Unflushed) {
    tracing::trace!(changes = batch.len(), "raft log group commit");
    let result = db.commit_batch(|w| {
        for change in &batch {
            match change {
                Change::Append { entries, .. } => w.append(entries)?,
                Change::Vote(vote, _) => w.vote(vote)?,
                Change::Truncate(index, _) => w.truncate_from(*index)?,
                Change::Purge(log_id, _) => w.purge_upto(log_id)?,
                Change::Committed(c) => w.committed(c)?,
            }
        }
        Ok(())
    });
    let failure = result.as_ref().err().map(|e| e.to_string());
    if let Some(e) = &failure {
        tracing::error!(error = %e, "raft log commit failed");
    }
    for change in batch {
        let err = || std::io::Error::other(failure.clone().unwrap_or_default());
        match change {
            Change::Append { entries, flushed } => {
                if failure.is_none() {
                    let ids: Vec<LogId> = entries.iter().map(|e| e.log_id).collect();
                    unflushed.committed(&ids);
                    flushed.log_io_completed(Ok(()));
                } else {
                    flushed.log_io_completed(Err(err()));
                }
            }
            Change::Vote(_, done) | Change::Truncate(_, done) | Change::Purge(_, done) => {
                let _ = done.send(match &failure {
                    None => Ok(()),
                    Some(e) => Err(LogStoreError::Batch(e.clone())),
                });
            }
            Change::Committed(_) => {}
        }
    }
}
