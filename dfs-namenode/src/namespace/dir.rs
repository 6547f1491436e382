//! Commands that add and remove directory entries: create, mkdir, symlink, link, unlink, rmdir;
//! and the two primitives every entry change goes through ([`Namespace::attach`] and
//! [`Namespace::detach`]), which keep directory link counts and times right.

use super::Namespace;
use super::inode::{Body, DirBody, FileBody, Inode, LINK_MAX, SYMLINK_MAX};
use super::permissions;
use dfs_proto::rest::{Attr, FileKind, Timestamp};
use dfs_proto::{ApiError, ClientId, ErrorCode, Identity, InodeId, Name};
use std::collections::BTreeMap;

/// Permission bits, uid and gid of a new inode.
pub(super) type Owner = (u32, u32, u32);

impl Namespace {
    /// What adding `name` to `parent` needs, in Linux's order: search on `parent` (`EACCES`),
    /// the name free (`EEXIST`), write on `parent` (`EACCES`).
    fn check_new_entry(
        &self,
        who: &Identity,
        parent: InodeId,
        name: &str,
    ) -> Result<permissions::Owner, ApiError> {
        self.check_search(who, parent)?;
        self.ensure_free(parent, name)?;
        let dir = self.owner_of(parent)?;
        permissions::may_create(who, &dir, &format!("directory {parent}"))?;
        Ok(dir)
    }

    /// The inode `name` in `parent` names, if `who` may remove that entry (search and write on
    /// `parent`, and the sticky bit's rule).
    pub(super) fn check_removal(
        &self,
        who: &Identity,
        parent: InodeId,
        name: &str,
    ) -> Result<InodeId, ApiError> {
        self.check_search(who, parent)?;
        let ino = self.entry(parent, name)?;
        let victim = self.inode(ino)?.uid;
        permissions::may_delete(
            who,
            &self.owner_of(parent)?,
            victim,
            &format!("directory {parent}"),
        )?;
        Ok(ino)
    }

