//! Extended attributes of inodes. Only the `user.` namespace is stored (others answer
//! `ENOTSUP`, as on a file system without them); names up to 255 bytes, values up to 64 KiB,
//! with the errors Linux gives (`ERANGE`, `E2BIG`, `EEXIST`, `ENODATA`).

use super::Namespace;
use super::permissions::{self, MAY_WRITE, S_ISVTX};
use dfs_proto::rest::{Timestamp, XATTR_NAME_MAX, XATTR_SIZE_MAX, XattrMode};
use dfs_proto::{ApiError, ErrorCode, Identity, InodeId};

/// The one namespace whose attributes are stored.
const USER_PREFIX: &str = "user.";

/// Checks a name: `ERANGE` when empty or too long (as Linux), `ENOTSUP` outside `user.`.
pub(super) fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(ApiError::new(
            ErrorCode::Range,
            format!(
                "attribute name of {} bytes (1 to {XATTR_NAME_MAX})",
                name.len()
            ),
        ));
    }
    if !name.starts_with(USER_PREFIX) || name.len() == USER_PREFIX.len() {
        return Err(ApiError::new(
            ErrorCode::NotSupported,
            format!("attribute {name}: only user.* attributes are supported"),
        ));
    }
    Ok(())
}

fn no_data(ino: InodeId, name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NoData,
        format!("inode {ino} has no attribute {name}"),
    )
}

impl Namespace {
    /// What changing a `user.` attribute needs (Linux's `xattr_permission`): a regular file or
    /// directory (`EPERM`), not someone else's sticky directory (`EPERM`), write permission
    /// (`EACCES`).
    fn check_xattr_change(&self, who: &Identity, ino: InodeId) -> Result<(), ApiError> {
        let inode = self.inode(ino)?;
        let owner = self.owner_of(ino)?;
        let denied = |why: &str| {
            ApiError::new(
                ErrorCode::Perm,
                format!("operation not permitted: inode {ino} {why}"),
            )
        };
        if inode.as_file().is_none() && !owner.is_dir {
            return Err(denied("is neither a regular file nor a directory"));
        }
        if owner.is_dir && owner.perm & S_ISVTX != 0 && !who.is_root() && who.uid != owner.uid {
            return Err(denied("is a sticky directory of another user"));
        }
        permissions::check(who, &owner, MAY_WRITE, &format!("inode {ino}"))
    }

    pub(super) fn set_xattr(
        &mut self,
        now: Timestamp,
        who: &Identity,
        ino: InodeId,
        name: &str,
        value: &[u8],
        mode: XattrMode,
    ) -> Result<(), ApiError> {
        check_name(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(ApiError::new(
                ErrorCode::TooBig,
                format!(
                    "attribute value of {} bytes (at most {XATTR_SIZE_MAX})",
                    value.len()
                ),
            ));
        }
        self.check_xattr_change(who, ino)?;
        let inode = self.inode_mut(ino)?;
        let exists = inode.xattrs.contains_key(name);
        match mode {
            XattrMode::Create if exists => {
                return Err(ApiError::new(
                    ErrorCode::Exists,
                    format!("inode {ino} already has attribute {name}"),
                ));
            }
            XattrMode::Replace if !exists => return Err(no_data(ino, name)),
            _ => {}
        }
        inode.xattrs.insert(name.to_string(), value.to_vec());
        inode.ctime = now;
        Ok(())
    }

    pub(super) fn remove_xattr(
        &mut self,
        now: Timestamp,
        who: &Identity,
        ino: InodeId,
        name: &str,
    ) -> Result<(), ApiError> {
        check_name(name)?;
        self.check_xattr_change(who, ino)?;
        let inode = self.inode_mut(ino)?;
        if inode.xattrs.remove(name).is_none() {
            return Err(no_data(ino, name));
        }
        inode.ctime = now;
        Ok(())
    }

    /// The value of one attribute (`ENODATA` if it is not set).
    pub fn get_xattr(&self, ino: InodeId, name: &str) -> Result<Vec<u8>, ApiError> {
        check_name(name)?;
        self.inode(ino)?
            .xattrs
            .get(name)
            .cloned()
            .ok_or_else(|| no_data(ino, name))
    }

    /// Every attribute name of an inode, in name order.
    pub fn list_xattr(&self, ino: InodeId) -> Result<Vec<String>, ApiError> {
        Ok(self.inode(ino)?.xattrs.keys().cloned().collect())
    }
}
