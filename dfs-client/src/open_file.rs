//! Files open for random access, as the FUSE mount uses them: reads and writes at any offset,
//! truncate while open, flush and close that commit atomically (close-to-open consistency).
//!
//! One [`OpenFile`] per inode per process: it holds the write lease (renewed while open), the
//! unflushed writes ([`crate::file_state`]), and a read-ahead window for sequential readers.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::file_state::FileState;
use bytes::Bytes;
use dfs_proto::rest::{
    Attr, FileBlocks, FileKind, GetAttr, GetBlocks, GetBlocksRequest, InodeRequest, LeaseRequest,
    OpenWrite, ReleaseLease, SetAttr, SetAttrRequest, Timestamp,
};
use dfs_proto::{ErrorCode, InodeId};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::RwLock;
use tracing::warn;

/// Default bound on unflushed random-write bytes per file; past it the file is flushed early.
pub const DEFAULT_DIRTY_LIMIT: usize = 64 * 1024 * 1024;
/// Bytes a sequential reader has fetched ahead of it (per window; at most two windows).
const READ_AHEAD: u64 = 4 * 1024 * 1024;

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
    read_ahead: Mutex<ReadAhead>,
}

#[derive(Default)]
struct ReadAhead {
    /// Where the last read ended (a read starting there is sequential).
    last_end: u64,
    windows: Vec<Window>,
}

/// Bytes being fetched (or fetched) ahead of a sequential reader. Dropping a window stops its
/// fetch, so a reader that skips or finishes holds no read-ahead memory.
struct Window {
    off: u64,
    version: u64,
    data: Shared<BoxFuture<'static, Option<Bytes>>>,
    fetch: tokio::task::AbortHandle,
}

impl Drop for Window {
    fn drop(&mut self) {
        self.fetch.abort();
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
        let (attr, blocks, lease) = if write {
            let open = self
                .call::<OpenWrite>(&LeaseRequest {
                    ino,
                    client: self.client_id().clone(),
                })
                .await?;
            let lease = self.hold_leases().await?;
            (open.attr, open.blocks, Some(lease))
        } else {
            let attr = self.call::<GetAttr>(&InodeRequest { ino }).await?;
            (attr, Vec::new(), None)
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
        let block_size = match attr.block_size {
            0 => self.cluster_info().await?.default_block_size.max(1),
            n => n,
        };
        let mut state = FileState::new(self, &attr, blocks, block_size);
        if !write {
            state.reload(&self.layout(ino).await?);
        }
        state.lease = lease;
        if truncate {
            if !write {
                return Err(bad_fd(ino));
            }
            state.set_len(0).await?;
        }
        let mut attr = attr;
        attr.size = state.size;
        Ok(Arc::new(OpenFile {
            shared: Arc::new(Shared0 {
                client: self.clone(),
                ino,
                writable: AtomicBool::new(write),
                attr: Mutex::new(attr),
                state: RwLock::new(state),
                dirty_limit: AtomicUsize::new(DEFAULT_DIRTY_LIMIT),
                version: AtomicU64::new(0),
                read_ahead: Mutex::new(ReadAhead::default()),
            }),
        }))
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
        let len = u64::from(len);
        if let Some(bytes) = self.take_read_ahead(offset, len).await {
            self.after_read(offset, offset + bytes.len() as u64);
            return Ok(bytes);
        }
        let bytes = read_direct(&self.shared, offset, len, true)
            .await?
            .unwrap_or_default();
        self.after_read(offset, offset + bytes.len() as u64);
        Ok(bytes)
    }

    /// The read served from a read-ahead window, when one holds all of it.
    async fn take_read_ahead(&self, offset: u64, len: u64) -> Option<Bytes> {
        let version = self.shared.version.load(Ordering::Acquire);
        let (off, data) = {
            let mut ra = self
                .shared
                .read_ahead
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            ra.windows.retain(|w| w.version == version);
            let w = ra
                .windows
                .iter()
                .find(|w| w.off <= offset && offset < w.off + READ_AHEAD)?;
            (w.off, w.data.clone())
        };
        let bytes = data.await?;
        if self.shared.version.load(Ordering::Acquire) != version {
            return None;
        }
        let from = (offset - off) as usize;
        let to = from + len as usize;
        // A window shorter than its span ended at the end of the file.
        if to <= bytes.len() || (bytes.len() as u64) < READ_AHEAD {
            return Some(bytes.slice(from.min(bytes.len())..to.min(bytes.len())));
        }
        None
    }

    /// Notes where a read ended; a sequential reader gets the next window fetched.
    fn after_read(&self, offset: u64, end: u64) {
        let size = self.attr().size;
        let version = self.shared.version.load(Ordering::Acquire);
        let mut ra = self
            .shared
            .read_ahead
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let sequential = offset == ra.last_end;
        ra.last_end = end;
        ra.windows
            .retain(|w| w.version == version && w.off + READ_AHEAD > offset);
        if !sequential || end >= size {
            return;
        }
        // Keep the window holding `end` and the one after it in flight.
        for n in 0..2 {
            let next = ra
                .windows
                .iter()
                .map(|w| w.off + READ_AHEAD)
                .max()
                .unwrap_or(end);
            let next = if ra
                .windows
                .iter()
                .any(|w| w.off <= end && end < w.off + READ_AHEAD)
            {
                next
            } else {
                end
            };
            if next >= size || (n == 1 && next > end + READ_AHEAD) {
                break;
            }
            let shared = self.shared.clone();
            // Spawned now, so the fetch runs while the caller consumes the current window.
            let task =
                tokio::spawn(async move { read_direct(&shared, next, READ_AHEAD, false).await });
            let fetch = task.abort_handle();
            let fut = async move {
                match task.await {
                    Ok(Ok(bytes)) => bytes,
                    _ => None,
                }
            };
            ra.windows.push(Window {
                off: next,
                version,
                data: fut.boxed().shared(),
                fetch,
            });
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

/// Reads through the file state. With `may_finish`, a read reaching the block being streamed
/// finishes that block first; without (read-ahead), such a read answers `None`.
async fn read_direct(
    shared: &Shared0,
    offset: u64,
    len: u64,
    may_finish: bool,
) -> Result<Option<Bytes>> {
    {
        let state = shared.state.read().await;
        if !state.read_needs_finish(offset, len) {
            return state.read(offset, len).await.map(Some);
        }
    }
    if !may_finish {
        return Ok(None);
    }
    let mut state = shared.state.write().await;
    state.finish_append().await?;
    state.read(offset, len).await.map(Some)
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        if self.is_writable() && Arc::strong_count(&self.shared) == 1 {
            warn!(ino = %self.shared.ino, "open file dropped without close; unflushed writes are lost");
        }
    }
}
