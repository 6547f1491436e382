//! rename(2) with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`: atomic within and across
//! directories, with POSIX's rules for replacing an existing target.

use super::Namespace;
use super::permissions::{self, MAY_WRITE};
use dfs_proto::rest::Timestamp;
use dfs_proto::{ApiError, ErrorCode, Identity, InodeId, Name};

/// The arguments of [`Command::Rename`](super::Command::Rename).
pub(super) struct RenameArgs<'a> {
    pub parent: InodeId,
    pub name: &'a Name,
    pub new_parent: InodeId,
    pub new_name: &'a Name,
    pub noreplace: bool,
    pub exchange: bool,
}

impl Namespace {
    pub(super) fn rename(
        &mut self,
        now: Timestamp,
        who: &Identity,
        a: RenameArgs<'_>,
    ) -> Result<(), ApiError> {
        if a.noreplace && a.exchange {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                "rename cannot both refuse to replace (noreplace) and exchange",
            ));
        }
        self.check_search(who, a.parent)?;
        self.check_search(who, a.new_parent)?;
        let src = self.entry(a.parent, a.name.as_str())?;
        let dst = self
            .dir(a.new_parent)?
            .entries
            .get(a.new_name.as_str())
            .copied();
        if a.exchange {
            let dst = dst.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    format!(
                        "cannot exchange with '{}': no such entry in directory {}",
                        a.new_name, a.new_parent
                    ),
                )
            })?;
            if src != dst {
                self.check_rename_permissions(who, &a, src, Some(dst))?;
            }
            return self.exchange(now, &a, src, dst);
        }
        if let Some(dst) = dst {
            if a.noreplace {
                return Err(ApiError::new(
                    ErrorCode::Exists,
                    format!(
                        "'{}' already exists in directory {}",
                        a.new_name, a.new_parent
                    ),
                ));
            }
            if dst == src {
                // Both names are links to the same inode: POSIX says do nothing.
                return Ok(());
            }
        }
        self.check_rename_permissions(who, &a, src, dst)?;
        let src_is_dir = self.inode(src)?.is_dir();
        if src_is_dir {
            self.ensure_outside(src, a.new_parent)?;
        }
        let mut dst_is_dir = false;
        if let Some(dst) = dst {
            dst_is_dir = self.inode(dst)?.is_dir();
            match (src_is_dir, dst_is_dir) {
                (true, true) => {
                    self.ensure_removable_dir(dst, a.new_parent, a.new_name.as_str())?
                }
                (false, true) => {
                    return Err(ApiError::new(
                        ErrorCode::IsDir,
                        format!(
                            "cannot replace directory '{}' in directory {} with a non-directory",
                            a.new_name, a.new_parent
                        ),
                    ));
                }
                (true, false) => {
                    return Err(ApiError::new(
                        ErrorCode::NotDir,
                        format!(
                            "cannot replace non-directory '{}' in directory {} with a directory",
                            a.new_name, a.new_parent
                        ),
                    ));
                }
                (false, false) => {}
            }
        }

        // Checked: from here on nothing fails.
        if let Some(dst) = dst {
            self.detach(now, a.new_parent, a.new_name.as_str());
            if dst_is_dir {
                self.state.inodes.remove(&dst);
            } else {
                self.drop_link(now, dst);
            }
        }
        self.detach(now, a.parent, a.name.as_str());
        self.attach(now, a.new_parent, a.new_name.as_str(), src, src_is_dir);
        if let Some(inode) = self.state.inodes.get_mut(&src) {
            inode.ctime = now;
        }
        Ok(())
    }

    /// What Linux's `vfs_rename` asks of the caller: the source entry removable from its
    /// directory; the target entry removable too if there is one (both ways for an exchange),
    /// else room to add it; and write on a directory that changes parent (its `..` changes).
    fn check_rename_permissions(
        &self,
        who: &Identity,
        a: &RenameArgs<'_>,
        src: InodeId,
        dst: Option<InodeId>,
    ) -> Result<(), ApiError> {
        let old_dir = self.owner_of(a.parent)?;
        let new_dir = self.owner_of(a.new_parent)?;
        let src_owner = self.owner_of(src)?;
        let old_what = format!("directory {}", a.parent);
        let new_what = format!("directory {}", a.new_parent);
        permissions::may_delete(who, &old_dir, src_owner.uid, &old_what)?;
        let moved_dirs = match dst {
            Some(dst) => {
                let dst_owner = self.owner_of(dst)?;
                permissions::may_delete(who, &new_dir, dst_owner.uid, &new_what)?;
                if a.exchange {
                    vec![(src, src_owner), (dst, dst_owner)]
                } else {
                    vec![(src, src_owner)]
                }
            }
            None => {
                permissions::may_create(who, &new_dir, &new_what)?;
                vec![(src, src_owner)]
            }
        };
        if a.parent != a.new_parent {
            for (ino, owner) in moved_dirs.iter().filter(|(_, o)| o.is_dir) {
                permissions::check(who, owner, MAY_WRITE, &format!("directory {ino}"))?;
            }
        }
        Ok(())
    }

    /// `RENAME_EXCHANGE`: the two entries swap inodes.
    fn exchange(
        &mut self,
        now: Timestamp,
        a: &RenameArgs<'_>,
        src: InodeId,
        dst: InodeId,
    ) -> Result<(), ApiError> {
        if src == dst {
            return Ok(());
        }
        let src_is_dir = self.inode(src)?.is_dir();
        let dst_is_dir = self.inode(dst)?.is_dir();
        if src_is_dir {
            self.ensure_outside(src, a.new_parent)?;
        }
        if dst_is_dir {
            self.ensure_outside(dst, a.parent)?;
        }
        self.detach(now, a.parent, a.name.as_str());
        self.detach(now, a.new_parent, a.new_name.as_str());
        self.attach(now, a.parent, a.name.as_str(), dst, dst_is_dir);
        self.attach(now, a.new_parent, a.new_name.as_str(), src, src_is_dir);
        for ino in [src, dst] {
            if let Some(inode) = self.state.inodes.get_mut(&ino) {
                inode.ctime = now;
            }
        }
        Ok(())
    }

    /// `EINVAL` if `dest_parent` is directory `dir` or lies inside it (a directory cannot move
    /// into its own subtree).
    fn ensure_outside(&self, dir: InodeId, dest_parent: InodeId) -> Result<(), ApiError> {
        let mut cur = dest_parent;
        // Bounded by the inode count, so a corrupt parent chain cannot loop forever.
        for _ in 0..=self.state.inodes.len() {
            if cur == dir {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    format!(
                        "cannot move directory {dir} into its own subtree (directory {dest_parent})"
                    ),
                ));
            }
            if cur == InodeId::ROOT {
                return Ok(());
            }
            cur = self.dir(cur)?.parent;
        }
        Err(ApiError::new(
            ErrorCode::Io,
            format!("directory {dest_parent} has a looping parent chain"),
        ))
    }
}
