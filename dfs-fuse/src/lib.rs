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

/// Makes glibc give large freed buffers back to the system at once.
///
/// The mount moves data in buffers of 128 KiB to 4 MiB from many threads. glibc raises its
/// mmap threshold each time such a buffer is freed, after which the buffers come from per-thread
/// heaps that keep freed memory: a mount that had read one 1 GiB file stayed at 1 GiB resident.
/// A fixed threshold keeps every large buffer in its own mapping, returned when freed.
pub fn return_freed_memory_promptly() {
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
