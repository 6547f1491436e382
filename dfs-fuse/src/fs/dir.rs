//! The namespace: mkdir, rmdir, unlink, rename, symlink, readlink, link and directory listings.
//!
//! A listing is read page by page from the namenode (`ReadDir` with `after`) as the kernel asks
//! for it, and kept for the life of the directory handle, so offsets stay valid while entries
//! come and go.
//!
//! Unlink (or rename over) a file this mount has open keeps its data readable through the open
//! handles: the mount first takes the file's write lease, and the namenode keeps an inode with
//! no links while a lease is held; the last close releases the lease and the namenode frees it.

use super::{Caller, DfsFs, utf8};
use crate::error::{FsError, Result};
use dfs_proto::InodeId;
use dfs_proto::rest::{
    Attr, DirEntry, EntryRequest, InodeRequest, Link, LinkRequest, Lookup, LookupRequest, Mkdir,
    MkdirRequest, ReadDir, ReadDirRequest, ReadLink, Rename, RenameRequest, Rmdir, Symlink,
    SymlinkRequest, Unlink,
};
use std::ffi::OsStr;
use std::path::Path;

/// Entries asked for per `ReadDir` page.
const PAGE: u32 = 500;

/// `renameat2` flags in dfs terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenameMode {
    pub noreplace: bool,
    pub exchange: bool,
}

impl RenameMode {
    /// From the raw `RENAME_*` bits; `RENAME_WHITEOUT` (overlayfs) is not supported, and
    /// `NOREPLACE` with `EXCHANGE` is `EINVAL` as in the kernel.
    pub fn from_bits(bits: u32) -> Result<RenameMode> {
        let known = libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE;
        if bits & libc::RENAME_WHITEOUT != 0 {
            return Err(FsError::Invalid("RENAME_WHITEOUT"));
        }
        if bits & !known != 0 {
            return Err(FsError::Invalid("unknown rename flags"));
        }
        let mode = RenameMode {
            noreplace: bits & libc::RENAME_NOREPLACE != 0,
            exchange: bits & libc::RENAME_EXCHANGE != 0,
        };
        if mode.noreplace && mode.exchange {
            return Err(FsError::Invalid("RENAME_NOREPLACE with RENAME_EXCHANGE"));
        }
        Ok(mode)
    }
}

/// An open directory: the listing read so far.
pub struct DirHandle {
    ino: InodeId,
    /// The directory's own attributes (for `.` and `..` in readdirplus).
    attr: Attr,
    parent: InodeId,
    entries: Vec<DirEntry>,
    /// The namenode has entries after the last one read.
    more: bool,
}

/// One entry of a listing; `offset` is what the kernel passes back to continue after it.
#[derive(Debug, Clone)]
pub struct DirListEntry {
    pub offset: u64,
    pub name: String,
    pub attr: Attr,
}

/// `.` and `..` come first, at offsets 1 and 2; entry `i` of the namenode's listing is at
/// offset `i + 3`.
const DOTS: u64 = 2;

impl DfsFs {
    pub async fn mkdir(
        &self,
        parent: InodeId,
        name: &OsStr,
        mode: u32,
        caller: Caller,
    ) -> Result<Attr> {
        self.ensure_writable_mount()?;
        let req = MkdirRequest {
            parent,
            name: utf8(name, "name")?.to_string(),
            perm: mode & 0o7777,
            uid: caller.uid,
            gid: caller.gid,
        };
        let attr = self.client.call::<Mkdir>(&req).await?;
        self.note_parent(parent, &attr);
        Ok(attr)
    }

    pub async fn rmdir(&self, parent: InodeId, name: &OsStr) -> Result<()> {
        self.ensure_writable_mount()?;
        let req = EntryRequest {
            parent,
            name: utf8(name, "name")?.to_string(),
        };
        self.client.call::<Rmdir>(&req).await?;
        Ok(())
    }

    pub async fn unlink(&self, parent: InodeId, name: &OsStr) -> Result<()> {
        self.ensure_writable_mount()?;
        let name = utf8(name, "name")?;
        self.keep_open_file_alive(parent, name).await;
        let req = EntryRequest {
            parent,
            name: name.to_string(),
        };
        self.client.call::<Unlink>(&req).await?;
        Ok(())
    }

    /// If `name` in `parent` is a file this mount has open, takes its lease so that the
    /// namenode keeps its data after the last link goes. Best effort: if another client holds
    /// the lease, that client's lease keeps it alive instead, until it closes.
    async fn keep_open_file_alive(&self, parent: InodeId, name: &str) {
        if !self.handles.any_file_open() {
            return;
        }
        let req = LookupRequest {
            parent,
            name: name.to_string(),
        };
        let Ok(attr) = self.client.call::<Lookup>(&req).await else {
            return;
        };
        if let Some(file) = self.handles.open_file(attr.ino)
            && !file.is_writable()
            && let Err(e) = file.make_writable().await
        {
            tracing::warn!(ino = %attr.ino, error = %e,
                "cannot take the lease of an open file being removed; its data may vanish");
        }
    }

