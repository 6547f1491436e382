//! The dfs client library: namenode REST calls with leader finding, block writes down datanode
//! pipelines, verified reads with replica failover, path-level operations, and the `dfs` CLI.
//!
//! Start with [`ClientConfig::discover`] and [`Client::new`]; [`Client::call`] sends any typed
//! [`dfs_proto::rest::Endpoint`]; [`FileWriter`] and [`FileReader`] move file data; the methods in
//! [`ops`] work on paths (`put`, `get`, `list`, `mkdir`, `remove`, `rename`, ...).

mod block_writer;
pub mod cli;
mod client;
pub mod config;
mod datanode;
mod dirty;
pub mod error;
mod file_state;
pub mod identity;
mod lease;
mod local;
mod namenode;
mod open_file;
pub mod ops;
mod reader;
mod replay;
mod sequential;
mod writer;
mod xattr;

pub use client::Client;
pub use config::ClientConfig;
pub use error::{Error, Result};
pub use identity::as_caller;
pub use open_file::{DEFAULT_DIRTY_LIMIT, OpenFile};
pub use reader::FileReader;
pub use writer::FileWriter;
