//! The dfs file system as the mount sees it, knowing nothing of FUSE: every operation takes owned
//! arguments in dfs terms (inode ids, names, [`Caller`]) and answers dfs attributes or an
//! [`FsError`]. The FUSE adapter in [`crate::fuse`] is a thin translation on top, so everything
//! here can be tested against a cluster without a mount.
//!
//! Inode numbers are the namenode's inode ids (the root is 1, as FUSE wants), so nothing maps
//! them and the kernel's lookup counts need no bookkeeping.

mod attr;
pub mod dir;
mod file;
pub mod handles;
mod xattr;
pub use xattr::XattrReply;

pub use attr::{FsStats, IO_SIZE, SetAttr};
pub use dir::{DirListEntry, RenameMode};
pub use file::{OpenFlags, Opened, PageFill, ReadReply};

use crate::error::{FsError, Result};
use dfs_client::Client;
use dfs_proto::InodeId;
use dfs_proto::rest::Attr;
use handles::HandleTable;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Who makes a call: the owner of what it creates, and whose permissions the namenode checks
/// (the FUSE request's uid and gid and the requesting process's supplementary groups).
pub type Caller = dfs_proto::Identity;

/// Settings of one mount.
#[derive(Debug, Clone, Default)]
pub struct FsConfig {
    /// `-o ro`: every change fails with `EROFS`.
    pub read_only: bool,
}

/// The file system of one mount. Cheap to share (`Arc`), safe to call from many tasks at once.
pub struct DfsFs {
    client: Client,
    config: FsConfig,
    handles: HandleTable,
    /// Each file's `data_version` when this mount's page cache last held its pages: an open that
    /// finds the same version keeps the cache (`keep_cache`), any other drops it.
    cached_versions: Mutex<HashMap<InodeId, u64>>,
    /// Parent of each directory seen (for `..` in listings); the root is its own parent.
    parents: Mutex<HashMap<InodeId, InodeId>>,
    /// Bumped when this mount starts anything after which the kernel's cached pages of a file
    /// may change or be dropped (every open: one that finds another version of the file drops
    /// them; an open for writing or a truncating setattr lets them change), before the kernel
    /// acts on it: a piece read for the page cache ([`ReadReply::fill`]) while it moved may be
    /// older than what the kernel then holds.
    cache_changes: AtomicU64,
}

/// A poisoned lock only means another task panicked mid-update of a map; the maps stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A name from the kernel as the UTF-8 string dfs stores (`EINVAL` otherwise).
fn utf8<'a>(name: &'a OsStr, what: &'static str) -> Result<&'a str> {
    name.to_str().ok_or(FsError::NotUtf8(what))
}

impl DfsFs {
    pub fn new(client: Client, config: FsConfig) -> Arc<DfsFs> {
        Arc::new(DfsFs {
            client,
            config,
            handles: HandleTable::default(),
            cached_versions: Mutex::new(HashMap::new()),
            parents: Mutex::new(HashMap::from([(InodeId::ROOT, InodeId::ROOT)])),
            cache_changes: AtomicU64::new(0),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// See [`DfsFs::cache_changes`]: compare before and after a page-cache fill.
    pub fn cache_changes(&self) -> u64 {
        self.cache_changes.load(Ordering::Acquire)
    }

    fn cache_may_change(&self) {
        self.cache_changes.fetch_add(1, Ordering::AcqRel);
    }

    fn ensure_writable_mount(&self) -> Result<()> {
        if self.config.read_only {
            return Err(FsError::ReadOnly);
        }
        Ok(())
    }

    /// `attr` as this mount sees it: a file it has open for writing has the size (and mtime)
    /// of its unflushed writes.
    fn overlay(&self, mut attr: Attr) -> Attr {
        if let Some(file) = self.handles.open_file(attr.ino)
            && file.is_writable()
        {
            let mine = file.attr();
            attr.size = mine.size;
            attr.mtime = attr.mtime.max(mine.mtime);
        }
        attr
    }

    /// Remembers `child`'s parent if it is a directory.
    fn note_parent(&self, parent: InodeId, attr: &Attr) {
        if attr.kind == dfs_proto::rest::FileKind::Dir {
            lock(&self.parents).insert(attr.ino, parent);
        }
    }

    fn parent_of(&self, dir: InodeId) -> InodeId {
        lock(&self.parents).get(&dir).copied().unwrap_or(dir)
    }

    /// Closes every file still open (unmount while handles were open): their data is committed
    /// and their leases released. Returns how many failed.
    pub async fn close_all(&self) -> usize {
        let mut failed = 0;
        for file in self.handles.all_open_files() {
            if let Err(e) = file.close().await {
                tracing::warn!(ino = %file.ino(), error = %e, "close at unmount failed");
                failed += 1;
            }
        }
        failed
    }
}
