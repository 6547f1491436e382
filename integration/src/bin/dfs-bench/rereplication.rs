//! Re-replication speed after a datanode loss, beside the disk's own write speed in the same
//! run. A cluster of its own (one namenode, four datanodes, replication 3, 64 MiB blocks,
//! heartbeats every second) takes a file; the datanode holding the most replicas is killed with
//! SIGKILL; the clock runs from the namenode declaring it dead until `fsck` finds every block
//! back at 3 replicas. MB/s restored = bytes of the replicas the dead datanode held / that time.

use crate::util::{MIB, local_write, rate, timed};
use anyhow::{Context, Result, bail};
use dfs_proto::rest::{self, DatanodeState, FsckReport};
use integration::{Cluster, ClusterConfig, poll_every, random_file};
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(600);
/// How often the timed waits ask.
const TIMED_POLL: Duration = Duration::from_millis(20);

async fn fsck(cluster: &Cluster) -> Result<FsckReport> {
    let leader = cluster.leader().await?;
    let (status, body) = cluster
        .raw_call::<rest::Fsck>(
            leader,
            &rest::FsckRequest {
                path: None,
                limit: Some(0),
            },
        )
        .await?;
    if status != 200 {
        bail!("fsck answered {status}: {body}");
    }
    Ok(serde_json::from_value(body)?)
}

/// Waits until `fsck` finds every block at its factor, asking every `every`.
async fn wait_full(cluster: &Cluster, every: Duration) -> Result<()> {
    poll_every(every, WAIT, || async {
        let r = fsck(cluster).await.ok()?;
        (r.blocks > 0 && r.under_replicated == 0 && r.missing == 0 && r.pending_replications == 0)
            .then_some(())
    })
    .await
}

pub async fn rereplication(file_mib: usize) -> Result<()> {
    let mut cluster = Cluster::start(ClusterConfig {
        datanodes: 4,
        block_size: 64 * 1024 * 1024,
        heartbeat: Duration::from_secs(1),
        dead_after: Duration::from_secs(5),
        lease: Duration::from_secs(60),
        ..ClusterConfig::default()
    })
    .await?;
    let bytes = file_mib * 1024 * 1024;
    let src = cluster.scratch("rerepl-src.bin");
    random_file(&src, bytes, 7)?;

    // The disk's own write speed: a copy, synced, on the disk the datanodes use.
    let cp = local_write(&src, &cluster.scratch("rerepl-cp.bin"), 3)?;

    let dfs = integration::bin("dfs")?;
    timed(
        "dfs put",
        Command::new(&dfs)
            .args(["--namenodes", &cluster.namenodes_arg(), "put"])
            .env("DFS_SECRET_FILE", &cluster.secret_file)
            .arg(&src)
            .arg("/rerepl.bin"),
    )?;
    wait_full(&cluster, Duration::from_millis(100)).await?;

    let victim = (0..cluster.datanodes.len())
        .max_by_key(|i| cluster.replica_files(*i).len())
        .context("a datanode")?;
    let lost: u64 = cluster
        .replica_files(victim)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let id = std::fs::read_to_string(cluster.datanodes[victim].dir.join("datanode_id"))?
        .trim()
        .to_string();
    cluster.datanodes[victim].daemon.kill9()?;
    // The restore is timed from here: asked every 20 ms, not at `poll_until`'s 100 ms.
    poll_every(TIMED_POLL, WAIT, || async {
        let report = cluster.report().await.ok()?;
        report
            .datanodes
            .iter()
            .any(|d| d.id.0 == id && d.state == DatanodeState::Dead)
            .then_some(())
    })
    .await
    .context("the killed datanode was never declared dead")?;
    let start = Instant::now();
    wait_full(&cluster, TIMED_POLL)
        .await
        .context("replication not restored")?;
    let took = start.elapsed();

    let cp_r = rate(bytes, cp);
    let restored = lost as f64 / MIB / took.as_secs_f64();
    println!(
        "\nre-replication after losing 1 of 4 datanodes ({:.0} MiB of replicas, 64 MiB blocks), \
         MB/s (MiB/s):",
        lost as f64 / MIB
    );
    println!("  local cp + fsync       {cp_r:>8.0}   (best of 3)");
    println!(
        "  restored               {restored:>8.0}   {:.2} of local cp   (target >= 0.5), {:.1} s",
        restored / cp_r,
        took.as_secs_f64()
    );
    let bandwidth = std::env::var("DFS_DATANODE_REPLICATION_BANDWIDTH")
        .unwrap_or_else(|_| "512MiB (the default)".to_string());
    println!(
        "  (each datanode sends copies at most at --replication-bandwidth {bandwidth} per second)"
    );
    Ok(())
}
