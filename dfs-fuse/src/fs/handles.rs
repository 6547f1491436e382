//! The handle table: which files and directories this mount has open.
//!
//! Every `open` gets its own file handle number, but all handles of one inode share one
//! [`OpenFile`] (one writer per file per mount, and reads see the mount's unflushed writes). The
//! per-inode [`Slot`] counts those handles; the last release closes the `OpenFile`.

use super::dir::DirHandle;
use dfs_client::OpenFile;
use dfs_proto::InodeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// One `open` of a file.
#[derive(Clone)]
pub struct FileHandle {
    pub file: Arc<OpenFile>,
    /// Opened with `O_WRONLY` or `O_RDWR`.
    pub write: bool,
    /// Opened with `O_APPEND`: every write goes at the current end of the file.
    pub append: bool,
}

/// What this mount has open of one inode.
#[derive(Default)]
pub struct Slot {
    /// Serializes opening the inode's `OpenFile` and closing it at the last release, so a
    /// close that releases the lease never overlaps an open that takes it. Held across awaits.
    pub transition: tokio::sync::Mutex<()>,
    /// The shared file and its handle count (short critical sections only).
    pub state: Mutex<SlotState>,
}

#[derive(Default)]
pub struct SlotState {
    pub file: Option<Arc<OpenFile>>,
    pub handles: usize,
}

/// File and directory handles. Lock order: `slots` before any `Slot::state`; `files` and
/// `dirs` are never held together with another lock.
#[derive(Default)]
pub struct HandleTable {
    next: AtomicU64,
    files: Mutex<HashMap<u64, FileHandle>>,
    slots: Mutex<HashMap<InodeId, Arc<Slot>>>,
    dirs: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<DirHandle>>>>,
}

/// A poisoned lock only means another task panicked mid-update of a map; the maps stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HandleTable {
    fn next_id(&self) -> u64 {
        // Start at 1: some tools treat handle 0 as "none".
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The slot of `ino`, created if this mount has nothing of it open.
    pub fn slot(&self, ino: InodeId) -> Arc<Slot> {
        lock(&self.slots).entry(ino).or_default().clone()
    }

    /// Forgets `slot` if it holds nothing and nobody else is using it.
    pub fn drop_slot_if_idle(&self, ino: InodeId, slot: &Arc<Slot>) {
        let mut slots = lock(&self.slots);
        let idle = lock(&slot.state).file.is_none();
        // Two references: the map's and the caller's. Others clone only under `slots`.
        if idle
            && Arc::strong_count(slot) == 2
            && slots.get(&ino).is_some_and(|s| Arc::ptr_eq(s, slot))
        {
            slots.remove(&ino);
        }
    }

    /// The `OpenFile` this mount shares for `ino`, if it has the inode open.
    pub fn open_file(&self, ino: InodeId) -> Option<Arc<OpenFile>> {
        let slots = lock(&self.slots);
        let slot = slots.get(&ino)?;
        lock(&slot.state).file.clone()
    }

    /// Whether any file is open (so an unlink or rename may need to protect one).
    pub fn any_file_open(&self) -> bool {
        !lock(&self.slots).is_empty()
    }

    /// Every open file, for closing at unmount.
    pub fn all_open_files(&self) -> Vec<Arc<OpenFile>> {
        let slots = lock(&self.slots);
        slots
            .values()
            .filter_map(|s| lock(&s.state).file.clone())
            .collect()
    }

    pub fn insert_file(&self, handle: FileHandle) -> u64 {
        let fh = self.next_id();
        lock(&self.files).insert(fh, handle);
        fh
    }

    pub fn file(&self, fh: u64) -> Option<FileHandle> {
        lock(&self.files).get(&fh).cloned()
    }

    pub fn remove_file(&self, fh: u64) -> Option<FileHandle> {
        lock(&self.files).remove(&fh)
    }

    pub fn insert_dir(&self, dir: DirHandle) -> u64 {
        let fh = self.next_id();
        lock(&self.dirs).insert(fh, Arc::new(tokio::sync::Mutex::new(dir)));
        fh
    }

    pub fn dir(&self, fh: u64) -> Option<Arc<tokio::sync::Mutex<DirHandle>>> {
        lock(&self.dirs).get(&fh).cloned()
    }

    pub fn remove_dir(&self, fh: u64) -> bool {
        lock(&self.dirs).remove(&fh).is_some()
    }
}
