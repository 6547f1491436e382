//! Datanode failures and data integrity with real processes: a datanode killed with SIGKILL
//! (its blocks re-replicated, the surplus trimmed when it returns), a datanode killed in the
//! middle of a `cp` through the FUSE mount (pipeline recovery), flipped bytes in a replica file
//! (read around, reported, replaced), two of three datanodes gone (every file still readable),
//! a decommission (nothing lost), and commands that reach datanodes between heartbeats.
//!
//! Every datanode of these tests scrubs (re-verifies its replicas) every second, set through
//! the `DFS_DATANODE_SCRUB_*` environment the daemons inherit.

use anyhow::{Context, Result, bail, ensure};
use dfs_proto::rest::{self, DatanodeState, FsckReport};
use integration::mount::Mount;
use integration::{Cluster, ClusterConfig, poll_until, random_file};
use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

const MIB: usize = 1024 * 1024;
/// Generous: a loaded 2-core machine, debug binaries.
const HEAL: Duration = Duration::from_secs(180);

static ENV: Once = Once::new();

/// Fast scrubbing for every datanode these tests start.
fn scrub_fast() {
    ENV.call_once(|| {
        // SAFETY: set once, before this process starts any daemon; std serializes its own
        // environment reads (Command::spawn) with writes.
        unsafe {
            std::env::set_var("DFS_DATANODE_SCRUB_INTERVAL", "1s");
            std::env::set_var("DFS_DATANODE_SCRUB_RATE", "64MiB");
        }
    });
}

async fn four_datanodes() -> Result<Cluster> {
    scrub_fast();
    Cluster::start(ClusterConfig {
        datanodes: 4,
        ..ClusterConfig::default()
    })
    .await
}

fn p(path: &Path) -> Result<&str> {
    path.to_str().context("utf-8 path")
}

async fn fsck(cluster: &Cluster) -> Result<FsckReport> {
    let leader = cluster.leader().await?;
    let (status, body) = cluster
        .raw_call::<rest::Fsck>(
            leader,
            &rest::FsckRequest {
                path: None,
                limit: None,
            },
        )
        .await?;
    ensure!(status == 200, "fsck answered {status}: {body}");
    Ok(serde_json::from_value(body)?)
}

/// Waits until every block has exactly its factor of good replicas and no copy is pending.
async fn wait_healthy(cluster: &Cluster, what: &str) -> Result<FsckReport> {
    let result = poll_until(HEAL, || async {
        let r = fsck(cluster).await.ok()?;
        let healthy = r.blocks > 0
            && r.missing == 0
            && r.corrupt == 0
            && r.under_replicated == 0
            && r.over_replicated == 0
            && r.pending_replications == 0;
        healthy.then_some(r)
    })
    .await;
    match result {
        Ok(r) => Ok(r),
        Err(e) => bail!(
            "{what}: {e}\nlast fsck: {:?}\n{}",
            fsck(cluster).await,
            cluster.logs_for_failure()
        ),
    }
}

/// The datanode id stored in datanode `i`'s data directory.
fn datanode_id(cluster: &Cluster, i: usize) -> Result<String> {
    let text = std::fs::read_to_string(cluster.datanodes[i].dir.join("datanode_id"))
        .context("read datanode_id")?;
    Ok(text.trim().to_string())
}

async fn state_of(cluster: &Cluster, id: &str) -> Option<DatanodeState> {
    let report = cluster.report().await.ok()?;
    report
        .datanodes
        .iter()
        .find(|d| d.id.0 == id)
        .map(|d| d.state)
}

/// Puts `count` random files of `len` bytes under /d; answers their local copies.
fn put_files(cluster: &Cluster, count: usize, len: usize) -> Result<Vec<(String, Vec<u8>)>> {
    cluster.dfs_ok(&["mkdir", "-p", "/d"])?;
    let mut files = Vec::new();
    for i in 0..count {
        let local = cluster.scratch(&format!("in{i}.bin"));
        random_file(&local, len, 100 + i as u64)?;
        let remote = format!("/d/f{i}.bin");
        cluster.dfs_ok(&["put", p(&local)?, &remote])?;
        files.push((remote, std::fs::read(&local)?));
    }
    Ok(files)
}

