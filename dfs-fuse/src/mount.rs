//! Mounting and serving: reach the cluster, mount, tune the mount's read-ahead, serve until
//! unmounted or signalled, then close what is still open.
//!
//! On SIGTERM or SIGINT the mount first commits every open file (buffered data written, the
//! write lease released), then unmounts. If programs still hold files open the unmount is
//! refused; the mount is then detached (`umount -l`), given [`DETACHED_GRACE`] to end, and left:
//! the process exits 0 and those programs get `ENOTCONN` on their next call.

use crate::fs::{DfsFs, FsConfig};
use crate::fuse::FuseAdapter;
use crate::options::MountOptions;
use anyhow::{Context, Result};
use dfs_client::{Client, ClientConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

/// Worker threads of the runtime that serves requests.
const WORKER_THREADS: usize = 4;
/// Threads reading requests from `/dev/fuse` (each with its own cloned fd).
const FUSE_THREADS: usize = 2;
/// Read-ahead of the mount, so that sequential reads arrive as 1 MiB requests.
const READ_AHEAD_KB: u32 = 1024;
/// How long closing files that were still open at unmount may take.
const CLOSE_DEADLINE: Duration = Duration::from_secs(60);
/// How long a detached mount (files still open at SIGTERM) may take to end by itself before the
/// process exits anyway.
const DETACHED_GRACE: Duration = Duration::from_secs(5);

/// Everything one mount needs.
#[derive(Debug, Clone)]
pub struct MountConfig {
    pub client: ClientConfig,
    pub options: MountOptions,
    pub mountpoint: PathBuf,
}

/// A mount that is live, with what it takes to stop it.
struct Live {
    fs: Arc<DfsFs>,
    unmounter: fuser::SessionUnmounter,
    /// Answers when the session's request loop has ended (unmounted by anyone).
    done: tokio::sync::oneshot::Receiver<std::io::Result<()>>,
}

/// Mounts and serves until the file system is unmounted (`umount`, `fusermount3 -u`) or the
/// process gets SIGINT or SIGTERM. `ready` is told once: `Ok` when the mount is live, or the
/// error that kept it from mounting.
pub fn run(config: MountConfig, ready: impl FnOnce(Result<(), String>)) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name("dfs-fuse")
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let live = match mount(&runtime, &config) {
        Ok(live) => live,
        Err(e) => {
            ready(Err(format!("{e:#}")));
            return Err(e);
        }
    };
    raise_read_ahead(&config.mountpoint);
    tracing::info!(mountpoint = %config.mountpoint.display(), "mounted");
    ready(Ok(()));
    runtime.block_on(serve(live, config.mountpoint))
}

fn mount(runtime: &tokio::runtime::Runtime, config: &MountConfig) -> Result<Live> {
    let fsname = format!(
        "dfs:{}",
        config.client.namenodes.first().map_or("", String::as_str)
    );
    let client = Client::new(config.client.clone()).context("configure the client")?;
    runtime
        .block_on(client.cluster_info())
        .context("reach the namenodes")?;
    let fs = DfsFs::new(
        client,
        FsConfig {
            read_only: config.options.read_only,
        },
    );
    let metrics = crate::metrics::start(runtime, config.options.metrics_listen)?;
    let notifier = Arc::new(OnceLock::new());
    let adapter = FuseAdapter::new(
        fs.clone(),
        runtime.handle().clone(),
        metrics,
        Arc::clone(&notifier),
    );
    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = config.options.fuser_options(&fsname);
    fuse_config.acl = config.options.acl();
    fuse_config.n_threads = Some(FUSE_THREADS);
    fuse_config.clone_fd = true;
    let mut session = fuser::Session::new(adapter, &config.mountpoint, &fuse_config)
        .with_context(|| format!("mount at {}", config.mountpoint.display()))?;
    let _ = notifier.set(session.notifier());
    let unmounter = session.unmount_callable();
    let (tx, done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("fuse-session".into())
        .spawn(move || {
            let _ = tx.send(session.run());
        })
        .context("start the FUSE session thread")?;
    Ok(Live {
        fs,
        unmounter,
        done,
    })
}

async fn serve(mut live: Live, mountpoint: PathBuf) -> Result<()> {
    let mut sigint = signal(SignalKind::interrupt()).context("handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("handle SIGTERM")?;
    let ended = tokio::select! {
        r = &mut live.done => Some(r),
        _ = sigint.recv() => None,
        _ = sigterm.recv() => None,
    };
    if let Some(ended) = ended {
        // Unmounted from outside: the kernel released every file first.
        log_session_end(ended);
        return close_open_files(&live.fs).await;
    }

    tracing::info!("signal received: committing open files, then unmounting");
    let closed = close_open_files(&live.fs).await;
    let unmounter = &mut live.unmounter;
    match tokio::task::block_in_place(|| unmounter.unmount()) {
        Ok(()) => {
            tokio::select! {
                r = &mut live.done => log_session_end(r),
                _ = sigint.recv() => tracing::info!("second signal: exiting now"),
                _ = sigterm.recv() => tracing::info!("second signal: exiting now"),
            }
        }
        Err(e) => {
            // Busy: programs hold files open. Their data is committed above; detach the mount so
            // nothing new can start, and go once they close or the grace runs out.
            tracing::warn!(error = %e, "unmount refused (files still open): detaching");
            if let Err(e) = detach(&mountpoint) {
                tracing::warn!(error = %e, "lazy unmount failed");
            }
            match tokio::time::timeout(DETACHED_GRACE, &mut live.done).await {
                Ok(r) => log_session_end(r),
                Err(_) => tracing::warn!(
                    grace = ?DETACHED_GRACE,
                    "files still open on the detached mount: exiting; their next calls fail"
                ),
            }
        }
    }
    tracing::info!(mountpoint = %mountpoint.display(), "unmounted");
    closed
}

fn log_session_end(ended: Result<std::io::Result<()>, tokio::sync::oneshot::error::RecvError>) {
    match ended {
        Ok(Err(e)) => tracing::warn!(error = %e, "FUSE session ended with an error"),
        Ok(Ok(())) | Err(_) => tracing::info!("FUSE session ended"),
    }
}

/// Commits every file still open for writing (its buffered data, its block list, its lease).
async fn close_open_files(fs: &DfsFs) -> Result<()> {
    match tokio::time::timeout(CLOSE_DEADLINE, fs.close_all()).await {
        Ok(0) => Ok(()),
        Ok(n) => anyhow::bail!("{n} open files could not be committed at unmount"),
        Err(_) => anyhow::bail!("closing open files took longer than {CLOSE_DEADLINE:?}"),
    }
}

/// Raises the mount's read-ahead so sequential reads arrive in 1 MiB requests. Best effort:
/// the sysfs file may be missing or read-only (in a container).
fn raise_read_ahead(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let dev = match std::fs::metadata(mountpoint) {
        Ok(m) => m.dev(),
        Err(e) => {
            tracing::debug!(error = %e, "stat of the mountpoint failed");
            return;
        }
    };
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(e) = std::fs::write(&path, READ_AHEAD_KB.to_string()) {
        tracing::debug!(path, error = %e, "could not raise read-ahead");
    }
}

/// `umount2(MNT_DETACH)`: the mount leaves the namespace now, and goes away when its last open
/// file is closed.
fn detach(mountpoint: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
