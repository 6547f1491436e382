//! A namenode whose data directory was damaged on disk refuses to start, with a message naming
//! the file and what is wrong, and never serves an empty namespace in its place: a snapshot with
//! a flipped byte or cut short, a snapshot missing while the log was purged past it, and a Raft
//! log file that is garbage or truncated. With the files restored it starts and serves the
//! namespace it had.

use anyhow::{Context, Result, bail, ensure};
use dfs_proto::rest::{self, HaStatusResponse};
use integration::{Cluster, ClusterConfig, poll_until};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A small snapshot threshold so that the log is purged behind a snapshot within a short test.
const SNAPSHOT_EVERY: &str = "10";
/// How long a namenode may take to notice the damage and exit, on a loaded machine.
const EXIT_DEADLINE: Duration = Duration::from_secs(60);
const DIRS: usize = 40;

/// The one snapshot file in a namenode's data directory.
fn snapshot_file(dir: &Path) -> Result<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("snapshots"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "snap"));
    match files.as_slice() {
        [one] => Ok(one.clone()),
        other => bail!("expected one snapshot file, found {other:?}"),
    }
}

async fn snapshot_index(cluster: &Cluster) -> Option<u64> {
    let (status, body) = cluster
        .raw_call::<rest::HaStatus>(0, &rest::Empty {})
        .await
        .ok()?;
    if status != 200 {
        return None;
    }
    let status: HaStatusResponse = serde_json::from_value(body).ok()?;
    status.snapshot_index
}

/// Starts namenode 0 on its damaged directory and expects it to exit non-zero with every one of
/// `want` in the part of its log written by this start.
fn expect_refusal(cluster: &mut Cluster, case: &str, want: &[&str]) -> Result<()> {
    let nn = &mut cluster.namenodes[0];
    let log_path = cluster.root.path().join("nn1.log");
    let before = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0) as usize;
    nn.daemon.start()?;
    let status = nn
        .daemon
        .wait_exit(EXIT_DEADLINE)
        .with_context(|| format!("{case}: the namenode did not refuse to start"))?;
    let log = std::fs::read_to_string(&log_path)?;
    let log = log.get(before..).unwrap_or_default();
    ensure!(
        !status.success(),
        "{case}: exited with {status} (want failure)\n{log}"
    );
    for w in want {
        ensure!(log.contains(w), "{case}: no {w:?} in the message:\n{log}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_log_or_snapshot_stops_the_start_and_restored_files_start_fine() -> Result<()> {
    // SAFETY: this file's only test sets it before it starts any daemon; the daemons inherit it.
    unsafe { std::env::set_var("DFS_NAMENODE_SNAPSHOT_EVERY", SNAPSHOT_EVERY) };
    let mut cluster = Cluster::start(ClusterConfig {
        datanodes: 0,
        replication: 1,
        ..ClusterConfig::default()
    })
    .await?;
    let client = cluster.client()?;
    for i in 0..DIRS {
        client.mkdir(&format!("/d{i}"), false).await?;
    }
    // Several snapshots have been taken, so the log is purged behind the newest.
    poll_until(Duration::from_secs(60), || async {
        snapshot_index(&cluster).await.filter(|i| *i >= 30)
    })
    .await
    .context("the namenode never snapshotted")?;
    cluster.namenodes[0].daemon.stop()?;

    let dir = cluster.namenodes[0].dir.clone();
    let snap = snapshot_file(&dir)?;
    let snap_name = snap.display().to_string();
    let log = dir.join("raft.redb");
    let log_name = log.display().to_string();
    let good_snap = std::fs::read(&snap)?;
    let good_log = std::fs::read(&log)?;

    // (1) A flipped byte in the snapshot's data.
    let mut flipped = good_snap.clone();
    let at = flipped.len() - 10;
    flipped[at] ^= 0x20;
    std::fs::write(&snap, &flipped)?;
    expect_refusal(
        &mut cluster,
        "flipped snapshot byte",
        &[&snap_name, "corrupt", "checksum mismatch"],
    )?;

    // (2) A truncated snapshot.
    std::fs::write(&snap, &good_snap[..good_snap.len() / 2])?;
    expect_refusal(
        &mut cluster,
        "truncated snapshot",
        &[&snap_name, "corrupt", "truncated"],
    )?;

    // (3) The snapshot is gone, but the log was purged past it.
    std::fs::remove_file(&snap)?;
    expect_refusal(
        &mut cluster,
        "missing snapshot",
        &[&log_name, "was purged up to index", "there is no snapshot"],
    )?;
    std::fs::write(&snap, &good_snap)?;

    // (4) The log file is garbage.
    let garbage: Vec<u8> = (0..good_log.len()).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(&log, &garbage)?;
    expect_refusal(
        &mut cluster,
        "garbage log",
        &[&log_name, "raft log database"],
    )?;

    // (5) The log file is cut short.
    std::fs::write(&log, &good_log[..good_log.len() / 3])?;
    expect_refusal(
        &mut cluster,
        "truncated log",
        &[&log_name, "raft log database"],
    )?;

    // (6) The log file is gone while a snapshot remains.
    std::fs::remove_file(&log)?;
    expect_refusal(
        &mut cluster,
        "missing log",
        &[&log_name, "is empty", "holds a snapshot"],
    )?;

    // Restored, the namenode starts and serves everything it had.
    std::fs::write(&log, &good_log)?;
    cluster.namenodes[0].daemon.start()?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let client = cluster.client()?;
    for i in 0..DIRS {
        client
            .stat(&format!("/d{i}"))
            .await
            .with_context(|| format!("/d{i} after the restore"))?;
    }
    Ok(())
}
