//! The container images and `docker-compose.yml` doing what the deployment guide promises:
//! `docker/build-images` builds the three images, compose starts three namenodes and three
//! datanodes, a host-side `dfs-fuse` mount writes and reads files, the leader namenode and a
//! datanode are `docker kill`ed while reads and writes go on, a crashed daemon is restarted by
//! the restart policy, and `down` then `up` finds every file intact in the named volumes.
//!
//! Skips (saying why) where Docker is missing, unless `DFS_REQUIRE_DOCKER=1` (CI sets it).
//! Needs root, /dev/fuse and `fusermount3`, like the other mount tests. The compose project, its
//! network and host ports are unique to the test process; a guard runs `down -v` on any exit.

use anyhow::{Context, Result, bail, ensure};
use integration::docker::{self, Compose, DATANODES, HostMount, NAMENODES, REQUIRE_VAR};
use rand::{RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Generous: on a loaded 2-core machine the containers start beside the rest of the suite.
const HEALTHY_DEADLINE: Duration = Duration::from_secs(300);
const READY_DEADLINE: Duration = Duration::from_secs(180);

/// Every file written so far: its path in dfs and its contents.
type Files = BTreeMap<String, Vec<u8>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_cluster_survives_kills_and_restarts() -> Result<()> {
    if let Some(why) = docker::unavailable() {
        if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
            bail!("{REQUIRE_VAR}=1 but Docker cannot be used: {why}");
        }
        eprintln!(
            "SKIPPED containers test: {why}. Install docker.io and docker-compose and start \
             dockerd to run it (set {REQUIRE_VAR}=1 to make this skip a failure)."
        );
        return Ok(());
    }
    let images = docker::build_images()?;
    eprintln!("images built:\n{images}");

    let compose = Compose::new()?;
    let scratch = tempfile::tempdir()?;
    let all: Vec<&str> = NAMENODES.iter().chain(&DATANODES).map(|s| s.0).collect();
    compose.up()?;
    compose.wait_healthy(&all, HEALTHY_DEADLINE)?;
    compose.wait_live_datanodes(3, READY_DEADLINE).await?;

    let mut files = Files::new();
    let mount = HostMount::start(
        &compose.namenodes_arg(),
        &scratch.path().join("mnt1"),
        &scratch.path().join("mnt1.log"),
    )?;
    write_files(&mount, &mut files, "before", 1).with_context(|| mount.log_tail())?;
    check_files(&mount, &files).with_context(|| mount.log_tail())?;

    // The leader namenode and a datanode die at once; the mount rides out the election.
    let leader = compose.leader().await?;
    compose.kill(leader)?;
    compose.kill("datanode2")?;
    write_files(&mount, &mut files, "after-kill", 2).with_context(|| mount.log_tail())?;
    // A fresh mount has an empty page cache: every byte comes from the surviving datanodes.
    let fresh = HostMount::start(
        &compose.namenodes_arg(),
        &scratch.path().join("mnt2"),
        &scratch.path().join("mnt2.log"),
    )?;
    check_files(&fresh, &files).with_context(|| fresh.log_tail())?;
    drop(fresh);

    // `docker kill` is a manual stop, which restart policies leave alone: `up -d` starts the two
    // containers again and the cluster heals.
    compose.up()?;
    compose.wait_healthy(&all, HEALTHY_DEADLINE)?;
    compose.wait_live_datanodes(3, READY_DEADLINE).await?;
    write_files(&mount, &mut files, "healed", 3).with_context(|| mount.log_tail())?;

    // A daemon that dies by itself (here SIGKILL from outside Docker) is restarted by Docker.
    crash_and_wait_restart(&compose, "datanode1")?;
    compose.wait_healthy(&all, HEALTHY_DEADLINE)?;
    check_files(&mount, &files).with_context(|| mount.log_tail())?;
    drop(mount);

    // `down` keeps the named volumes: `up` again finds every file.
    compose.down(false)?;
    compose.up()?;
    compose.wait_healthy(&all, HEALTHY_DEADLINE)?;
    compose.wait_live_datanodes(3, READY_DEADLINE).await?;
    let mount = HostMount::start(
        &compose.namenodes_arg(),
        &scratch.path().join("mnt3"),
        &scratch.path().join("mnt3.log"),
    )?;
    check_files(&mount, &files).with_context(|| mount.log_tail())?;
    let listed = run_ls(&mount.path("/"))?;
    for dir in ["before", "after-kill", "healed"] {
        ensure!(listed.contains(dir), "ls of the root lacks {dir}: {listed}");
    }
    Ok(())
}

/// Writes a small text file, a multi-MiB random file and a nested file under `/<dir>`, and
/// records their contents in `files`.
fn write_files(mount: &HostMount, files: &mut Files, dir: &str, seed: u64) -> Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut random = vec![0u8; 5 * 1024 * 1024 + 17];
    rng.fill_bytes(&mut random);
    let new = [
        (
            format!("{dir}/hello.txt"),
            format!("hello from {dir}\n").into_bytes(),
        ),
        (format!("{dir}/random.bin"), random),
        (format!("{dir}/a/b/c/deep.txt"), b"deep\n".to_vec()),
    ];
    for (path, data) in new {
        let full = mount.path(&path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("mkdir -p {parent:?}"))?;
        }
        std::fs::write(&full, &data).with_context(|| format!("write {path}"))?;
        files.insert(path, data);
    }
    Ok(())
}

/// Reads every file back and compares it with what was written.
fn check_files(mount: &HostMount, files: &Files) -> Result<()> {
    for (path, want) in files {
        let got = std::fs::read(mount.path(path)).with_context(|| format!("read {path}"))?;
        ensure!(
            got == *want,
            "{path}: {} bytes read, {} written, contents differ",
            got.len(),
            want.len()
        );
    }
    Ok(())
}

fn run_ls(dir: &Path) -> Result<String> {
    let out = Command::new("ls").arg("-la").arg(dir).output()?;
    ensure!(out.status.success(), "ls {dir:?} failed");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// SIGKILLs a service's main process (as a crash would end it) and waits until Docker has
/// restarted the container.
fn crash_and_wait_restart(compose: &Compose, service: &str) -> Result<()> {
    let id = compose.container(service)?;
    let inspect = |fmt: &str| -> Result<String> {
        Ok(docker::run_ok(
            Command::new("docker").args(["inspect", "-f", fmt, &id]),
            Duration::from_secs(60),
        )?
        .trim()
        .to_string())
    };
    let restarts: u64 = inspect("{{.RestartCount}}")?.parse()?;
    let pid: i32 = inspect("{{.State.Pid}}")?.parse()?;
    ensure!(pid > 0, "{service} has no process");
    // SAFETY: kill(2) with a pid Docker reported for a container this test started.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    ensure!(rc == 0, "kill {pid}: {}", std::io::Error::last_os_error());
    let end = Instant::now() + HEALTHY_DEADLINE;
    loop {
        let now: u64 = inspect("{{.RestartCount}}")?.parse()?;
        if now > restarts && inspect("{{.State.Running}}")? == "true" {
            return Ok(());
        }
        if Instant::now() > end {
            bail!(
                "{service} was not restarted after a crash\n{}",
                compose.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
