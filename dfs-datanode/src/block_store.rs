//! The replicas this datanode holds, on local disk.
//!
//! Layout under the data directory:
//!
//! ```text
//! datanode_id                       this node's identity (random hex, created once)
//! lock                              held (flock) while a datanode uses the directory
//! current/<xx>/blk_<id>_<gen>       replica data, xx = format!("{:02x}", id % 256)
//! current/<xx>/blk_<id>_<gen>.meta  its checksum sidecar (see `sidecar`)
//! tmp/                              writes in progress (emptied at start)
//! quarantine/                       files found damaged at start, kept for inspection
//! ```
//!
//! A write goes to `tmp/`, is fsynced, and is moved into `current/` sidecar first, then data,
//! and the directory is synced. Paths are only ever built from numeric ids. Every method does
//! blocking file I/O: call them from `spawn_blocking` or a dedicated thread.

use crate::durable::{fsync_dir, write_durably};
use crate::sidecar::{self, Sidecar};
use crate::space::{self, Space, SpaceLimits};
use bytes::Bytes;
use dfs_proto::checksum::{self, CHECKSUM_CHUNK, CHECKSUM_PAGE};
use dfs_proto::grpc::DataChunk;
use dfs_proto::rest::{BlockInfo, ReplicaRef};
use dfs_proto::{BlockId, DatanodeId, Generation};
use direct::DirectWriter;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

mod direct;
mod scan;
#[cfg(test)]
mod tests;

/// How much more space a write of unknown length claims at a time as its block grows.
pub const RESERVE_STEP: u64 = 8 * 1024 * 1024;

/// What went wrong with a block store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("replica {0} not found on this datanode")]
    NotFound(Replica),
    #[error("replica {0} already exists or is being written")]
    AlreadyExists(Replica),
    #[error("not enough space for replica {replica}: {needed} bytes wanted, {remaining} remaining")]
    NoSpace {
        replica: Replica,
        needed: u64,
        remaining: u64,
    },
    #[error("offset {offset} is beyond the end of replica {replica} ({length} bytes)")]
    OutOfRange {
        replica: Replica,
        offset: u64,
        length: u64,
    },
    #[error("replica {replica} is damaged: {reason}")]
    Corrupt { replica: Replica, reason: String },
    #[error("{0} is not a valid datanode_id file")]
    BadIdentity(PathBuf),
    #[error("data directory {0} is in use by another datanode")]
    Locked(PathBuf),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Adds a verb phrase to an I/O error.
trait IoContext<T> {
    fn context(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io { context, source })
    }
}

/// One replica: a block id and a generation stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Replica {
    pub id: BlockId,
    pub generation: Generation,
}

impl std::fmt::Display for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "blk_{}_{}", self.id, self.generation)
    }
}

impl From<ReplicaRef> for Replica {
    fn from(r: ReplicaRef) -> Replica {
        Replica {
            id: r.id,
            generation: r.generation,
        }
    }
}

impl From<Replica> for ReplicaRef {
    fn from(r: Replica) -> ReplicaRef {
        ReplicaRef {
            id: r.id,
            generation: r.generation,
        }
    }
}

impl Replica {
    /// The file name of the replica's data (also its `Display`).
    fn file_name(&self) -> String {
        self.to_string()
    }

    fn subdir(&self) -> String {
        format!("{:02x}", self.id.0 % 256)
    }

    pub fn info(&self, len: u64) -> BlockInfo {
        BlockInfo {
            id: self.id,
            generation: self.generation,
            len,
        }
    }
}

/// The mutable part of the store.
#[derive(Default)]
struct State {
    /// Every replica in `current/`, with its length.
    replicas: HashMap<Replica, u64>,
    /// Replicas being written now (a second write of one is refused).
    writing: HashSet<Replica>,
    /// Sum of the expected lengths of writes in progress, taken off the remaining space.
    pending: u64,
}

/// The block store of one data directory.
pub struct BlockStore {
    data_dir: PathBuf,
    current: PathBuf,
    tmp: PathBuf,
    id: DatanodeId,
    limits: SpaceLimits,
    state: Mutex<State>,
    /// Holds the directory's `flock` for as long as the store is open.
    _lock: File,
}