    pub async fn rename(
        &self,
        parent: InodeId,
        name: &OsStr,
        new_parent: InodeId,
        new_name: &OsStr,
        mode: RenameMode,
    ) -> Result<()> {
        self.ensure_writable_mount()?;
        let new_name = utf8(new_name, "name")?;
        if !mode.exchange {
            self.keep_open_file_alive(new_parent, new_name).await;
        }
        let req = RenameRequest {
            parent,
            name: utf8(name, "name")?.to_string(),
            new_parent,
            new_name: new_name.to_string(),
            noreplace: mode.noreplace,
            exchange: mode.exchange,
        };
        self.client.call::<Rename>(&req).await?;
        Ok(())
    }

    pub async fn symlink(
        &self,
        parent: InodeId,
        name: &OsStr,
        target: &Path,
        caller: Caller,
    ) -> Result<Attr> {
        self.ensure_writable_mount()?;
        let req = SymlinkRequest {
            parent,
            name: utf8(name, "name")?.to_string(),
            target: utf8(target.as_os_str(), "symlink target")?.to_string(),
            uid: caller.uid,
            gid: caller.gid,
        };
        Ok(self.client.call::<Symlink>(&req).await?)
    }

    pub async fn readlink(&self, ino: InodeId) -> Result<String> {
        Ok(self
            .client
            .call::<ReadLink>(&InodeRequest { ino })
            .await?
            .target)
    }

    pub async fn link(&self, ino: InodeId, new_parent: InodeId, new_name: &OsStr) -> Result<Attr> {
        self.ensure_writable_mount()?;
        let req = LinkRequest {
            ino,
            new_parent,
            new_name: utf8(new_name, "name")?.to_string(),
        };
        let attr = self.client.call::<Link>(&req).await?;
        Ok(self.overlay(attr))
    }

    /// Opens a directory for listing: the caller needs read permission on it (`EACCES`).
    pub async fn opendir(&self, ino: InodeId) -> Result<u64> {
        let req = dfs_proto::rest::AccessRequest {
            ino,
            mask: libc::R_OK as u32,
        };
        let attr = self.client.call::<dfs_proto::rest::Access>(&req).await?;
        if attr.kind != dfs_proto::rest::FileKind::Dir {
            return Err(
                dfs_client::Error::api(dfs_proto::ErrorCode::NotDir, "not a directory").into(),
            );
        }
        let parent = self.parent_of(ino);
        Ok(self.handles.insert_dir(DirHandle {
            ino,
            attr,
            parent,
            entries: Vec::new(),
            more: true,
        }))
    }

    /// Entries from `offset` on (0 = the start), at least one page of them unless the listing
    /// ends. The caller stops adding where the kernel's buffer is full and asks again from the
    /// last offset it used.
    pub async fn readdir(&self, fh: u64, offset: u64) -> Result<Vec<DirListEntry>> {
        let dir = self.handles.dir(fh).ok_or(FsError::BadHandle(fh))?;
        let mut dir = dir.lock().await;
        let mut out = Vec::new();
        if offset < 1 {
            out.push(DirListEntry {
                offset: 1,
                name: ".".into(),
                attr: dir.attr.clone(),
            });
        }
        if offset < DOTS {
            let mut attr = dir.attr.clone();
            attr.ino = dir.parent;
            out.push(DirListEntry {
                offset: DOTS,
                name: "..".into(),
                attr,
            });
        }
        let first = offset.saturating_sub(DOTS) as usize;
        while first >= dir.entries.len() && dir.more {
            let page = self
                .client
                .call::<ReadDir>(&ReadDirRequest {
                    ino: dir.ino,
                    after: dir.entries.last().map(|e| e.name.clone()),
                    limit: Some(PAGE),
                })
                .await?;
            dir.more = page.more && !page.entries.is_empty();
            for e in &page.entries {
                self.note_parent(dir.ino, &e.attr);
            }
            dir.entries.extend(page.entries);
        }
        for (i, e) in dir.entries.iter().enumerate().skip(first) {
            out.push(DirListEntry {
                offset: i as u64 + DOTS + 1,
                name: e.name.clone(),
                attr: self.overlay(e.attr.clone()),
            });
        }
        Ok(out)
    }

    pub fn releasedir(&self, fh: u64) -> Result<()> {
        if self.handles.remove_dir(fh) {
            Ok(())
        } else {
            Err(FsError::BadHandle(fh))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_flags() {
        assert_eq!(RenameMode::from_bits(0).ok(), Some(RenameMode::default()));
        let m = RenameMode::from_bits(libc::RENAME_NOREPLACE).ok();
        assert_eq!(m.map(|m| m.noreplace), Some(true));
        let m = RenameMode::from_bits(libc::RENAME_EXCHANGE).ok();
        assert_eq!(m.map(|m| m.exchange), Some(true));
        assert!(RenameMode::from_bits(libc::RENAME_WHITEOUT).is_err());
        assert!(RenameMode::from_bits(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE).is_err());
    }
}
