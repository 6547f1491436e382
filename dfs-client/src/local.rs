//! Short-circuit local reads, the client's side (`dfs_proto::local_read`): a replica on a
//! datanode of this machine is read from its file, handed over by the datanode on its Unix
//! socket, instead of streamed over gRPC. Every piece is verified against the checksums that
//! came with the file, as a gRPC chunk is; a read shorter than a piece reads and verifies only
//! its 4 KiB pages, against the page checksums in the replica's sidecar (handed over too), so
//! that a small random read costs a small disk read.
//!
//! A datanode counts as local once its socket (named in its block locations) answers with its
//! own id; a socket that does not exist here, refuses the connection or answers for another
//! datanode makes it remote for [`RETRY_REMOTE`], and reads go over gRPC. Files handed over stay
//! open for later reads of the same replica (a replica's bytes never change: a rewrite is a new
//! generation), at most [`MAX_OPEN`] of them, each closed after [`IDLE_CLOSE`] unused.

use crate::error::{Error, Result};
use bytes::Bytes;
use dfs_proto::checksum::{CHECKSUM_CHUNK, CHECKSUM_PAGE, read_page_checksums};
use dfs_proto::grpc::DataChunk;
use dfs_proto::local_read::{LocalReadOutcome, LocalReadRequest, exchange, frame};
use dfs_proto::rest::{BlockInfo, DatanodeAddr};
use dfs_proto::{BlockId, DatanodeId, Generation};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// How long a datanode found not to be local is left alone before its socket is tried again
/// (it may have been restarting).
const RETRY_REMOTE: Duration = Duration::from_secs(30);
/// Replica files kept open at once.
const MAX_OPEN: usize = 128;
/// A replica file unused this long is closed (so that the space of a replica the datanode
/// deleted is freed soon).
const IDLE_CLOSE: Duration = Duration::from_secs(60);
/// Longest the exchange on a datanode's socket may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// How far ahead of a long read the kernel is asked to bring a replica in from disk (as a
/// datanode does for a streamed read).
const DISK_AHEAD: u64 = 16 * 1024 * 1024;

/// A replica of this machine, open for reading.
pub(crate) struct LocalReplica {
    file: File,
    length: u64,
    crcs: Vec<u32>,
    /// The sidecar and where its page checksums start, for a replica that has them.
    pages: Option<(File, u64)>,
    /// Up to where the kernel was asked to read ahead.
    advised: AtomicU64,
}

impl LocalReplica {
    pub(crate) fn length(&self) -> u64 {
        self.length
    }

    pub(crate) fn has_pages(&self) -> bool {
        self.pages.is_some()
    }

    /// Reads `len` bytes at `offset` (on the 4 KiB grid) with the stored checksum of each page,
    /// for the caller to verify (`dfs_proto::checksum::verify_pages`); an error for a replica
    /// without page checksums.
    pub(crate) fn read_pages(&self, offset: u64, len: usize) -> io::Result<DataChunk> {
        let Some((sidecar, at)) = &self.pages else {
            return Err(io::Error::other("the replica has no page checksums"));
        };
        let first = (offset / CHECKSUM_PAGE as u64) as usize;
        let crcs = read_page_checksums(sidecar, *at, first, len.div_ceil(CHECKSUM_PAGE))?;
        let data = dfs_proto::file_io::read_exact_at(&self.file, len, offset)?;
        Ok(DataChunk {
            offset,
            data: Bytes::from(data),
            crc32c: crcs,
        })
    }

    /// Reads `len` bytes at `offset` (on the 64 KiB grid) with the stored checksum of each
    /// piece: a chunk as a datanode would send it, for the caller to verify. A read that goes
    /// on to `range_end` asks the kernel to bring the next bytes in from disk meanwhile.
    pub(crate) fn read_chunk(
        &self,
        offset: u64,
        len: usize,
        range_end: u64,
    ) -> io::Result<DataChunk> {
        let first = (offset / CHECKSUM_CHUNK as u64) as usize;
        let crcs = self
            .crcs
            .get(first..first + len.div_ceil(CHECKSUM_CHUNK))
            .ok_or_else(|| io::Error::other("the replica has too few checksums"))?
            .to_vec();
        let end = offset + len as u64;
        let advised = self.advised.load(Ordering::Relaxed);
        if range_end > end && end + DISK_AHEAD / 2 > advised {
            let from = advised.max(end);
            let to = (end + DISK_AHEAD).min(range_end);
            if to > from {
                self.advised.store(to, Ordering::Relaxed);
                // SAFETY: the descriptor belongs to `self.file`, open for the whole call; no
                // pointers are passed.
                unsafe {
                    libc::posix_fadvise(
                        self.file.as_raw_fd(),
                        from as libc::off_t,
                        (to - from) as libc::off_t,
                        libc::POSIX_FADV_WILLNEED,
                    );
                }
            }
        }
        let data = dfs_proto::file_io::read_exact_at(&self.file, len, offset)?;
        Ok(DataChunk {
            offset,
            data: Bytes::from(data),
            crc32c: crcs,
        })
    }
}

type Key = (DatanodeId, BlockId, Generation);

/// Replica files handed over, with when each was last used.
#[derive(Default)]
struct OpenReplicas {
    files: HashMap<Key, (Arc<LocalReplica>, Instant)>,
    /// A sweeper task closes idle files (started with the first file).
    sweeping: bool,
}

impl OpenReplicas {
    fn close_idle(&mut self, now: Instant) {
        self.files
            .retain(|_, (_, used)| now.duration_since(*used) < IDLE_CLOSE);
    }
}