impl BlockStore {
    /// Opens (creating if needed) the data directory: loads or creates the identity, empties
    /// `tmp/`, and scans `current/`, quarantining damaged replicas.
    pub fn open(data_dir: &Path, limits: SpaceLimits) -> Result<Arc<BlockStore>, StoreError> {
        let current = data_dir.join("current");
        let tmp = data_dir.join("tmp");
        std::fs::create_dir_all(data_dir).context("create the data directory")?;
        let lock = lock_dir(data_dir)?;
        std::fs::create_dir_all(&current).context("create the current directory")?;
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).context("empty the tmp directory")?;
        }
        std::fs::create_dir_all(&tmp).context("create the tmp directory")?;
        for sub in 0..256u32 {
            std::fs::create_dir_all(current.join(format!("{sub:02x}")))
                .context("create a block subdirectory")?;
        }
        fsync_dir(&current).context("sync the current directory")?;
        fsync_dir(data_dir).context("sync the data directory")?;
        let id = load_or_create_id(data_dir, &tmp)?;
        let replicas = scan::scan(&current, &data_dir.join("quarantine"))?;
        tracing::info!(data_dir = %data_dir.display(), datanode_id = %id, replicas = replicas.len(), "block store opened");
        Ok(Arc::new(BlockStore {
            data_dir: data_dir.to_path_buf(),
            current,
            tmp,
            id,
            limits,
            state: Mutex::new(State {
                replicas,
                ..State::default()
            }),
            _lock: lock,
        }))
    }

    pub fn datanode_id(&self) -> &DatanodeId {
        &self.id
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated (each update is
        // one insert or remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn data_path(&self, r: Replica) -> PathBuf {
        self.current.join(r.subdir()).join(r.file_name())
    }

    fn meta_path(&self, r: Replica) -> PathBuf {
        self.current
            .join(r.subdir())
            .join(format!("{}.meta", r.file_name()))
    }

    /// Every replica held, for a full block report.
    pub fn list(&self) -> Vec<BlockInfo> {
        let mut all: Vec<BlockInfo> = self
            .state()
            .replicas
            .iter()
            .map(|(r, len)| r.info(*len))
            .collect();
        all.sort_by_key(|b| (b.id, b.generation));
        all
    }

    pub fn block_count(&self) -> u64 {
        self.state().replicas.len() as u64
    }

    pub fn contains(&self, r: Replica) -> bool {
        self.state().replicas.contains_key(&r)
    }

    pub fn space(&self) -> Result<Space, StoreError> {
        let (used, pending) = {
            let st = self.state();
            (st.replicas.values().sum::<u64>(), st.pending)
        };
        space::measure(&self.data_dir, self.limits, used, pending).context("measure free space")
    }

    /// Counts at least `need` (up to [`RESERVE_STEP`]) more bytes as promised to `r`'s write in
    /// progress, if there is room for them above the reserve (`NoSpace` otherwise); answers how
    /// many. Two writers growing at once may overshoot by one step each: the reserve absorbs it.
    fn reserve_more(&self, r: Replica, need: u64) -> Result<u64, StoreError> {
        let remaining = self.space()?.remaining;
        if remaining < need {
            return Err(StoreError::NoSpace {
                replica: r,
                needed: need,
                remaining,
            });
        }
        let grow = need.max(RESERVE_STEP.min(remaining));
        self.state().pending += grow;
        Ok(grow)
    }

    /// Starts writing a new replica. Refused if the replica exists or is being written, or if
    /// there is less room than `expected_length`.
    pub fn create(
        self: &Arc<Self>,
        r: Replica,
        expected_length: u64,
    ) -> Result<BlockWriter, StoreError> {
        let remaining = self.space()?.remaining;
        {
            let mut st = self.state();
            if st.replicas.contains_key(&r) || st.writing.contains(&r) {
                return Err(StoreError::AlreadyExists(r));
            }
            if remaining < expected_length || remaining == 0 {
                return Err(StoreError::NoSpace {
                    replica: r,
                    needed: expected_length,
                    remaining,
                });
            }
            st.writing.insert(r);
            st.pending += expected_length;
        }
        let mut writer = BlockWriter {
            store: Arc::clone(self),
            replica: r,
            reserved: expected_length,
            tmp_data: self.tmp.join(r.file_name()),
            tmp_meta: self.tmp.join(format!("{}.meta", r.file_name())),
            file: None,
            length: 0,
            crcs: Vec::new(),
            page_crcs: Vec::new(),
            finished: false,
            direct: None,
        };
        // On error the writer's Drop releases the reservation.
        writer.file =
            Some(File::create(&writer.tmp_data).context("create a temporary block file")?);
        Ok(writer)
    }

    /// Opens a replica for reading.
    pub fn open_reader(&self, r: Replica) -> Result<BlockReader, StoreError> {
        if !self.contains(r) {
            return Err(StoreError::NotFound(r));
        }
        let file = match File::open(self.data_path(r)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NotFound(r)),
            Err(e) => return Err(e).context("open a block file"),
        };
        let meta = match File::open(self.meta_path(r)) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NotFound(r)),
            Err(e) => return Err(e).context("open a block sidecar"),
        };
        let corrupt = |reason: String| StoreError::Corrupt { replica: r, reason };
        let sidecar = Sidecar::read(&meta).map_err(|e| corrupt(e.to_string()))?;
        let on_disk = file.metadata().context("stat a block file")?.len();
        if on_disk != sidecar.length {
            return Err(corrupt(format!(
                "data file has {on_disk} bytes, its sidecar says {}",
                sidecar.length
            )));
        }
        Ok(BlockReader {
            replica: r,
            file,
            meta,
            sidecar,
        })
    }

    /// Removes a replica (data and sidecar). Answers whether it was there.
    pub fn delete(&self, r: Replica) -> Result<bool, StoreError> {
        let had = self.state().replicas.remove(&r).is_some();
        let mut removed_any = false;
        for path in [self.data_path(r), self.meta_path(r)] {
            match std::fs::remove_file(&path) {
                Ok(()) => removed_any = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).context("remove a block file"),
            }
        }
        if removed_any {
            fsync_dir(&self.current.join(r.subdir())).context("sync a block directory")?;
        }
        Ok(had || removed_any)
    }
}

