//! dfs-fuse: the dfs cluster mounted as a local file system through FUSE.
//!
//! [`fs::DfsFs`] is the file system in dfs terms (testable without a mount); [`fuse`] adapts it
//! to the kernel through `fuser`; [`mount::run`] mounts and serves; [`options`] parses `-o`;
//! [`metrics`] counts operations for Prometheus (`-o metrics_listen=ADDR`); [`config`] merges
//! flags, environment and the `--config` file.
//! What POSIX behaviour users get is written up in `docs/SEMANTICS.md`.

pub mod config;
pub mod error;
pub mod fs;
pub mod fuse;
pub mod metrics;
pub mod mount;
pub mod options;

pub use error::FsError;
pub use mount::{MountConfig, run};
pub use options::MountOptions;
