//! The mount's one error type and its single mapping to an errno.
//!
//! Every operation of [`crate::fs::DfsFs`] fails with an [`FsError`]; the FUSE adapter turns it
//! into the errno the caller sees with [`FsError::errno`], and nowhere else.

use dfs_client::Error as ClientError;

pub type Result<T, E = FsError> = std::result::Result<T, E>;

/// Everything a file system operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The client library failed (namenode refusal, datanode or network failure).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The kernel named a file or directory handle this mount does not have open.
    #[error("handle {0} is not open")]
    BadHandle(u64),
    /// A write through a handle opened read-only.
    #[error("handle {0} was not opened for writing")]
    NotWritable(u64),
    /// A change on a mount made with `-o ro`.
    #[error("the mount is read-only")]
    ReadOnly,
    /// dfs names and symlink targets are UTF-8; the kernel passed other bytes.
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    /// An operation or a variant of one that dfs does not offer (device nodes, non-`user.`
    /// xattrs, ...).
    #[error("not supported: {0}")]
    NotSupported(&'static str),
    /// A flag combination the call does not accept.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// `access(2)` refused by the permission bits.
    #[error("permission denied")]
    Access,
    /// An xattr value larger than the caller's buffer.
    #[error("value of {len} bytes does not fit a buffer of {size}")]
    Range { len: usize, size: u32 },
}

impl FsError {
    /// The errno a POSIX caller sees for this error (as ext4 would answer the same call).
    pub fn errno(&self) -> i32 {
        match self {
            FsError::Client(e) => e.errno(),
            FsError::BadHandle(_) | FsError::NotWritable(_) => libc::EBADF,
            FsError::ReadOnly => libc::EROFS,
            FsError::NotUtf8(_) | FsError::Invalid(_) => libc::EINVAL,
            FsError::NotSupported(_) => libc::ENOTSUP,
            FsError::Access => libc::EACCES,
            FsError::Range { .. } => libc::ERANGE,
        }
    }

    /// Errors a caller provokes in normal use (`ENOENT` on lookup, `EEXIST`, ...), logged at
    /// debug level rather than as warnings.
    pub fn is_expected(&self) -> bool {
        !matches!(self.errno(), libc::EIO | libc::EHOSTUNREACH | libc::ENOSPC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::ErrorCode;

    #[test]
    fn errors_map_to_ext4_errnos() {
        let missing = FsError::from(ClientError::api(ErrorCode::NotFound, "x"));
        assert_eq!(missing.errno(), libc::ENOENT);
        assert!(missing.is_expected());
        assert_eq!(FsError::BadHandle(3).errno(), libc::EBADF);
        assert_eq!(FsError::NotWritable(3).errno(), libc::EBADF);
        assert_eq!(FsError::ReadOnly.errno(), libc::EROFS);
        assert_eq!(FsError::NotSupported("mknod").errno(), libc::ENOTSUP);
        assert_eq!(FsError::Range { len: 9, size: 2 }.errno(), libc::ERANGE);
        let io = FsError::from(ClientError::WriterPoisoned);
        assert_eq!(io.errno(), libc::EIO);
        assert!(!io.is_expected());
    }
}
