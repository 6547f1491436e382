//! Regular files: create, mknod, open, read, write, flush, fsync and release.
//!
//! Data moves through the client library's [`dfs_client::OpenFile`]; this module only decides
//! which `OpenFile` a handle uses, when it commits (flush, fsync, the last release) and whether
//! the kernel may keep its cached pages.

use super::handles::{FileHandle, Slot};
use super::{Caller, DfsFs, lock, utf8};
use crate::error::{FsError, Result};
use bytes::Bytes;
use dfs_client::OpenFile;
use dfs_proto::checksum::CHECKSUM_CHUNK;
use dfs_proto::rest::{Attr, Create, CreateRequest, FileKind};
use dfs_proto::{ErrorCode, InodeId};
use std::ffi::OsStr;
use std::sync::Arc;

/// How a file is opened, from the `open(2)` flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenFlags {
    /// `O_RDONLY` or `O_RDWR`.
    pub read: bool,
    pub write: bool,
    pub truncate: bool,
    pub append: bool,
    /// `O_EXCL` (with create: fail if the name exists).
    pub exclusive: bool,
}

impl OpenFlags {
    pub fn from_raw(flags: i32) -> OpenFlags {
        OpenFlags {
            read: flags & libc::O_ACCMODE != libc::O_WRONLY,
            write: flags & libc::O_ACCMODE != libc::O_RDONLY,
            truncate: flags & libc::O_TRUNC != 0,
            append: flags & libc::O_APPEND != 0,
            exclusive: flags & libc::O_EXCL != 0,
        }
    }
}

/// The answer to a read.
#[derive(Debug, Clone)]
pub struct ReadReply {
    /// The bytes asked for.
    pub data: Bytes,
    /// For a small read of a file this mount is not writing, the whole checksum piece around
    /// it: the datanode read, checked and sent all of it anyway, and with it in the kernel's
    /// page cache the reads around this one (random reads of a cold file) need no trip here.
    pub fill: Option<PageFill>,
}

/// File data the kernel may keep in its page cache: current as of this mount's open of the
/// file, unless [`DfsFs::cache_changes`] has moved from `changes` by the time it is stored.
#[derive(Debug, Clone)]
pub struct PageFill {
    pub ino: InodeId,
    pub offset: u64,
    pub data: Bytes,
    pub changes: u64,
}

/// The answer to open and create.
#[derive(Debug, Clone)]
pub struct Opened {
    pub fh: u64,
    pub attr: Attr,
    /// The kernel's cached pages of the file are still current.
    pub keep_cache: bool,
}

impl DfsFs {
    /// Opens file `ino` for `caller`, sharing the mount's `OpenFile` of it if there is one.
    ///
    /// The namenode checks the caller's read/write permission first (root reads and writes
    /// anything, so its opens skip the round trip); the open file itself then works as the mount
    /// (its lease, reads and commits are shared by every handle of this mount).
    pub async fn open(&self, ino: InodeId, flags: OpenFlags, caller: Caller) -> Result<Opened> {
        if flags.write || flags.truncate {
            self.ensure_writable_mount()?;
        }
        if !caller.is_root() {
            let mut mask = 0;
            if flags.read {
                mask |= libc::R_OK;
            }
            if flags.write || flags.truncate {
                mask |= libc::W_OK;
            }
            self.check_access(ino, mask, caller).await?;
        }
        self.open_slot(ino, flags, None).await
    }

    /// Opens `ino` in its slot; `created` is the attributes of a file this mount has just
    /// created (and, when opened for writing, holds the lease of).
    async fn open_slot(
        &self,
        ino: InodeId,
        flags: OpenFlags,
        created: Option<Attr>,
    ) -> Result<Opened> {
        // Any open may drop the file's cached pages (it finds another version) or let this
        // mount change them.
        self.cache_may_change();
        let slot = self.handles.slot(ino);
        let result = self.open_in_slot(ino, flags, &slot, created).await;
        if result.is_err() {
            self.handles.drop_slot_if_idle(ino, &slot);
        }
        result
    }

    async fn open_in_slot(
        &self,
        ino: InodeId,
        flags: OpenFlags,
        slot: &Slot,
        created: Option<Attr>,
    ) -> Result<Opened> {
        let _transition = slot.transition.lock().await;
        let existing = lock(&slot.state).file.clone();
        let (file, keep_cache) = match (existing, created) {
            (None, Some(attr)) => {
                let file = self.client.open_created(attr, flags.write).await?;
                lock(&self.cached_versions).insert(ino, file.attr().data_version);
                (file, false)
            }
            (Some(file), _) => {
                if flags.write && !file.is_writable() {
                    file.make_writable().await?;
                }
                if flags.truncate {
                    file.set_len(0).await?;
                }
                // The kernel's pages already hold everything this mount wrote.
                (file, true)
            }
            (None, None) => {
                // Close-to-open: `open_file` fetches fresh attributes from the namenode.
                let file = self
                    .client
                    .open_file(ino, flags.write, flags.truncate)
                    .await?;
                let version = file.attr().data_version;
                let keep = lock(&self.cached_versions).insert(ino, version) == Some(version)
                    && !flags.truncate;
                (file, keep)
            }
        };
        {
            let mut state = lock(&slot.state);
            state.file = Some(file.clone());
            state.handles += 1;
        }
        let attr = file.attr();
        let fh = self.handles.insert_file(FileHandle {
            file,
            write: flags.write,
            append: flags.append,
        });
        Ok(Opened {
            fh,
            attr,
            keep_cache,
        })
    }