    /// `EEXIST` if `name` is taken in `parent` (and `ENOENT`/`ENOTDIR` for a bad parent).
    fn ensure_free(&self, parent: InodeId, name: &str) -> Result<(), ApiError> {
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(ApiError::new(
                ErrorCode::Exists,
                format!("'{name}' already exists in directory {parent}"),
            ));
        }
        Ok(())
    }

    /// Adds a new inode under a free name of a checked parent.
    fn insert_new(
        &mut self,
        now: Timestamp,
        parent: InodeId,
        name: &Name,
        inode: Inode,
    ) -> InodeId {
        let ino = self.alloc_inode_id();
        let is_dir = inode.is_dir();
        self.state.inodes.insert(ino, inode);
        self.attach(now, parent, name.as_str(), ino, is_dir);
        ino
    }

    pub(super) fn create(
        &mut self,
        now: Timestamp,
        who: &Identity,
        parent: InodeId,
        name: &Name,
        (kind, owner): (FileKind, Owner),
        lease: Option<&ClientId>,
    ) -> Result<Attr, ApiError> {
        let body = match kind {
            FileKind::File => Body::File(FileBody {
                size: 0,
                block_size: self.state.config.block_size,
                blocks: Vec::new(),
            }),
            FileKind::Fifo if lease.is_none() => Body::Fifo,
            FileKind::Fifo => {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    "a FIFO cannot be opened for writing with a lease",
                ));
            }
            FileKind::Dir | FileKind::Symlink => {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    format!("create makes regular files and FIFOs, not a {kind:?}"),
                ));
            }
        };
        let dir = self.check_new_entry(who, parent, name.as_str())?;
        let (perm, uid, gid) = permissions::new_inode(who, &dir, owner, false)?;
        let ino = self.insert_new(now, parent, name, Inode::new(body, perm, uid, gid, 1, now));
        if let Some(client) = lease {
            let expiry = super::inode::add_ms(now, self.state.config.lease_ms);
            self.grant_lease(ino, client, expiry);
        }
        self.getattr(ino)
    }

    pub(super) fn mkdir(
        &mut self,
        now: Timestamp,
        who: &Identity,
        parent: InodeId,
        name: &Name,
        owner: Owner,
    ) -> Result<Attr, ApiError> {
        let dir = self.check_new_entry(who, parent, name.as_str())?;
        let (perm, uid, gid) = permissions::new_inode(who, &dir, owner, true)?;
        let body = Body::Dir(DirBody {
            parent,
            entries: BTreeMap::new(),
        });
        let ino = self.insert_new(now, parent, name, Inode::new(body, perm, uid, gid, 2, now));
        self.getattr(ino)
    }

    pub(super) fn symlink(
        &mut self,
        now: Timestamp,
        who: &Identity,
        parent: InodeId,
        name: &Name,
        target: &str,
        (uid, gid): (u32, u32),
    ) -> Result<Attr, ApiError> {
        if target.is_empty() {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                "a symlink target cannot be empty",
            ));
        }
        if target.len() > SYMLINK_MAX {
            return Err(ApiError::new(
                ErrorCode::NameTooLong,
                format!(
                    "symlink target is {} bytes, over the limit of {SYMLINK_MAX}",
                    target.len()
                ),
            ));
        }
        let dir = self.check_new_entry(who, parent, name.as_str())?;
        let (_, uid, gid) = permissions::new_inode(who, &dir, (0o777, uid, gid), false)?;
        let body = Body::Symlink {
            target: target.to_string(),
        };
        let ino = self.insert_new(now, parent, name, Inode::new(body, 0o777, uid, gid, 1, now));
        self.getattr(ino)
    }

    pub(super) fn link(
        &mut self,
        now: Timestamp,
        who: &Identity,
        ino: InodeId,
        new_parent: InodeId,
        new_name: &Name,
    ) -> Result<Attr, ApiError> {
        let inode = self.inode(ino)?;
        if inode.is_dir() {
            return Err(ApiError::new(
                ErrorCode::Perm,
                format!("inode {ino} is a directory: directories cannot be hard linked"),
            ));
        }
        if inode.nlink == 0 {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("inode {ino} has been unlinked and cannot be linked again"),
            ));
        }
        if inode.nlink >= LINK_MAX {
            return Err(ApiError::new(
                ErrorCode::TooManyLinks,
                format!("inode {ino} already has {LINK_MAX} links"),
            ));
        }
        self.check_new_entry(who, new_parent, new_name.as_str())?;
        self.attach(now, new_parent, new_name.as_str(), ino, false);
        let inode = self.inode_mut(ino)?;
        inode.nlink += 1;
        inode.ctime = now;
        Ok(inode.attr(ino))
    }

    /// Removes a non-directory entry and answers the inode's attributes after (nlink may be 0;
    /// the inode is then gone unless a lease keeps it).
    pub(super) fn unlink(
        &mut self,
        now: Timestamp,
        who: &Identity,
        parent: InodeId,
        name: &Name,
    ) -> Result<Attr, ApiError> {
        let ino = self.check_removal(who, parent, name.as_str())?;
        let inode = self.inode(ino)?;
        if inode.is_dir() {
            return Err(ApiError::new(
                ErrorCode::IsDir,
                format!("'{name}' in directory {parent} is a directory: use rmdir"),
            ));
        }
        let mut attr = inode.attr(ino);
        attr.nlink = attr.nlink.saturating_sub(1);
        attr.ctime = now;
        self.detach(now, parent, name.as_str());
        self.drop_link(now, ino);
        Ok(attr)
    }

    pub(super) fn rmdir(
        &mut self,
        now: Timestamp,
        who: &Identity,
        parent: InodeId,
        name: &Name,
    ) -> Result<(), ApiError> {
        let ino = self.check_removal(who, parent, name.as_str())?;
        self.ensure_removable_dir(ino, parent, name.as_str())?;
        self.detach(now, parent, name.as_str());
        self.state.inodes.remove(&ino);
        Ok(())
    }

    /// `ENOTDIR` unless `ino` is a directory, `ENOTEMPTY` unless it is empty, `EBUSY` for the
    /// root.
    pub(super) fn ensure_removable_dir(
        &self,
        ino: InodeId,
        parent: InodeId,
        name: &str,
    ) -> Result<(), ApiError> {
        let dir = self.inode(ino)?.as_dir().ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotDir,
                format!("'{name}' in directory {parent} is not a directory"),
            )
        })?;
        if ino == InodeId::ROOT {
            return Err(ApiError::new(
                ErrorCode::Busy,
                "the root directory cannot be removed",
            ));
        }
        if !dir.entries.is_empty() {
            return Err(ApiError::new(
                ErrorCode::NotEmpty,
                format!(
                    "directory '{name}' in directory {parent} is not empty ({} entries)",
                    dir.entries.len()
                ),
            ));
        }
        Ok(())
    }

    /// Puts `child` in `parent` under `name` (the caller checked both): a subdirectory adds a
    /// link to its new parent and records it; the parent's mtime and ctime move to `now`.
    pub(super) fn attach(
        &mut self,
        now: Timestamp,
        parent: InodeId,
        name: &str,
        child: InodeId,
        child_is_dir: bool,
    ) {
        if let Some(p) = self.state.inodes.get_mut(&parent) {
            if let Some(dir) = p.as_dir_mut() {
                dir.entries.insert(name.to_string(), child);
            }
            if child_is_dir {
                p.nlink += 1;
            }
            p.touch_dir(now);
        }
        if child_is_dir
            && let Some(dir) = self
                .state
                .inodes
                .get_mut(&child)
                .and_then(Inode::as_dir_mut)
        {
            dir.parent = parent;
        }
    }

    /// Takes the entry `name` out of `parent`, undoing what [`Namespace::attach`] did. The
    /// child's own link count is the caller's business.
    pub(super) fn detach(
        &mut self,
        now: Timestamp,
        parent: InodeId,
        name: &str,
    ) -> Option<InodeId> {
        let child = self
            .state
            .inodes
            .get_mut(&parent)?
            .as_dir_mut()?
            .entries
            .remove(name)?;
        let child_is_dir = self.state.inodes.get(&child).is_some_and(Inode::is_dir);
        if let Some(p) = self.state.inodes.get_mut(&parent) {
            if child_is_dir {
                p.nlink = p.nlink.saturating_sub(1);
            }
            p.touch_dir(now);
        }
        Some(child)
    }
}