/// The client's local read state (one per [`crate::Client`]).
pub(crate) struct LocalReads {
    enabled: bool,
    /// Datanodes found not to be local, until when.
    remote: Mutex<HashMap<DatanodeId, Instant>>,
    open: Arc<Mutex<OpenReplicas>>,
}

/// A poisoned lock only means another task panicked mid-update; the maps stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalReads {
    pub(crate) fn new(enabled: bool) -> LocalReads {
        LocalReads {
            enabled,
            remote: Mutex::new(HashMap::new()),
            open: Arc::default(),
        }
    }

    /// Whether reads should try `loc` before datanodes that are surely remote.
    pub(crate) fn may_be_local(&self, loc: &DatanodeAddr) -> bool {
        self.enabled
            && loc.local_socket.is_some()
            && lock(&self.remote)
                .get(&loc.id)
                .is_none_or(|until| Instant::now() >= *until)
    }

    /// The replica `block` of datanode `loc` opened locally; `None` when that datanode is not
    /// on this machine (read it over gRPC), an error when it is but refuses or fails.
    pub(crate) async fn open(
        &self,
        loc: &DatanodeAddr,
        block: BlockInfo,
        token: &str,
    ) -> Option<Result<Arc<LocalReplica>>> {
        if !self.may_be_local(loc) {
            return None;
        }
        let path = loc.local_socket.clone()?;
        let key = (loc.id.clone(), block.id, block.generation);
        if let Some((replica, used)) = lock(&self.open).files.get_mut(&key) {
            *used = Instant::now();
            return Some(Ok(Arc::clone(replica)));
        }
        let request = LocalReadRequest {
            block: block.id,
            generation: block.generation,
            token: token.to_string(),
        };
        let exchanged = tokio::task::spawn_blocking(move || {
            exchange(Path::new(&path), &frame(&request), EXCHANGE_TIMEOUT)
        })
        .await;
        let (reply, fds) = match exchanged {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                tracing::debug!(datanode = %loc.id, error = %e, "no local reads from this datanode");
                self.not_local(&loc.id);
                return None;
            }
            Err(e) => return Some(Err(local_error(loc, block.id, e.to_string()))),
        };
        if reply.datanode != loc.id {
            tracing::debug!(datanode = %loc.id, answered = %reply.datanode,
                "the local read socket belongs to another datanode");
            self.not_local(&loc.id);
            return None;
        }
        let mut fds = fds.into_iter().map(File::from);
        let replica = match (reply.outcome, fds.next()) {
            (
                LocalReadOutcome::Replica {
                    length,
                    crcs,
                    pages_at,
                },
                Some(file),
            ) => {
                let pages = match (pages_at, fds.next()) {
                    (Some(at), Some(sidecar)) => Some((sidecar, at)),
                    (None, _) => None,
                    (Some(_), None) => {
                        return Some(Err(local_error(
                            loc,
                            block.id,
                            "the reply names page checksums but no sidecar came with it",
                        )));
                    }
                };
                Arc::new(LocalReplica {
                    file,
                    length,
                    crcs,
                    pages,
                    advised: AtomicU64::new(0),
                })
            }
            (LocalReadOutcome::Replica { .. }, None) => {
                return Some(Err(local_error(
                    loc,
                    block.id,
                    "no file came with the reply",
                )));
            }
            (LocalReadOutcome::Refused { code, message }, _) => {
                return Some(Err(local_error(
                    loc,
                    block.id,
                    format!("{code:?}: {message}"),
                )));
            }
        };
        self.keep(key, Arc::clone(&replica));
        Some(Ok(replica))
    }

    /// Whether a small read of `block` is likely served by the pages of a replica of this
    /// machine (so widening it to whole pieces would only cost disk reads): one open here with
    /// page checksums, or one on a datanode that may be local and was not opened yet.
    pub(crate) fn may_read_pages(&self, locations: &[DatanodeAddr], block: BlockInfo) -> bool {
        let open = lock(&self.open);
        locations.iter().any(|loc| {
            match open
                .files
                .get(&(loc.id.clone(), block.id, block.generation))
            {
                Some((replica, _)) => replica.has_pages(),
                None => self.may_be_local(loc),
            }
        })
    }

    /// Closes the file of a replica that failed (a checksum mismatch, a read error).
    pub(crate) fn forget(&self, loc: &DatanodeAddr, block: BlockInfo) {
        lock(&self.open)
            .files
            .remove(&(loc.id.clone(), block.id, block.generation));
    }

    fn not_local(&self, id: &DatanodeId) {
        lock(&self.remote).insert(id.clone(), Instant::now() + RETRY_REMOTE);
    }

    fn keep(&self, key: Key, replica: Arc<LocalReplica>) {
        let now = Instant::now();
        let mut open = lock(&self.open);
        open.close_idle(now);
        if open.files.len() >= MAX_OPEN
            && let Some(oldest) = open
                .files
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
        {
            open.files.remove(&oldest);
        }
        open.files.insert(key, (replica, now));
        if !open.sweeping
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            open.sweeping = true;
            runtime.spawn(sweep(Arc::downgrade(&self.open)));
        }
    }
}

/// Closes idle replica files now and then, until the client is gone.
async fn sweep(open: Weak<Mutex<OpenReplicas>>) {
    loop {
        tokio::time::sleep(IDLE_CLOSE / 2).await;
        let Some(open) = open.upgrade() else {
            return;
        };
        lock(&open).close_idle(Instant::now());
    }
}

fn local_error(loc: &DatanodeAddr, block: BlockId, reason: impl Into<String>) -> Error {
    Error::LocalRead {
        addr: loc.grpc.clone(),
        block,
        reason: reason.into(),
    }
}