    /// `open(O_CREAT)` of a name the kernel found missing: creates a regular file and opens it.
    pub async fn create(
        &self,
        parent: InodeId,
        name: &OsStr,
        mode: u32,
        flags: OpenFlags,
        caller: Caller,
    ) -> Result<Opened> {
        self.ensure_writable_mount()?;
        let req = CreateRequest {
            parent,
            name: utf8(name, "name")?.to_string(),
            kind: FileKind::File,
            perm: mode & 0o7777,
            uid: caller.uid,
            gid: caller.gid,
            lease: flags.write.then(|| self.client.client_id().clone()),
        };
        let created = dfs_client::as_caller(caller.clone(), self.client.call::<Create>(&req));
        match created.await {
            Ok(attr) => {
                // A new file: nothing of it is cached, and O_TRUNC has nothing to do. Its creator
                // may use it as opened whatever its mode (as open(2) with O_CREAT): no check.
                let flags = OpenFlags {
                    truncate: false,
                    ..flags
                };
                let opened = self.open_slot(attr.ino, flags, Some(attr)).await?;
                Ok(Opened {
                    keep_cache: false,
                    ..opened
                })
            }
            // Another client created it since the kernel's lookup: open it as open(2) would.
            Err(e) if e.code() == Some(ErrorCode::Exists) && !flags.exclusive => {
                let attr = dfs_client::as_caller(caller.clone(), self.lookup(parent, name)).await?;
                if attr.kind == FileKind::Dir {
                    return Err(dfs_client::Error::api(ErrorCode::IsDir, "is a directory").into());
                }
                self.open(attr.ino, flags, caller).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `mknod(2)`: regular files and FIFOs. Device nodes and sockets are not supported
    /// (`ENOTSUP`, where ext4 would let root make them).
    pub async fn mknod(
        &self,
        parent: InodeId,
        name: &OsStr,
        mode: u32,
        caller: Caller,
    ) -> Result<Attr> {
        self.ensure_writable_mount()?;
        let kind = match mode & libc::S_IFMT {
            libc::S_IFREG | 0 => FileKind::File,
            libc::S_IFIFO => FileKind::Fifo,
            _ => return Err(FsError::NotSupported("device nodes and sockets")),
        };
        let req = CreateRequest {
            parent,
            name: utf8(name, "name")?.to_string(),
            kind,
            perm: mode & 0o7777,
            uid: caller.uid,
            gid: caller.gid,
            lease: None,
        };
        Ok(self.client.call::<Create>(&req).await?)
    }

    fn handle(&self, fh: u64) -> Result<FileHandle> {
        self.handles.file(fh).ok_or(FsError::BadHandle(fh))
    }

    /// A read; a small one that no stream serves comes with its whole checksum piece for the
    /// kernel's page cache (see [`ReadReply`]).
    pub async fn read(&self, fh: u64, offset: u64, len: u32) -> Result<ReadReply> {
        let handle = self.handle(fh)?;
        let changes = self.cache_changes();
        let (data, piece) = handle
            .file
            .read_around(offset, len, CHECKSUM_CHUNK as u64)
            .await?;
        let fill = piece.map(|(offset, data)| PageFill {
            ino: handle.file.ino(),
            offset,
            data,
            changes,
        });
        Ok(ReadReply { data, fill })
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let handle = self.handle(fh)?;
        if !handle.write {
            return Err(FsError::NotWritable(fh));
        }
        // O_APPEND: at the end as this mount sees it (the lease makes it the only writer).
        let offset = if handle.append {
            handle.file.attr().size
        } else {
            offset
        };
        Ok(handle.file.write(offset, data).await?)
    }

    /// `close(2)` of one descriptor: commits what was written, so that errors reach `close`.
    pub async fn flush(&self, fh: u64) -> Result<()> {
        let handle = self.handle(fh)?;
        if handle.write {
            let attr = handle.file.flush().await?;
            lock(&self.cached_versions).insert(attr.ino, attr.data_version);
        }
        Ok(())
    }

    pub async fn fsync(&self, fh: u64) -> Result<()> {
        self.flush(fh).await
    }

    /// The last reference to a handle is gone; the last handle of an inode closes its
    /// `OpenFile` (commit, then the lease is released).
    pub async fn release(&self, fh: u64) -> Result<()> {
        let handle = self.handles.remove_file(fh).ok_or(FsError::BadHandle(fh))?;
        let ino = handle.file.ino();
        drop(handle);
        let slot = self.handles.slot(ino);
        let result = self.release_in_slot(ino, &slot).await;
        self.handles.drop_slot_if_idle(ino, &slot);
        result
    }

    async fn release_in_slot(&self, ino: InodeId, slot: &Slot) -> Result<()> {
        let _transition = slot.transition.lock().await;
        let last: Option<Arc<OpenFile>> = {
            let mut state = lock(&slot.state);
            state.handles = state.handles.saturating_sub(1);
            if state.handles == 0 {
                state.file.take()
            } else {
                None
            }
        };
        if let Some(file) = last {
            let attr = file.close().await?;
            lock(&self.cached_versions).insert(ino, attr.data_version);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_from_raw() {
        let f = OpenFlags::from_raw(libc::O_RDONLY);
        assert!(!f.write && !f.truncate && !f.append);
        let f = OpenFlags::from_raw(libc::O_WRONLY | libc::O_TRUNC | libc::O_CREAT);
        assert!(f.write && f.truncate && !f.exclusive);
        let f = OpenFlags::from_raw(libc::O_RDWR | libc::O_APPEND | libc::O_EXCL);
        assert!(f.write && f.append && f.exclusive);
    }
}