/// Takes an exclusive `flock` on `<data_dir>/lock`, so two datanodes never share a directory.
fn lock_dir(data_dir: &Path) -> Result<File, StoreError> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join("lock"))
        .context("open the data directory lock")?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Err(StoreError::Locked(data_dir.to_path_buf()));
        }
        return Err(err).context("lock the data directory");
    }
    Ok(file)
}

/// Reads the node's identity, creating it at first start.
fn load_or_create_id(data_dir: &Path, tmp: &Path) -> Result<DatanodeId, StoreError> {
    let path = data_dir.join("datanode_id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(StoreError::BadIdentity(path));
            }
            Ok(DatanodeId(id.to_string()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let id = format!("{:032x}", rand::random::<u128>());
            write_durably(
                &tmp.join("datanode_id"),
                &path,
                format!("{id}\n").as_bytes(),
            )
            .context("write the datanode_id file")?;
            tracing::info!(datanode_id = %id, "created a new datanode identity");
            Ok(DatanodeId(id))
        }
        Err(e) => Err(e).context("read the datanode_id file"),
    }
}

/// A replica being written in `tmp/`. Dropped without [`BlockWriter::finish`], it leaves
/// nothing behind.
pub struct BlockWriter {
    store: Arc<BlockStore>,
    replica: Replica,
    /// Bytes this writer counts in the store's `pending` space: the expected length, grown in
    /// [`RESERVE_STEP`]s while a block of unknown length arrives, so that it stops at the
    /// reserve instead of filling the disk.
    reserved: u64,
    tmp_data: PathBuf,
    tmp_meta: PathBuf,
    file: Option<File>,
    length: u64,
    /// The CRC of every 64 KiB piece, as the writer sent them (already verified).
    crcs: Vec<u32>,
    /// The CRC of every 4 KiB page, computed here from the verified data.
    page_crcs: Vec<u32>,
    finished: bool,
    /// With [`BlockWriter::bypass_cache`]: the direct writer of the data.
    direct: Option<DirectWriter>,
}

impl BlockWriter {
    /// Writes this replica's data around the page cache (`O_DIRECT`), for copies nobody is
    /// about to read (re-replication): they neither push out what clients read nor make the
    /// kernel find, fill, write back and free page cache for every byte. Where the file system
    /// has no direct writes, the replica is written through the cache as usual.
    pub fn bypass_cache(&mut self) {
        match DirectWriter::open(&self.tmp_data) {
            Ok(direct) => self.direct = Some(direct),
            Err(e) => {
                tracing::debug!(replica = %self.replica, error = %e, "no direct writes here")
            }
        }
    }

    pub fn replica(&self) -> Replica {
        self.replica
    }

    /// Appends a verified chunk: `data` at the current end, with its piece checksums.
    pub fn append(&mut self, data: &[u8], crcs: &[u32]) -> Result<(), StoreError> {
        let file = self.file.as_mut().ok_or_else(|| StoreError::Io {
            context: "append to a block",
            source: io::Error::other("writer already closed"),
        })?;
        let needed = self.length + data.len() as u64;
        if needed > self.reserved {
            self.reserved += self
                .store
                .reserve_more(self.replica, needed - self.reserved)?;
        }
        match self.direct.as_mut() {
            Some(direct) => direct.append(data),
            None => file.write_all(data),
        }
        .context("write a block file")?;
        checksum::extend_page_checksums(&mut self.page_crcs, self.length, data);
        self.length += data.len() as u64;
        self.crcs.extend_from_slice(crcs);
        Ok(())
    }

