//! Files open for random access, as the FUSE mount uses them: reads and writes at any offset,
//! truncate while open, flush and close that commit atomically (close-to-open consistency).
//!
//! One [`OpenFile`] per inode per process: it holds the write lease (renewed while open), the
//! unflushed writes ([`crate::file_state`]), and the read-ahead stream of a sequential reader
//! ([`crate::sequential`]).

use crate::client::Client;
use crate::error::{Error, Result};
use crate::file_state::FileState;
use crate::sequential::Sequential;
use bytes::Bytes;
use dfs_proto::rest::{
    Attr, BlockInfo, FileBlocks, FileKind, GetAttr, GetBlocks, GetBlocksRequest, InodeRequest,
    LeaseRequest, OpenWrite, ReleaseLease, SetAttr, SetAttrRequest, Timestamp,
};
use dfs_proto::{ErrorCode, InodeId};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::RwLock;
use tracing::warn;

/// Default bound on unflushed random-write bytes per file; past it the file is flushed early.
pub const DEFAULT_DIRTY_LIMIT: usize = 64 * 1024 * 1024;
/// How far behind the furthest read a read may start and still belong to a sequential run
/// (the kernel's read-ahead requests can be served out of order).
const LATE: u64 = 2 * 1024 * 1024;

/// A file open in this process. All handles of one inode within a mount share one OpenFile
/// (so one writer per file per mount; reads see this process's unflushed writes).
pub struct OpenFile {
    shared: Arc<Shared0>,
}

struct Shared0 {
    client: Client,
    ino: InodeId,
    writable: AtomicBool,
    /// Attributes as last known, with the size this process sees.
    attr: Mutex<Attr>,
    state: RwLock<FileState>,
    dirty_limit: AtomicUsize,
    /// Bumped by every change of content; read-ahead of an older version is thrown away.
    version: AtomicU64,
    read_ahead: tokio::sync::Mutex<ReadAhead>,
}

/// Where a sequential reader is, and the stream running ahead of it.
#[derive(Default)]
struct ReadAhead {
    /// The furthest end of the reads in the current run of sequential reads.
    last_end: u64,
    /// Reads in that run that started exactly where the run had reached.
    run: u32,
    stream: Option<Sequential>,
}

impl ReadAhead {
    /// Notes a read of `[offset, end)`: one starting where the run reached continues it, one
    /// a little behind (sent earlier, served late) is part of it, any other starts a new run.
    fn note(&mut self, offset: u64, end: u64) {
        if offset == self.last_end {
            self.run += 1;
            self.last_end = end;
        } else if offset < self.last_end && offset + LATE >= self.last_end {
            self.last_end = self.last_end.max(end);
        } else {
            self.run = 1;
            self.last_end = end;
        }
    }
}

impl Client {
    /// Opens an inode. With `write`, takes the file's write lease (EBUSY if another client
    /// holds it). With `truncate` (O_TRUNC), the file becomes empty (committed at flush).
    pub async fn open_file(
        &self,
        ino: InodeId,
        write: bool,
        truncate: bool,
    ) -> Result<Arc<OpenFile>> {
        let (attr, blocks, lease, layout) = if write {
            let open = self
                .call::<OpenWrite>(&LeaseRequest {
                    ino,
                    client: self.client_id().clone(),
                })
                .await?;
            let lease = self.hold_leases().await?;
            (open.attr, open.blocks, Some(lease), None)
        } else {
            // One call: the block list comes with the attributes it goes with.
            let layout = self.layout(ino).await?;
            let attr = match &layout.attr {
                Some(attr) => attr.clone(),
                None => self.call::<GetAttr>(&InodeRequest { ino }).await?,
            };
            (attr, Vec::new(), None, Some(layout))
        };
        match attr.kind {
            FileKind::File => {}
            FileKind::Dir => {
                return Err(Error::api(
                    ErrorCode::IsDir,
                    format!("inode {ino} is a directory"),
                ));
            }
            _ => {
                return Err(Error::api(
                    ErrorCode::Invalid,
                    format!("inode {ino} is not a regular file"),
                ));
            }
        }
        let mut state = self.file_state(&attr, blocks).await?;
        if let Some(layout) = &layout {
            state.reload(layout);
        }
        state.lease = lease;
        if truncate {
            if !write {
                return Err(bad_fd(ino));
            }
            state.set_len(0).await?;
        }
        Ok(self.open_with(attr, state, write))
    }

    /// Opens the file this client has just created with `attr` (with `write`, its `Create`
    /// took the write lease for this client): it is empty, so the namenode is not asked again.
    pub async fn open_created(&self, attr: Attr, write: bool) -> Result<Arc<OpenFile>> {
        let mut state = self.file_state(&attr, Vec::new()).await?;
        if write {
            state.lease = Some(self.hold_leases().await?);
        }
        Ok(self.open_with(attr, state, write))
    }

    async fn file_state(&self, attr: &Attr, blocks: Vec<BlockInfo>) -> Result<FileState> {
        let block_size = match attr.block_size {
            0 => self.cluster_info().await?.default_block_size.max(1),
            n => n,
        };
        Ok(FileState::new(self, attr, blocks, block_size))
    }

