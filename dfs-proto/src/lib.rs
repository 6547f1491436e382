//! Wire contracts shared by every dfs component.
//!
//! - [`grpc`]: the datanode's `DataTransfer` service (block reads and pipeline writes), generated
//!   from `proto/datanode.proto` with bytes fields as [`bytes::Bytes`].
//! - [`rest`]: every namenode REST endpoint as a typed [`rest::Endpoint`] (method, path, request
//!   and response), used by the namenode to route and by the client to call.
//! - [`ids`], [`name`], [`error`], [`checksum`]: the domain types both sides agree on.
//! - [`secret`], [`token`]: the cluster secret, the REST credential and block access tokens
//!   derived from it.
//! - [`local_read`]: the Unix-socket exchange that hands a co-located client a replica's file.
//! - [`allocator`]: how processes that move block data set up the allocator.
//! - [`log_format`]: the `text`/`json` choice every daemon's configuration shares; with the
//!   `logging` feature, `logging::init` starts the logs of a daemon or the mount.

pub mod allocator;
pub mod checksum;
pub mod codec;
pub mod error;
pub mod every;
pub mod file_io;
pub mod identity;
pub mod idle;
pub mod ids;
pub mod local_read;
pub mod log_format;
#[cfg(feature = "logging")]
pub mod logging;
pub mod name;
pub mod rest;
pub mod secret;
pub mod token;

/// Generated gRPC code for the datanode block service.
pub mod grpc {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("dfs.datanode.v1");
}

pub use error::{ApiError, ErrorCode};
pub use identity::Identity;
pub use ids::{BlockId, ClientId, DatanodeId, Generation, InodeId, NamenodeId};
pub use log_format::LogFormat;
pub use name::{DfsPath, Name, NameError};
pub use secret::ClusterSecret;

/// Largest block a datanode stores (4 GiB): a WriteBlock announcing or streaming more is refused,
/// and a namenode refuses a larger block size.
pub const MAX_BLOCK_SIZE: u64 = 4 << 30;

/// Largest gRPC message either side accepts: a data chunk of up to 1 MiB plus its checksums
/// and framing, with room to spare.
pub const MAX_GRPC_MESSAGE: usize = 4 * 1024 * 1024 + 64 * 1024;

/// Size of the data in one gRPC chunk message that writers and readers aim for.
pub const TRANSFER_CHUNK: usize = 1024 * 1024;

/// HTTP/2 flow control for block transfers, on both ends of every datanode connection. hyper's
/// defaults (16 KiB frames; a 1 MiB window per stream and per connection at a server) let a
/// sender have one chunk in flight per connection, so each stage of a pipeline waited for the
/// next one's window updates, and a 1 MiB chunk crossed as 64 frames.
pub mod flow {
    /// Largest HTTP/2 frame either side accepts (a whole chunk fits in one).
    pub const MAX_FRAME: u32 = 1024 * 1024 + 64 * 1024;
    /// Bytes a stream may have in flight: a few chunks.
    pub const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
    /// Bytes a connection may have in flight over all its streams.
    pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
}
