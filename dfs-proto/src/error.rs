//! The error every namenode REST endpoint answers with: an errno-like code, a message for
//! people, and for `NOT_LEADER` the address of the leader to retry at.

use crate::name::NameError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, as a code the client maps to one errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// No such file, directory, inode or block.
    #[serde(rename = "ENOENT")]
    NotFound,
    #[serde(rename = "EEXIST")]
    Exists,
    #[serde(rename = "ENOTDIR")]
    NotDir,
    #[serde(rename = "EISDIR")]
    IsDir,
    #[serde(rename = "ENOTEMPTY")]
    NotEmpty,
    /// Invalid argument, including a malformed request body.
    #[serde(rename = "EINVAL")]
    Invalid,
    #[serde(rename = "ENAMETOOLONG")]
    NameTooLong,
    /// The file's write lease is held by another client.
    #[serde(rename = "EBUSY")]
    Busy,
    /// No datanode has room for a new block.
    #[serde(rename = "ENOSPC")]
    NoSpace,
    #[serde(rename = "EPERM")]
    Perm,
    #[serde(rename = "EACCES")]
    Access,
    #[serde(rename = "EIO")]
    Io,
    #[serde(rename = "ELOOP")]
    Loop,
    #[serde(rename = "EMLINK")]
    TooManyLinks,
    #[serde(rename = "EFBIG")]
    FileTooBig,
    #[serde(rename = "ENOTSUP")]
    NotSupported,
    /// The caller's lease or block generation is no longer current.
    #[serde(rename = "ESTALE")]
    Stale,
    /// The request body is larger than the namenode accepts.
    #[serde(rename = "E2BIG")]
    TooBig,
    /// This namenode is not the leader; retry at `ApiError::leader` if given.
    #[serde(rename = "NOT_LEADER")]
    NotLeader,
    /// The cluster cannot serve this now (no leader yet, not enough datanodes, shutting down).
    #[serde(rename = "UNAVAILABLE")]
    Unavailable,
    /// No such extended attribute.
    #[serde(rename = "ENODATA")]
    NoData,
    /// A value or list does not fit the caller's buffer, or an attribute value is too large.
    #[serde(rename = "ERANGE")]
    Range,
    /// The file is not open for this operation (a write through a read-only handle).
    #[serde(rename = "EBADF")]
    BadFd,
    /// The client holds as many write leases (files open for writing) as the namenode allows
    /// one client (`max_leases_per_client`).
    #[serde(rename = "EMFILE")]
    TooManyOpen,
    /// The request carries no valid cluster credential (HTTP 401).
    #[serde(rename = "PERMISSION_DENIED")]
    PermissionDenied,
}

impl ErrorCode {
    /// The errno a POSIX caller sees for this code.
    pub fn errno(self) -> i32 {
        match self {
            ErrorCode::NotFound => libc::ENOENT,
            ErrorCode::Exists => libc::EEXIST,
            ErrorCode::NotDir => libc::ENOTDIR,
            ErrorCode::IsDir => libc::EISDIR,
            ErrorCode::NotEmpty => libc::ENOTEMPTY,
            ErrorCode::Invalid => libc::EINVAL,
            ErrorCode::NameTooLong => libc::ENAMETOOLONG,
            ErrorCode::Busy => libc::EBUSY,
            ErrorCode::NoSpace => libc::ENOSPC,
            ErrorCode::Perm => libc::EPERM,
            ErrorCode::Access => libc::EACCES,
            ErrorCode::Io => libc::EIO,
            ErrorCode::Loop => libc::ELOOP,
            ErrorCode::TooManyLinks => libc::EMLINK,
            ErrorCode::FileTooBig => libc::EFBIG,
            ErrorCode::NotSupported => libc::ENOTSUP,
            ErrorCode::Stale => libc::ESTALE,
            ErrorCode::TooBig => libc::E2BIG,
            ErrorCode::NotLeader | ErrorCode::Unavailable => libc::EIO,
            ErrorCode::NoData => libc::ENODATA,
            ErrorCode::Range => libc::ERANGE,
            ErrorCode::BadFd => libc::EBADF,
            ErrorCode::PermissionDenied => libc::EACCES,
            ErrorCode::TooManyOpen => libc::EMFILE,
        }
    }