    fn open_with(&self, mut attr: Attr, state: FileState, write: bool) -> Arc<OpenFile> {
        attr.size = state.size;
        Arc::new(OpenFile {
            shared: Arc::new(Shared0 {
                client: self.clone(),
                ino: attr.ino,
                writable: AtomicBool::new(write),
                attr: Mutex::new(attr),
                state: RwLock::new(state),
                dirty_limit: AtomicUsize::new(DEFAULT_DIRTY_LIMIT),
                version: AtomicU64::new(0),
                read_ahead: tokio::sync::Mutex::new(ReadAhead::default()),
            }),
        })
    }

    async fn layout(&self, ino: InodeId) -> Result<FileBlocks> {
        self.call::<GetBlocks>(&GetBlocksRequest {
            ino,
            offset: 0,
            len: 0,
        })
        .await
    }
}

fn bad_fd(ino: InodeId) -> Error {
    Error::api(
        ErrorCode::BadFd,
        format!("inode {ino} is not open for writing"),
    )
}

fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        sec: d.as_secs() as i64,
        nsec: d.subsec_nanos(),
    }
}

impl OpenFile {
    pub fn ino(&self) -> InodeId {
        self.shared.ino
    }

    /// Attributes as this process sees them (size includes unflushed writes).
    pub fn attr(&self) -> Attr {
        self.shared
            .attr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn is_writable(&self) -> bool {
        self.shared.writable.load(Ordering::Acquire)
    }

    /// Bound on unflushed random-write bytes before an early flush (default
    /// [`DEFAULT_DIRTY_LIMIT`]).
    pub fn set_dirty_limit(&self, bytes: usize) {
        self.shared.dirty_limit.store(bytes, Ordering::Relaxed);
    }

    /// Upgrade a read-only OpenFile to writable (takes the lease).
    pub async fn make_writable(&self) -> Result<()> {
        let s = &self.shared;
        let mut state = s.state.write().await;
        if self.is_writable() {
            return Ok(());
        }
        let open = s
            .client
            .call::<OpenWrite>(&LeaseRequest {
                ino: s.ino,
                client: s.client.client_id().clone(),
            })
            .await?;
        state.lease = Some(s.client.hold_leases().await?);
        // A read-only open has nothing unflushed: take the file as it is now.
        state.reload(&s.client.layout(s.ino).await?);
        s.version.fetch_add(1, Ordering::AcqRel);
        self.set_attr(open.attr, state.size);
        s.writable.store(true, Ordering::Release);
        Ok(())
    }

    fn set_attr(&self, mut attr: Attr, size: u64) {
        attr.size = size;
        *self.shared.attr.lock().unwrap_or_else(|p| p.into_inner()) = attr;
    }

    /// Records a local change of content: the size, and mtime/ctime as of now.
    fn touched(&self, size: u64) {
        self.shared.version.fetch_add(1, Ordering::AcqRel);
        let mut attr = self.shared.attr.lock().unwrap_or_else(|p| p.into_inner());
        attr.size = size;
        attr.mtime = now();
        attr.ctime = attr.mtime;
    }

    /// Up to `len` bytes at `offset`; short only at the end of the file.
    pub async fn read(&self, offset: u64, len: u32) -> Result<Bytes> {
        Ok(self.read_around(offset, len, 0).await?.0)
    }

    /// [`OpenFile::read`]; and when no stream serves the read, it lies within one
    /// `piece`-aligned piece of the file, and this mount is not writing the file, also that
    /// whole piece with its offset (`piece` 0: never). A datanode reads, checks and sends whole
    /// checksum pieces anyway, so the rest of the piece costs nothing more; the caller may keep
    /// it for the reads around this one. Not when a replica of this machine serves the read:
    /// that reads and checks only the 4 KiB pages asked for.
    pub async fn read_around(
        &self,
        offset: u64,
        len: u32,
        piece: u64,
    ) -> Result<(Bytes, Option<(u64, Bytes)>)> {
        let len = u64::from(len);
        let version = self.shared.version.load(Ordering::Acquire);
        {
            let mut ra = self.shared.read_ahead.lock().await;
            if let Some(stream) = ra.stream.as_mut() {
                let got = if stream.covers(version, offset) {
                    stream.read(offset, len).await
                } else {
                    None
                };
                match got {
                    Some(bytes) if self.shared.version.load(Ordering::Acquire) == version => {
                        ra.note(offset, offset + bytes.len() as u64);
                        return Ok((bytes, None));
                    }
                    // Another version, a read elsewhere, or a failed stream: the direct way.
                    _ => ra.stream = None,
                }
            }
        }
        let widen_to = if piece > 0
            && !self.is_writable()
            && !self.shared.state.read().await.reads_local_pages(offset)
        {
            let start = offset / piece * piece;
            Some((start, start.saturating_add(piece).min(self.attr().size)))
        } else {
            None
        };
        let (start, end) = widen_to.unwrap_or((offset, offset));
        let widen = widen_to.is_some()
            && offset < end
            && offset.saturating_add(len) <= start + piece
            && len < end - start;
        if !widen {
            let bytes = read_direct(&self.shared, offset, len).await?;
            self.after_read(offset, offset + bytes.len() as u64, version)
                .await;
            return Ok((bytes, None));
        }
        let whole = read_direct(&self.shared, start, end - start).await?;
        let from = ((offset - start) as usize).min(whole.len());
        let to = ((offset + len - start) as usize).min(whole.len());
        let bytes = whole.slice(from..to);
        self.after_read(offset, offset + bytes.len() as u64, version)
            .await;
        let unchanged =
            self.shared.version.load(Ordering::Acquire) == version && !self.is_writable();
        Ok((bytes, unchanged.then_some((start, whole))))
    }

    /// Notes a read served the direct way; the second read of a sequential run starts a
    /// stream from where the run reached, when nothing is unflushed.
    async fn after_read(&self, offset: u64, end: u64, version: u64) {
        let s = &self.shared;
        let from = {
            let mut ra = s.read_ahead.lock().await;
            ra.note(offset, end);
            if ra.stream.is_some() || ra.run < 2 || ra.last_end >= self.attr().size {
                return;
            }
            ra.last_end
        };
        let Some(layout) = s.state.read().await.stored_layout() else {
            return;
        };
        let mut ra = s.read_ahead.lock().await;
        if ra.stream.is_none() && s.version.load(Ordering::Acquire) == version {
            ra.stream = Some(Sequential::start(&s.client, s.ino, layout, from, version));
        }
    }

    /// Writes `data` at `offset`; returns the bytes accepted (all of them).
    pub async fn write(&self, offset: u64, data: &[u8]) -> Result<u32> {
        if !self.is_writable() {
            return Err(bad_fd(self.shared.ino));
        }
        let len = u32::try_from(data.len())
            .map_err(|_| Error::api(ErrorCode::Invalid, "a write of over 4 GiB"))?;
        let mut state = self.shared.state.write().await;
        state.write(offset, data).await?;
        self.touched(state.size);
        if state.dirty_bytes > self.shared.dirty_limit.load(Ordering::Relaxed) {
            self.flush_locked(&mut state, false).await?;
        }
        Ok(len)
    }

    /// Truncates down or up while open; committed at flush (at once when nothing is
    /// unflushed).
    pub async fn set_len(&self, size: u64) -> Result<()> {
        let s = &self.shared;
        let mut state = s.state.write().await;
        if state.is_clean() {
            let writable = self.is_writable();
            let req = SetAttrRequest {
                ino: s.ino,
                perm: None,
                uid: None,
                gid: None,
                size: Some(size),
                atime: None,
                mtime: None,
                client: writable.then(|| s.client.client_id().clone()),
            };
            let attr = s.client.call::<SetAttr>(&req).await?;
            state.reload(&s.client.layout(s.ino).await?);
            s.version.fetch_add(1, Ordering::AcqRel);
            self.set_attr(attr, state.size);
            return Ok(());
        }
        if !self.is_writable() {
            return Err(bad_fd(s.ino));
        }
        state.set_len(size).await?;
        self.touched(state.size);
        Ok(())
    }

    /// Makes everything written so far durable and visible (commit); keeps the lease.
    pub async fn flush(&self) -> Result<Attr> {
        let mut state = self.shared.state.write().await;
        self.flush_locked(&mut state, false).await
    }

    async fn flush_locked(&self, state: &mut FileState, release: bool) -> Result<Attr> {
        if let Some(attr) = state.flush(release).await? {
            self.set_attr(attr, state.size);
        }
        Ok(self.attr())
    }

    /// Last handle closed: flush, then release the lease.
    pub async fn close(&self) -> Result<Attr> {
        let s = &self.shared;
        let mut state = s.state.write().await;
        if !self.is_writable() {
            return Ok(self.attr());
        }
        let result = self.flush_locked(&mut state, true).await;
        if result.is_err() {
            let req = LeaseRequest {
                ino: s.ino,
                client: s.client.client_id().clone(),
            };
            if let Err(error) = s.client.call::<ReleaseLease>(&req).await {
                warn!(ino = %s.ino, %error, "could not release the write lease; it will expire");
            }
        }
        state.lease = None;
        s.writable.store(false, Ordering::Release);
        result
    }
}

/// Reads through the file state; a read reaching the block being streamed finishes that block
/// first.
async fn read_direct(shared: &Shared0, offset: u64, len: u64) -> Result<Bytes> {
    {
        let state = shared.state.read().await;
        if !state.read_needs_finish(offset, len) {
            return state.read(offset, len).await;
        }
    }
    let mut state = shared.state.write().await;
    state.finish_append().await?;
    state.read(offset, len).await
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        if self.is_writable() && Arc::strong_count(&self.shared) == 1 {
            warn!(ino = %self.shared.ino, "open file dropped without close; unflushed writes are lost");
        }
    }
}