    /// Bytes appended so far.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Makes the replica durable and visible: sidecar, fsync, rename into `current/`.
    pub fn finish(mut self) -> Result<BlockInfo, StoreError> {
        if let Some(file) = self.file.take() {
            if let Some(direct) = self.direct.as_mut() {
                direct.finish(&file).context("write a block file")?;
            }
            file.sync_all().context("sync a block file")?;
        }
        let sidecar = sidecar::encode(self.length, &self.crcs, &self.page_crcs);
        {
            let mut meta = File::create(&self.tmp_meta).context("create a block sidecar")?;
            meta.write_all(&sidecar).context("write a block sidecar")?;
            meta.sync_all().context("sync a block sidecar")?;
        }
        // Both files are on disk: move them into place (the data last, so a replica is never
        // visible without its checksums) and make both renames durable with one sync of their
        // directory. A crash in between leaves at worst a replica that was never acknowledged,
        // which the start-up scan quarantines.
        let store = Arc::clone(&self.store);
        let (meta_path, data_path) = (store.meta_path(self.replica), store.data_path(self.replica));
        std::fs::rename(&self.tmp_meta, &meta_path).context("move a block sidecar into place")?;
        std::fs::rename(&self.tmp_data, &data_path).context("move a block file into place")?;
        if let Some(dir) = data_path.parent() {
            fsync_dir(dir).context("sync a block directory")?;
        }
        store.state().replicas.insert(self.replica, self.length);
        self.finished = true;
        Ok(self.replica.info(self.length))
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp_data);
            let _ = std::fs::remove_file(&self.tmp_meta);
            // A sidecar may already have been moved when a later step failed.
            if !self.store.contains(self.replica) {
                let _ = std::fs::remove_file(self.store.meta_path(self.replica));
            }
        }
        let mut st = self.store.state();
        st.writing.remove(&self.replica);
        st.pending = st.pending.saturating_sub(self.reserved);
    }
}

/// An open replica with its checksums.
pub struct BlockReader {
    replica: Replica,
    file: File,
    /// The sidecar, open for its page checksums.
    meta: File,
    sidecar: Sidecar,
}

/// An open replica's files, for a local reader, which reads them itself.
pub struct ReplicaFiles {
    pub data: File,
    pub length: u64,
    pub crcs: Vec<u32>,
    /// The sidecar and where its page checksums start, when it has them.
    pub pages: Option<(File, u64)>,
}

impl BlockReader {
    pub fn length(&self) -> u64 {
        self.sidecar.length
    }

    pub fn into_files(self) -> ReplicaFiles {
        ReplicaFiles {
            data: self.file,
            length: self.sidecar.length,
            crcs: self.sidecar.crcs,
            pages: self.sidecar.pages_at.map(|at| (self.meta, at)),
        }
    }

    /// The stored checksums of the 4 KiB pages of `[offset, offset + len)` (`offset` a multiple
    /// of 4 KiB); `None` for a replica whose sidecar has none.
    pub fn page_checksums(&self, offset: u64, len: usize) -> Result<Option<Vec<u32>>, StoreError> {
        let Some(at) = self.sidecar.pages_at else {
            return Ok(None);
        };
        let first = (offset / CHECKSUM_PAGE as u64) as usize;
        let count = len.div_ceil(CHECKSUM_PAGE);
        if offset + len as u64 > self.length() {
            return Err(StoreError::OutOfRange {
                replica: self.replica,
                offset,
                length: self.length(),
            });
        }
        checksum::read_page_checksums(&self.meta, at, first, count)
            .map(Some)
            .context("read a block sidecar")
    }

    /// Tells the kernel that `[offset, offset + len)` will be read soon, so it starts reading
    /// it from disk in the background (advice only: a failure changes nothing).
    pub fn will_need(&self, offset: u64, len: u64) {
        // SAFETY: the descriptor belongs to `self.file`, open for the whole call; no pointers.
        unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                offset as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_WILLNEED,
            );
        }
    }

    /// Reads up to `max` bytes starting at `offset` (a multiple of 64 KiB), with the stored
    /// checksum of each piece.
    pub fn read_chunk(&self, offset: u64, max: usize) -> Result<DataChunk, StoreError> {
        let length = self.length();
        if offset > length || !offset.is_multiple_of(CHECKSUM_CHUNK as u64) {
            return Err(StoreError::OutOfRange {
                replica: self.replica,
                offset,
                length,
            });
        }
        let len = (length - offset).min(max as u64) as usize;
        let data = dfs_proto::file_io::read_exact_at(&self.file, len, offset)
            .context("read a block file")?;
        let first = (offset / CHECKSUM_CHUNK as u64) as usize;
        let count = len.div_ceil(CHECKSUM_CHUNK);
        let crcs = self
            .sidecar
            .crcs
            .get(first..first + count)
            .ok_or_else(|| StoreError::Corrupt {
                replica: self.replica,
                reason: "sidecar has too few checksums".to_string(),
            })?
            .to_vec();
        Ok(DataChunk {
            offset,
            data: Bytes::from(data),
            crc32c: crcs,
        })
    }
}
