//! The client's one error type, and its single mapping to an errno (for the CLI and the mount).

use dfs_proto::checksum::ChecksumError;
use dfs_proto::{ApiError, BlockId, ErrorCode, NameError};
use std::path::PathBuf;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The namenode refused the request (`ENOENT`, `EEXIST`, ...).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A path given by the caller is not a valid dfs path.
    #[error("invalid path: {0}")]
    InvalidPath(#[from] NameError),
    /// The namenode could not be reached, or the request failed in flight.
    #[error("namenode {addr}: {}", chain(source))]
    Transport {
        addr: String,
        #[source]
        source: reqwest::Error,
    },
    /// The namenode answered with an HTTP error that is not an `ApiError` body.
    #[error("namenode {addr} answered HTTP {status}: {body}")]
    Http {
        addr: String,
        status: u16,
        body: String,
    },
    /// No namenode served the request before the failover timeout.
    #[error("no namenode leader answered within {timeout:?} (last error: {last})")]
    NoLeader { timeout: Duration, last: String },
    /// A datanode failed a transfer.
    #[error("datanode {addr}: {status}")]
    Datanode {
        addr: String,
        /// Boxed: `tonic::Status` is large and this enum travels in every `Result`.
        status: Box<tonic::Status>,
    },
    /// A datanode address could not be turned into a gRPC endpoint.
    #[error("datanode {addr}: bad address: {source}")]
    DatanodeAddr {
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// Data from a datanode did not match its CRC32C.
    #[error("datanode {addr}: block {block}: {source}")]
    Checksum {
        addr: String,
        block: BlockId,
        #[source]
        source: ChecksumError,
    },
    /// A datanode broke the transfer protocol (a gap in a stream, a short block, no header).
    #[error("datanode {addr}: block {block}: {what}")]
    Protocol {
        addr: String,
        block: BlockId,
        what: &'static str,
    },
    /// A datanode of this machine refused or failed a short-circuit local read.
    #[error("datanode {addr}: local read of block {block}: {reason}")]
    LocalRead {
        addr: String,
        block: BlockId,
        reason: String,
    },
    /// Every replica of a block failed.
    #[error("no replica of block {block} could be read (tried {tried:?}); last error: {last}")]
    NoReplica {
        block: BlockId,
        tried: Vec<String>,
        last: String,
    },
    /// The namenode allocated a block with no datanode to write to.
    #[error("block {block} was allocated with no datanodes")]
    EmptyPipeline { block: BlockId },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    LocalIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No namenode address could be found, or the configuration file is bad.
    #[error("{0}")]
    Config(String),
    /// The writer was used after a failure; the file must be reopened.
    #[error("this writer failed earlier and cannot continue")]
    WriterPoisoned,
}

impl Error {
    /// The errno a POSIX caller sees.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Api(e) => e.code.errno(),
            Error::InvalidPath(NameError::NameTooLong(_) | NameError::PathTooLong(_)) => {
                libc::ENAMETOOLONG
            }
            Error::InvalidPath(_) => libc::EINVAL,
            Error::LocalIo { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::Datanode { status, .. } if status.code() == tonic::Code::ResourceExhausted => {
                libc::ENOSPC
            }
            // No leader within the failover timeout: the operation failed, as a local disk's
            // I/O error would (what the mount returns after a failover that took too long).
            Error::NoLeader { .. } => libc::EIO,
            Error::Transport { .. } => libc::EHOSTUNREACH,
            Error::Config(_) => libc::EINVAL,
            Error::Http { .. }
            | Error::Datanode { .. }
            | Error::DatanodeAddr { .. }
            | Error::Checksum { .. }
            | Error::Protocol { .. }
            | Error::LocalRead { .. }
            | Error::NoReplica { .. }
            | Error::EmptyPipeline { .. }
            | Error::WriterPoisoned => libc::EIO,
        }
    }

    /// The namenode's error code, if this is a namenode refusal.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api(e) => Some(e.code),
            _ => None,
        }
    }

    /// A namenode refusal with this code (for errors the client decides itself, such as
    /// `EISDIR` from `rm` without `-r`).
    pub fn api(code: ErrorCode, message: impl Into<String>) -> Error {
        Error::Api(ApiError::new(code, message))
    }

    pub(crate) fn datanode(addr: &str, status: tonic::Status) -> Error {
        Error::Datanode {
            addr: addr.to_string(),
            status: Box::new(status),
        }
    }

    pub(crate) fn local(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::LocalIo {
            path: path.into(),
            source,
        }
    }
}

/// An error and its causes, `outer: inner: root` (reqwest hides "connection refused" in one).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_map_to_their_errno() {
        let e = Error::api(ErrorCode::NotFound, "no /x");
        assert_eq!(e.errno(), libc::ENOENT);
        assert_eq!(e.code(), Some(ErrorCode::NotFound));
        assert_eq!(Error::api(ErrorCode::NotEmpty, "").errno(), libc::ENOTEMPTY);
        assert_eq!(Error::api(ErrorCode::NotLeader, "").errno(), libc::EIO);
    }

    #[test]
    fn other_errors_map_to_sensible_errnos() {
        assert_eq!(
            Error::from(NameError::NameTooLong(300)).errno(),
            libc::ENAMETOOLONG
        );
        assert_eq!(Error::from(NameError::NotAbsolute).errno(), libc::EINVAL);
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(Error::local("/tmp/x", io).errno(), libc::EACCES);
        let full = Error::datanode("dn:1", tonic::Status::resource_exhausted("disk full"));
        assert_eq!(full.errno(), libc::ENOSPC);
        let broken = Error::datanode("dn:1", tonic::Status::internal("boom"));
        assert_eq!(broken.errno(), libc::EIO);
        let no_leader = Error::NoLeader {
            timeout: std::time::Duration::from_secs(30),
            last: "127.0.0.1:9870".into(),
        };
        assert_eq!(no_leader.errno(), libc::EIO);
        assert_eq!(
            Error::Checksum {
                addr: "dn:1".into(),
                block: BlockId(3),
                source: ChecksumError::Mismatch { piece_offset: 0 }
            }
            .errno(),
            libc::EIO
        );
        assert_eq!(Error::WriterPoisoned.errno(), libc::EIO);
    }
}
