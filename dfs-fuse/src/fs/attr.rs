//! Attributes: lookup, getattr, setattr (chmod, chown, truncate, utimens), statfs and access.

use super::{Caller, DfsFs, utf8};
use crate::error::{FsError, Result};
use dfs_proto::InodeId;
use dfs_proto::rest::{
    Access, AccessRequest, Attr, GetAttr, InodeRequest, Lookup, LookupRequest, SetAttrRequest,
    SetTime, StatFs, StatFsResponse,
};
use std::ffi::OsStr;

/// The changes of one `setattr` call; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub perm: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

/// What `statfs` reports, in the units `struct statvfs` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    /// Fragment size: the unit of `blocks`, `blocks_free` and `blocks_avail`.
    pub fragment_size: u32,
    /// Preferred I/O size.
    pub block_size: u32,
    pub blocks: u64,
    pub blocks_free: u64,
    pub files: u64,
    pub files_free: u64,
    pub name_max: u32,
}

/// Unit of the block counts `df` shows.
const STAT_FRAGMENT: u64 = 4096;
/// The preferred I/O size: FUSE requests go up to 1 MiB.
pub const IO_SIZE: u32 = 1024 * 1024;
/// Inode numbers are never reused and never run out; `df -i` shows this many in all.
const FILES_TOTAL: u64 = 1 << 32;

impl FsStats {
    /// Raw capacity of the live datanodes, as `dfs admin report` shows it (each replica
    /// counts, as in HDFS's `df`).
    pub fn from_namenode(s: &StatFsResponse) -> FsStats {
        FsStats {
            fragment_size: STAT_FRAGMENT as u32,
            block_size: IO_SIZE,
            blocks: s.capacity / STAT_FRAGMENT,
            blocks_free: s.remaining / STAT_FRAGMENT,
            files: FILES_TOTAL.max(s.inodes),
            files_free: FILES_TOTAL.saturating_sub(s.inodes),
            name_max: dfs_proto::name::NAME_MAX as u32,
        }
    }
}

impl DfsFs {
    pub async fn lookup(&self, parent: InodeId, name: &OsStr) -> Result<Attr> {
        let req = LookupRequest {
            parent,
            name: utf8(name, "name")?.to_string(),
        };
        let attr = self.client.call::<Lookup>(&req).await?;
        self.note_parent(parent, &attr);
        Ok(self.overlay(attr))
    }

    pub async fn getattr(&self, ino: InodeId) -> Result<Attr> {
        let attr = self.client.call::<GetAttr>(&InodeRequest { ino }).await?;
        Ok(self.overlay(attr))
    }

    /// chmod, chown, utimens and truncate. A truncate of a file this mount has open goes
    /// through its `OpenFile` (and is committed with its other writes); otherwise straight to
    /// the namenode.
    pub async fn setattr(&self, ino: InodeId, change: SetAttr, caller: Caller) -> Result<Attr> {
        self.ensure_writable_mount()?;
        if change.size.is_some() {
            self.cache_may_change();
        }
        let mut size = change.size;
        let open = self.handles.open_file(ino);
        if let (Some(len), Some(file)) = (size, &open) {
            // The mount's shared open file truncates without asking the namenode: check first.
            if !caller.is_root() {
                self.check_access(ino, libc::W_OK, caller.clone()).await?;
            }
            if !file.is_writable() {
                file.make_writable().await?;
            }
            file.set_len(len).await?;
            size = None;
        }
        let req = SetAttrRequest {
            ino,
            perm: change.perm,
            uid: change.uid,
            gid: change.gid,
            size,
            atime: change.atime,
            mtime: change.mtime,
            client: open
                .as_ref()
                .filter(|f| f.is_writable())
                .map(|_| self.client.client_id().clone()),
        };
        let nothing_left = req.perm.is_none()
            && req.uid.is_none()
            && req.gid.is_none()
            && req.size.is_none()
            && req.atime.is_none()
            && req.mtime.is_none();
        let attr = if nothing_left {
            self.client.call::<GetAttr>(&InodeRequest { ino }).await?
        } else {
            self.client.call::<dfs_proto::rest::SetAttr>(&req).await?
        };
        Ok(self.overlay(attr))
    }

    pub async fn statfs(&self) -> Result<FsStats> {
        let s = self
            .client
            .call::<StatFs>(&dfs_proto::rest::Empty {})
            .await?;
        Ok(FsStats::from_namenode(&s))
    }

    /// `access(2)`: `mask` is `F_OK` or a combination of `R_OK`, `W_OK`, `X_OK`. The namenode
    /// decides, with the caller's groups, as it does for every other operation.
    pub async fn access(&self, ino: InodeId, mask: i32, caller: Caller) -> Result<()> {
        if mask & libc::W_OK != 0 && self.config.read_only {
            return Err(FsError::ReadOnly);
        }
        self.check_access(ino, mask, caller).await.map(|_| ())
    }

    /// Asks the namenode whether `caller` may access `ino` as `mask` (`R_OK | W_OK | X_OK`)
    /// says; answers fresh attributes.
    pub(super) async fn check_access(
        &self,
        ino: InodeId,
        mask: i32,
        caller: Caller,
    ) -> Result<Attr> {
        let req = AccessRequest {
            ino,
            mask: (mask & (libc::R_OK | libc::W_OK | libc::X_OK)) as u32,
        };
        let attr = dfs_client::as_caller(caller, self.client.call::<Access>(&req)).await?;
        Ok(self.overlay(attr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn statfs_reports_raw_capacity_in_fragments() {
        let s = FsStats::from_namenode(&StatFsResponse {
            capacity: 300 * 1024 * 1024,
            used: 30 * 1024 * 1024,
            remaining: 270 * 1024 * 1024,
            inodes: 10,
            default_block_size: 1 << 20,
            replication: 3,
        });
        assert_eq!(s.blocks * u64::from(s.fragment_size), 300 * 1024 * 1024);
        assert_eq!(
            s.blocks_free * u64::from(s.fragment_size),
            270 * 1024 * 1024
        );
        assert_eq!(s.files - s.files_free, 10);
        assert_eq!(s.block_size, IO_SIZE);
    }
}
