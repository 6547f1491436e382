//! One inode as the namespace keeps it: the attributes every kind shares and a body per kind
//! (a file's block list, a directory's entries, a symlink's target).

use dfs_proto::rest::{Attr, BlockInfo, FileKind, Timestamp};
use dfs_proto::{ApiError, ErrorCode, InodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Permission bits an inode keeps (`mode & 0o7777`).
pub(super) const PERM_MASK: u32 = 0o7777;

/// Most hard links a non-directory may have (as ext4).
pub(super) const LINK_MAX: u32 = 65_000;

/// Longest symlink target in bytes (as Linux's `PATH_MAX`).
pub(super) const SYMLINK_MAX: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Inode {
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    /// Directory entries naming this inode; for a directory, 2 + its subdirectories. A file
    /// may sit at 0 while a lease keeps it alive after its last unlink.
    pub nlink: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// Bumped on every change to a file's contents (commit, truncate), so clients know when
    /// their cached pages are stale.
    pub data_version: u64,
    pub body: Body,
    /// Extended attributes (`user.*` only), by full name. Absent in snapshots written before
    /// attributes existed.
    #[serde(default)]
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Body {
    File(FileBody),
    Dir(DirBody),
    Symlink { target: String },
    Fifo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct FileBody {
    pub size: u64,
    /// Fixed at creation from the namespace's config.
    pub block_size: u64,
    /// Committed blocks; the position is the block index. Holes are `BlockInfo::HOLE`.
    pub blocks: Vec<BlockInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct DirBody {
    /// The one directory holding this one (itself for the root): directories have no hard
    /// links, so this is what rename's "into its own subtree" check walks up.
    pub parent: InodeId,
    /// Entries in name order. Keys are validated `Name`s; kept as `String` so that readdir can
    /// page from any `after` string.
    pub entries: BTreeMap<String, InodeId>,
}

impl Inode {
    /// A new inode with all three times at `now`.
    pub fn new(body: Body, perm: u32, uid: u32, gid: u32, nlink: u32, now: Timestamp) -> Inode {
        Inode {
            perm: perm & PERM_MASK,
            uid,
            gid,
            nlink,
            atime: now,
            mtime: now,
            ctime: now,
            data_version: 0,
            body,
            xattrs: BTreeMap::new(),
        }
    }

    pub fn kind(&self) -> FileKind {
        match self.body {
            Body::File(_) => FileKind::File,
            Body::Dir(_) => FileKind::Dir,
            Body::Symlink { .. } => FileKind::Symlink,
            Body::Fifo => FileKind::Fifo,
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir(_))
    }

    pub fn attr(&self, ino: InodeId) -> Attr {
        let (size, block_size) = match &self.body {
            Body::File(f) => (f.size, f.block_size),
            Body::Dir(d) => (d.entries.len() as u64, 0),
            Body::Symlink { target } => (target.len() as u64, 0),
            Body::Fifo => (0, 0),
        };
        Attr {
            ino,
            kind: self.kind(),
            perm: self.perm,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            size,
            block_size,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            data_version: self.data_version,
        }
    }

    pub fn as_dir(&self) -> Option<&DirBody> {
        match &self.body {
            Body::Dir(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_dir_mut(&mut self) -> Option<&mut DirBody> {
        match &mut self.body {
            Body::Dir(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_file(&self) -> Option<&FileBody> {
        match &self.body {
            Body::File(f) => Some(f),
            _ => None,
        }
    }

    pub fn as_file_mut(&mut self) -> Option<&mut FileBody> {
        match &mut self.body {
            Body::File(f) => Some(f),
            _ => None,
        }
    }

    /// The file body, or the errno a file-only operation answers for other kinds (`EISDIR`
    /// for a directory, `EINVAL` otherwise).
    pub fn require_file(&self, ino: InodeId) -> Result<&FileBody, ApiError> {
        match &self.body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(ApiError::new(
                ErrorCode::IsDir,
                format!("inode {ino} is a directory, not a regular file"),
            )),
            _ => Err(ApiError::new(
                ErrorCode::Invalid,
                format!("inode {ino} is a {:?}, not a regular file", self.kind()),
            )),
        }
    }

    /// Directory content changed: entries added, removed or renamed.
    pub fn touch_dir(&mut self, now: Timestamp) {
        self.mtime = now;
        self.ctime = now;
    }
}

/// `ts` plus `ms` milliseconds (saturating far in the future).
pub(super) fn add_ms(ts: Timestamp, ms: u64) -> Timestamp {
    let extra_sec = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let nsec = u64::from(ts.nsec) + (ms % 1000) * 1_000_000;
    let carry = i64::try_from(nsec / 1_000_000_000).unwrap_or(i64::MAX);
    Timestamp {
        sec: ts.sec.saturating_add(extra_sec).saturating_add(carry),
        // Below 1e9, so it fits.
        nsec: (nsec % 1_000_000_000) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_ms_carries_into_seconds() {
        let ts = Timestamp {
            sec: 10,
            nsec: 900_000_000,
        };
        assert_eq!(
            add_ms(ts, 1_250),
            Timestamp {
                sec: 12,
                nsec: 150_000_000
            }
        );
        assert_eq!(add_ms(ts, 0), ts);
    }
}
