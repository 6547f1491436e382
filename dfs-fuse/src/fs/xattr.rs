//! Extended attributes: only the `user.` namespace is stored; every other namespace is
//! `ENOTSUP` without asking the namenode (the kernel asks for `security.capability` on writes).

use super::{DfsFs, utf8};
use crate::error::{FsError, Result};
use dfs_proto::InodeId;
use dfs_proto::rest::XattrMode;
use std::ffi::OsStr;

const USER: &str = "user.";

fn user_name(name: &OsStr) -> Result<&str> {
    let name = utf8(name, "xattr name")?;
    if !name.starts_with(USER) {
        return Err(FsError::NotSupported("xattrs outside the user. namespace"));
    }
    Ok(name)
}

/// How a `getxattr`/`listxattr` answer fits the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XattrReply {
    /// The caller asked for the size only (buffer size 0).
    Size(u32),
    Data(Vec<u8>),
}

impl XattrReply {
    /// `value` for a buffer of `size` bytes (0: the size only; too small: `ERANGE`).
    pub fn fit(value: Vec<u8>, size: u32) -> Result<XattrReply> {
        if size == 0 {
            return Ok(XattrReply::Size(value.len() as u32));
        }
        if value.len() > size as usize {
            return Err(FsError::Range {
                len: value.len(),
                size,
            });
        }
        Ok(XattrReply::Data(value))
    }
}

impl DfsFs {
    pub async fn getxattr(&self, ino: InodeId, name: &OsStr, size: u32) -> Result<XattrReply> {
        let name = user_name(name)?;
        let value = self.client.get_xattr(ino, name).await?;
        XattrReply::fit(value, size)
    }

    /// Names as `listxattr(2)` returns them: each followed by a NUL.
    pub async fn listxattr(&self, ino: InodeId, size: u32) -> Result<XattrReply> {
        let names = self.client.list_xattr(ino).await?;
        let mut out = Vec::new();
        for n in names.iter().filter(|n| n.starts_with(USER)) {
            out.extend_from_slice(n.as_bytes());
            out.push(0);
        }
        XattrReply::fit(out, size)
    }

    /// `flags` are `XATTR_CREATE` / `XATTR_REPLACE`.
    pub async fn setxattr(
        &self,
        ino: InodeId,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<()> {
        self.ensure_writable_mount()?;
        let name = user_name(name)?;
        let mode = match flags {
            0 => XattrMode::Either,
            libc::XATTR_CREATE => XattrMode::Create,
            libc::XATTR_REPLACE => XattrMode::Replace,
            _ => return Err(FsError::Invalid("setxattr flags")),
        };
        self.client.set_xattr(ino, name, value, mode).await?;
        Ok(())
    }

    pub async fn removexattr(&self, ino: InodeId, name: &OsStr) -> Result<()> {
        self.ensure_writable_mount()?;
        let name = user_name(name)?;
        self.client.remove_xattr(ino, name).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fit_the_buffer_or_erange() {
        assert_eq!(
            XattrReply::fit(b"abc".to_vec(), 0).ok(),
            Some(XattrReply::Size(3))
        );
        assert_eq!(
            XattrReply::fit(b"abc".to_vec(), 3).ok(),
            Some(XattrReply::Data(b"abc".to_vec()))
        );
        assert_eq!(
            XattrReply::fit(b"abc".to_vec(), 2)
                .map_err(|e| e.errno())
                .err(),
            Some(libc::ERANGE)
        );
    }

    #[test]
    fn only_user_namespace() {
        assert!(user_name(OsStr::new("user.a")).is_ok());
        let e = user_name(OsStr::new("security.capability")).map_err(|e| e.errno());
        assert_eq!(e.err(), Some(libc::ENOTSUP));
    }
}