    /// The HTTP status the namenode answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::NotFound | ErrorCode::NoData => 404,
            ErrorCode::Exists | ErrorCode::NotEmpty | ErrorCode::Busy | ErrorCode::Stale => 409,
            ErrorCode::Perm | ErrorCode::Access => 403,
            ErrorCode::PermissionDenied => 401,
            ErrorCode::TooBig => 413,
            ErrorCode::TooManyOpen => 429,
            ErrorCode::NotLeader => 421,
            ErrorCode::Unavailable | ErrorCode::NoSpace => 503,
            ErrorCode::Io => 500,
            ErrorCode::NotSupported => 501,
            ErrorCode::NotDir
            | ErrorCode::IsDir
            | ErrorCode::Invalid
            | ErrorCode::NameTooLong
            | ErrorCode::Loop
            | ErrorCode::TooManyLinks
            | ErrorCode::FileTooBig
            | ErrorCode::Range
            | ErrorCode::BadFd => 400,
        }
    }

    /// The code as it appears on the wire, e.g. `ENOENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "ENOENT",
            ErrorCode::Exists => "EEXIST",
            ErrorCode::NotDir => "ENOTDIR",
            ErrorCode::IsDir => "EISDIR",
            ErrorCode::NotEmpty => "ENOTEMPTY",
            ErrorCode::Invalid => "EINVAL",
            ErrorCode::NameTooLong => "ENAMETOOLONG",
            ErrorCode::Busy => "EBUSY",
            ErrorCode::NoSpace => "ENOSPC",
            ErrorCode::Perm => "EPERM",
            ErrorCode::Access => "EACCES",
            ErrorCode::Io => "EIO",
            ErrorCode::Loop => "ELOOP",
            ErrorCode::TooManyLinks => "EMLINK",
            ErrorCode::FileTooBig => "EFBIG",
            ErrorCode::NotSupported => "ENOTSUP",
            ErrorCode::Stale => "ESTALE",
            ErrorCode::TooBig => "E2BIG",
            ErrorCode::NotLeader => "NOT_LEADER",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::NoData => "ENODATA",
            ErrorCode::Range => "ERANGE",
            ErrorCode::BadFd => "EBADF",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::TooManyOpen => "EMFILE",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of every error answer: `{"code":"ENOENT","message":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// With `NOT_LEADER`: the REST address (host:port) of the leader, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            leader: None,
        }
    }

    pub fn not_leader(leader: Option<String>) -> ApiError {
        ApiError {
            code: ErrorCode::NotLeader,
            message: match &leader {
                Some(l) => format!("not the leader; the leader is {l}"),
                None => "not the leader; no leader is known yet".to_string(),
            },
            leader,
        }
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> ApiError {
        let code = match e {
            NameError::NameTooLong(_) | NameError::PathTooLong(_) => ErrorCode::NameTooLong,
            _ => ErrorCode::Invalid,
        };
        ApiError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_as_errno_names() {
        let e = ApiError::new(ErrorCode::NotEmpty, "directory /a is not empty");
        let json = serde_json::to_string(&e).expect("serialize");
        assert_eq!(
            json,
            r#"{"code":"ENOTEMPTY","message":"directory /a is not empty"}"#
        );
        let back: ApiError = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, e);
        assert_eq!(back.code.errno(), libc::ENOTEMPTY);
    }

    #[test]
    fn name_errors_map_to_errno() {
        assert_eq!(
            ApiError::from(NameError::NameTooLong(300)).code,
            ErrorCode::NameTooLong
        );
        assert_eq!(ApiError::from(NameError::Slash).code, ErrorCode::Invalid);
    }
}