/// Reads every file back with `dfs get` and compares it byte for byte.
fn check_files(cluster: &Cluster, files: &[(String, Vec<u8>)]) -> Result<()> {
    for (i, (remote, want)) in files.iter().enumerate() {
        let out = cluster.scratch(&format!("out{i}.bin"));
        let _ = std::fs::remove_file(&out);
        cluster.dfs_ok(&["get", remote, p(&out)?])?;
        let got = std::fs::read(&out)?;
        ensure!(got == *want, "{remote} differs after reading it back");
    }
    Ok(())
}

fn replica_count(cluster: &Cluster) -> usize {
    (0..cluster.datanodes.len())
        .map(|i| cluster.replica_files(i).len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_datanodes_blocks_are_re_replicated_and_trimmed_when_it_returns() -> Result<()> {
    let mut cluster = four_datanodes().await?;
    let files = put_files(&cluster, 3, 3 * MIB + 1234)?;
    let healthy = wait_healthy(&cluster, "after the writes").await?;
    let blocks = healthy.blocks as usize;

    // kill -9 the datanode holding the most replicas.
    let victim = (0..4)
        .max_by_key(|i| cluster.replica_files(*i).len())
        .context("a datanode")?;
    ensure!(!cluster.replica_files(victim).is_empty());
    let id = datanode_id(&cluster, victim)?;
    cluster.datanodes[victim].daemon.kill9()?;
    poll_until(HEAL, || async {
        (state_of(&cluster, &id).await == Some(DatanodeState::Dead)).then_some(())
    })
    .await
    .context("the killed datanode is declared dead")?;

    // The factor comes back on the three others; fsck says so and exits 0.
    wait_healthy(&cluster, "after the kill").await?;
    let live_replicas: usize = (0..4)
        .filter(|i| *i != victim)
        .map(|i| cluster.replica_files(i).len())
        .sum();
    ensure!(
        live_replicas >= blocks * 3,
        "{live_replicas} replicas on the live datanodes for {blocks} blocks"
    );
    let text = cluster.dfs_ok(&["fsck", "/"])?;
    ensure!(text.contains("HEALTHY"), "fsck says: {text}");
    check_files(&cluster, &files)?;

    // It comes back with its old replicas: the surplus is trimmed to exactly 3 per block.
    cluster.datanodes[victim].daemon.start()?;
    poll_until(HEAL, || async {
        (state_of(&cluster, &id).await == Some(DatanodeState::Live)).then_some(())
    })
    .await
    .context("the datanode is live again")?;
    poll_until(HEAL, || async {
        let r = fsck(&cluster).await.ok()?;
        (r.over_replicated == 0 && r.under_replicated == 0 && replica_count(&cluster) == blocks * 3)
            .then_some(())
    })
    .await
    .with_context(|| {
        format!(
            "surplus not trimmed: {} replica files for {blocks} blocks\n{}",
            replica_count(&cluster),
            cluster.logs_for_failure()
        )
    })?;
    check_files(&cluster, &files)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datanode_killed_during_cp_through_the_mount_does_not_fail_the_copy() -> Result<()> {
    scrub_fast();
    // Blocks of 16 MiB, so that the block being written when the datanode dies has more in
    // flight than the client keeps in memory: the replay reads the rest from its spill file.
    let mut cluster = Cluster::start(ClusterConfig {
        datanodes: 4,
        block_size: 16 * MIB as u64,
        ..ClusterConfig::default()
    })
    .await?;
    let mount = Mount::start(&cluster, &[])?;
    let local = cluster.scratch("big.bin");
    random_file(&local, 100 * MIB, 42)?;
    let dest = mount.path("big.bin");
    let mut cp = Command::new("cp")
        .arg(&local)
        .arg(&dest)
        .spawn()
        .context("start cp")?;

    // Kill a datanode that is receiving a block right now and holds over 6 MiB of it in tmp/,
    // once the copy is under way.
    let receiving = |i: usize| {
        std::fs::read_dir(cluster.datanodes[i].dir.join("tmp"))
            .map(|d| {
                d.flatten()
                    .any(|e| e.metadata().is_ok_and(|m| m.len() > 6 * MIB as u64))
            })
            .unwrap_or(false)
    };
    let victim = poll_until(HEAL, || async {
        (0..cluster.datanodes.len()).find(|i| receiving(*i) && replica_count(&cluster) >= 3)
    })
    .await
    .context("no datanode was seen receiving a block")?;
    cluster.datanodes[victim].daemon.kill9()?;

    let status = tokio::task::spawn_blocking(move || cp.wait()).await??;
    ensure!(
        status.success(),
        "cp failed: {status}\n{}\n{}",
        mount.log_tail(),
        cluster.logs_for_failure()
    );
    let sha = |path: &Path| -> Result<String> {
        let out = Command::new("sha256sum").arg(path).output()?;
        ensure!(out.status.success(), "sha256sum {}", path.display());
        Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string())
    };
    ensure!(
        sha(&local)? == sha(&dest)?,
        "the copy differs from its source"
    );
    let log = std::fs::read_to_string(&mount.log)?;
    ensure!(
        log.contains("rebuilding the pipeline"),
        "the mount never recovered a pipeline:\n{}",
        mount.log_tail()
    );
    // Read back through a fresh client too (not the mount's page cache).
    let out = cluster.scratch("big.out");
    cluster.dfs_ok(&["get", "/big.bin", p(&out)?])?;
    ensure!(
        sha(&local)? == sha(&out)?,
        "dfs get differs from the source"
    );
    wait_healthy(&cluster, "after the copy").await?;
    drop(mount);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_are_read_around_and_the_bad_replica_replaced() -> Result<()> {
    let cluster = four_datanodes().await?;
    let files = put_files(&cluster, 1, 2 * MIB + 77)?;
    wait_healthy(&cluster, "after the write").await?;

    // Flip bytes in the middle of one replica of the first block, on the datanode readers try
    // first (locations come sorted by datanode id).
    let mut holders: Vec<(String, usize, std::path::PathBuf)> = Vec::new();
    for i in 0..4 {
        for f in cluster.replica_files(i) {
            holders.push((datanode_id(&cluster, i)?, i, f));
        }
    }
    let first_block = holders
        .iter()
        .filter_map(|(_, _, f)| f.file_name()?.to_str().map(str::to_string))
        .min()
        .context("a replica")?;
    let (_, victim, path) = holders
        .iter()
        .filter(|(_, _, f)| f.file_name().and_then(|n| n.to_str()) == Some(&first_block))
        .min_by(|a, b| a.0.cmp(&b.0))
        .context("a holder")?
        .clone();
    let mut data = std::fs::read(&path)?;
    let good = data.clone();
    for b in &mut data[1000..1010] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &data)?;

    // `cat` returns the right bytes.
    let out = cluster.dfs(&["cat", &files[0].0])?;
    ensure!(out.status.success(), "cat failed: {out:?}");
    ensure!(out.stdout == files[0].1, "cat returned wrong bytes");

    // The bad replica is replaced by a good copy elsewhere and deleted.
    wait_healthy(&cluster, "after the corruption").await?;
    poll_until(HEAL, || async {
        let bad_left = std::fs::read(&path).map(|d| d != good).unwrap_or(false);
        (!bad_left).then_some(())
    })
    .await
    .with_context(|| format!("the corrupt replica on datanode {victim} is still there"))?;
    ensure!(replica_count(&cluster) >= 3, "replicas went missing");
    check_files(&cluster, &files)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrubber_finds_a_corrupt_replica_nobody_reads() -> Result<()> {
    let cluster = four_datanodes().await?;
    let files = put_files(&cluster, 1, MIB / 2)?;
    wait_healthy(&cluster, "after the write").await?;
    let (i, path) = (0..4)
        .find_map(|i| cluster.replica_files(i).into_iter().next().map(|f| (i, f)))
        .context("a replica")?;
    let mut data = std::fs::read(&path)?;
    data[10] ^= 0x01;
    std::fs::write(&path, &data)?;
    poll_until(HEAL, || async {
        let still_bad = std::fs::read(&path).map(|d| d == data).unwrap_or(false);
        (!still_bad).then_some(())
    })
    .await
    .with_context(|| {
        format!(
            "datanode {i} still holds the corrupt replica\n{}",
            cluster.logs_for_failure()
        )
    })?;
    wait_healthy(&cluster, "after the scrub").await?;
    check_files(&cluster, &files)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_of_three_datanodes_killed_every_file_is_readable() -> Result<()> {
    scrub_fast();
    let mut cluster = Cluster::start(ClusterConfig::default()).await?;
    let files = put_files(&cluster, 4, 2 * MIB + 5)?;
    wait_healthy(&cluster, "after the writes").await?;
    cluster.datanodes[0].daemon.kill9()?;
    cluster.datanodes[2].daemon.kill9()?;
    // At once (the namenode still calls them live) and after they are declared dead.
    check_files(&cluster, &files)?;
    let id0 = datanode_id(&cluster, 0)?;
    poll_until(HEAL, || async {
        (state_of(&cluster, &id0).await == Some(DatanodeState::Dead)).then_some(())
    })
    .await?;
    check_files(&cluster, &files)?;
    // Under-replicated but nothing missing: fsck exits 0.
    let r = fsck(&cluster).await?;
    ensure!(r.missing == 0 && r.under_replicated == r.blocks, "{r:?}");
    cluster.dfs_ok(&["fsck", "/"])?;

    // The last one gone: every block is missing and fsck exits 1.
    cluster.datanodes[1].daemon.kill9()?;
    let id1 = datanode_id(&cluster, 1)?;
    poll_until(HEAL, || async {
        (state_of(&cluster, &id1).await == Some(DatanodeState::Dead)).then_some(())
    })
    .await?;
    let r = fsck(&cluster).await?;
    ensure!(r.missing == r.blocks && !r.data_intact(), "{r:?}");
    let out = cluster.dfs(&["fsck", "/"])?;
    ensure!(out.status.code() == Some(1), "fsck exit: {:?}", out.status);
    ensure!(String::from_utf8_lossy(&out.stdout).contains("MISSING"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommissioning_a_datanode_loses_nothing() -> Result<()> {
    let mut cluster = four_datanodes().await?;
    let files = put_files(&cluster, 3, 2 * MIB + 99)?;
    wait_healthy(&cluster, "after the writes").await?;
    let victim = (0..4)
        .max_by_key(|i| cluster.replica_files(*i).len())
        .context("a datanode")?;
    let id = datanode_id(&cluster, victim)?;
    let out = cluster.dfs_ok(&["admin", "decommission", &id])?;
    ensure!(out.contains("decommission"), "decommission says: {out}");
    // Reads keep working while it drains.
    check_files(&cluster, &files)?;
    poll_until(HEAL, || async {
        (state_of(&cluster, &id).await == Some(DatanodeState::Decommissioned)).then_some(())
    })
    .await
    .with_context(|| format!("not decommissioned\n{}", cluster.logs_for_failure()))?;
    let report = cluster.dfs_ok(&["admin", "report"])?;
    ensure!(report.contains("decommissioned"), "report: {report}");
    // Safe to remove: the others hold every block at its factor.
    cluster.datanodes[victim].daemon.kill9()?;
    let r = fsck(&cluster).await?;
    ensure!(r.missing == 0 && r.corrupt == 0, "{r:?}");
    check_files(&cluster, &files)?;
    wait_healthy(&cluster, "after removing the decommissioned datanode").await?;
    Ok(())
}

/// Work the leader plans reaches a datanode at once, not with its next heartbeat: with
/// heartbeats ten minutes apart (none falls due during the test), a decommission still drains,
/// because datanodes wait for commands in a long poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reach_datanodes_between_heartbeats() -> Result<()> {
    scrub_fast();
    let cluster = Cluster::start(ClusterConfig {
        datanodes: 4,
        heartbeat: Duration::from_secs(600),
        dead_after: Duration::from_secs(1800),
        ..ClusterConfig::default()
    })
    .await?;
    let files = put_files(&cluster, 2, 2 * MIB + 99)?;
    wait_healthy(&cluster, "after the writes").await?;
    let victim = (0..4)
        .max_by_key(|i| cluster.replica_files(*i).len())
        .context("a datanode")?;
    let id = datanode_id(&cluster, victim)?;
    cluster.dfs_ok(&["admin", "decommission", &id])?;
    poll_until(HEAL, || async {
        (state_of(&cluster, &id).await == Some(DatanodeState::Decommissioned)).then_some(())
    })
    .await
    .with_context(|| format!("not decommissioned\n{}", cluster.logs_for_failure()))?;
    check_files(&cluster, &files)?;
    Ok(())
}
