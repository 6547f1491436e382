//! A real FUSE mount of a test cluster: runs the `dfs-fuse` binary on a fresh directory under the
//! cluster's temp dir and waits until `/proc/self/mountinfo` lists it. Dropping the [`Mount`]
//! unmounts it and stops the process, so declare it after the [`Cluster`] it mounts (locals drop
//! in reverse order).

use crate::{Cluster, bin};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Tells the mounts of one test process apart.
static NEXT: AtomicUsize = AtomicUsize::new(1);

/// How long mounting and unmounting may take on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// A running `dfs-fuse` and its mount point.
pub struct Mount {
    pub dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

/// Whether `dir` is a mount point now.
pub fn is_mounted(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == want))
}

impl Mount {
    /// Mounts `cluster` with `dfs-fuse --namenodes .. EXTRA_ARGS DIR` and waits until it is live.
    pub fn start(cluster: &Cluster, extra_args: &[&str]) -> Result<Mount> {
        Mount::start_with_env(cluster, extra_args, &[])
    }

    /// [`Mount::start`], with the variables `env` set for the mount process.
    pub fn start_with_env(
        cluster: &Cluster,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Mount> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = cluster.scratch(&format!("mnt{n}"));
        std::fs::create_dir_all(&dir)?;
        let log = cluster.scratch(&format!("mnt{n}.log"));
        let out = std::fs::File::create(&log).context("create the mount's log")?;
        let child = Command::new(bin("dfs-fuse")?)
            .arg("--namenodes")
            .arg(cluster.namenodes_arg())
            .env("DFS_SECRET_FILE", &cluster.secret_file)
            .envs(cluster.tls_ca().map(|ca| ("DFS_TLS_CA", ca)))
            .envs(env.iter().copied())
            .args(extra_args)
            .arg(&dir)
            .env(
                "RUST_LOG",
                std::env::var("DFS_TEST_LOG").unwrap_or("info".into()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("start dfs-fuse")?;
        let mut mount = Mount {
            dir,
            log,
            child: Some(child),
        };
        let deadline = Instant::now() + DEADLINE;
        while !is_mounted(&mount.dir) {
            if let Some(c) = mount.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!(
                    "dfs-fuse exited ({status}) before mounting:\n{}",
                    mount.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!("not mounted within {DEADLINE:?}:\n{}", mount.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(mount)
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel.trim_start_matches('/'))
    }

    /// The process id of `dfs-fuse`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM (a clean unmount) and waits for the process to exit.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on the pid of a child we own; no memory is involved.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("dfs-fuse exited with {status}:\n{}", self.log_tail());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("dfs-fuse did not exit within {DEADLINE:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of the mount's log (for failure messages).
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

/// The last 30 lines of a mount's log file.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Unmounts `dir` lazily (so a hung cluster cannot block it) and reaps the mount process,
/// killing it if it has not exited within 10 s of the unmount.
pub fn unmount_and_reap(dir: &Path, child: Option<Child>) {
    if is_mounted(dir) {
        let unmounted = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(dir).status();
        }
    }
    if let Some(mut child) = child {
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        unmount_and_reap(&self.dir, self.child.take());
    }
}
