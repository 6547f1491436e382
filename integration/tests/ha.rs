//! Namenode high availability with real processes: three namenodes and three datanodes, the
//! leader or a follower killed with SIGKILL while clients write, restarts that catch up (also
//! from a snapshot), repeated leader kills under load, and a network partition that cuts the
//! leader off from its followers (iptables rules on loopback aliases, removed by a guard).
//!
//! Every wait polls with a generous deadline: these tests must hold on a loaded 2-core machine.

use anyhow::{Context, Result, bail, ensure};
use dfs_proto::rest::{self, Endpoint, HaStatusResponse, NamenodeRole};
use integration::mount::Mount;
use integration::{Cluster, ClusterConfig, poll_until};
use std::collections::BTreeMap;
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

#[path = "ha/partition.rs"]
mod partition;

/// Small snapshot threshold so that the log is purged and a lagging namenode must catch up
/// from a snapshot.
const SNAPSHOT_EVERY: &str = "20";
/// Deadline for an election and for a restarted namenode to catch up, on a loaded machine.
const ELECTION: Duration = Duration::from_secs(60);

/// Every namenode the tests start reads `DFS_NAMENODE_SNAPSHOT_EVERY` from the environment it
/// inherits. Set once, before any daemon is started.
fn small_snapshots() {
    static SET: Once = Once::new();
    SET.call_once(|| {
        // SAFETY: called before this process starts any daemon; the std env lock covers the
        // concurrent reads by `Command::spawn` in other tests.
        unsafe { std::env::set_var("DFS_NAMENODE_SNAPSHOT_EVERY", SNAPSHOT_EVERY) };
    });
}

async fn ha_cluster() -> Result<Cluster> {
    small_snapshots();
    Cluster::start(ClusterConfig {
        namenodes: 3,
        ..ClusterConfig::default()
    })
    .await
}

/// A namenode's HA status, if it answers.
async fn status_of(cluster: &Cluster, addr: &str) -> Option<HaStatusResponse> {
    status_with(cluster.http(), addr).await
}

/// [`status_of`] with a given HTTP client (the partition tests' namenodes run without a
/// secret).
async fn status_with(http: &reqwest::Client, addr: &str) -> Option<HaStatusResponse> {
    let resp = http
        .get(format!("http://{addr}{}", rest::HaStatus::PATH))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// Waits until a namenode other than `not` answers as leader; returns its index.
async fn wait_new_leader(cluster: &Cluster, not: Option<usize>) -> Result<usize> {
    poll_until(ELECTION, || async {
        let leader = cluster.leader().await.ok()?;
        (Some(leader) != not).then_some(leader)
    })
    .await
    .with_context(|| format!("no new leader\n{}", cluster.logs_for_failure()))
}

/// Waits until namenode `i` has applied at least `index`.
async fn wait_applied(cluster: &Cluster, i: usize, index: u64) -> Result<HaStatusResponse> {
    let addr = cluster.namenodes[i].addr.clone();
    poll_until(ELECTION, || async {
        let s = status_of(cluster, &addr).await?;
        (s.applied_index.unwrap_or(0) >= index).then_some(s)
    })
    .await
    .with_context(|| format!("namenode {} did not catch up to {index}", i + 1))
}

/// The contents of test file `i`: a few blocks' worth of pieces, different for every file.
fn content(i: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes `path` through the mount and checks close() itself (std ignores close errors).
fn write_checked(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    let fd = f.into_raw_fd();
    // SAFETY: `fd` was just released by the File, so it is open and owned here.
    if unsafe { libc::close(fd) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Results of a background writer: files whose close() returned, and failures.
#[derive(Default)]
struct Written {
    ok: Vec<u64>,
    failed: Vec<(u64, String)>,
}

/// Checks every written file through the client library (not the mount's caches).
async fn verify(cluster: &Cluster, prefix: &str, ids: &[u64], len: usize) -> Result<()> {
    let client = cluster.client()?;
    for &i in ids {
        let mut data = Vec::new();
        client
            .cat(&format!("{prefix}{i}"), &mut data)
            .await
            .with_context(|| format!("read {prefix}{i}"))?;
        ensure!(
            data == content(i, len),
            "{prefix}{i} differs after failover"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_while_the_mount_writes() -> Result<()> {
    const LEN: usize = 300 * 1024;
    let mut cluster = ha_cluster().await?;
    let mount = Mount::start(&cluster, &["--failover-timeout", "90"])?;
    let dir = mount.dir.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(Mutex::new(Written::default()));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        tokio::task::spawn_blocking(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let result = write_checked(&dir.join(format!("f{i}")), &content(i, LEN));
                let mut w = written.lock().unwrap_or_else(|e| e.into_inner());
                match result {
                    Ok(()) => w.ok.push(i),
                    Err(e) => w.failed.push((i, e.to_string())),
                }
                i += 1;
            }
        })
    };
    let count = || written.lock().unwrap_or_else(|e| e.into_inner()).ok.len();
    poll_until(Duration::from_secs(60), || async {
        (count() >= 5).then_some(())
    })
    .await?;

    let old = cluster.leader().await?;
    cluster.namenodes[old].daemon.kill9()?;
    let before = count();
    wait_new_leader(&cluster, Some(old)).await?;
    // The mount carries on after the election.
    poll_until(Duration::from_secs(120), || async {
        (count() >= before + 5).then_some(())
    })
    .await
    .with_context(|| format!("the mount stopped writing\n{}", cluster.logs_for_failure()))?;
    stop.store(true, Ordering::Relaxed);
    writer.await?;

    let w = std::mem::take(&mut *written.lock().unwrap_or_else(|e| e.into_inner()));
    ensure!(
        w.failed.is_empty(),
        "writes failed across the failover: {:?}\nmount log:\n{}",
        w.failed,
        std::fs::read_to_string(&mount.log).unwrap_or_default()
    );
    verify(&cluster, "/f", &w.ok, LEN).await?;

    // The killed namenode rejoins as a follower and catches up.
    cluster.namenodes[old].daemon.start()?;
    let leader = cluster.leader().await?;
    let target = status_of(&cluster, &cluster.namenodes[leader].addr)
        .await
        .and_then(|s| s.commit_index)
        .context("leader status")?;
    let s = wait_applied(&cluster, old, target).await?;
    ensure!(s.role == NamenodeRole::Follower, "rejoined as {:?}", s.role);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_killed_then_caught_up_from_a_snapshot() -> Result<()> {
    let mut cluster = ha_cluster().await?;
    let client = cluster.client()?;
    let leader = cluster.leader().await?;
    let follower = (leader + 1) % 3;
    client.mkdir("/d", false).await?;
    cluster.namenodes[follower].daemon.kill9()?;

    // No interruption: every call succeeds, and at the same leader.
    for i in 0..60 {
        client.mkdir(&format!("/d/{i}"), false).await?;
    }
    ensure!(
        client.current_namenode() == cluster.namenodes[leader].addr,
        "the client moved away from a live leader"
    );
    let leader_status = status_of(&cluster, &cluster.namenodes[leader].addr)
        .await
        .context("leader status")?;
    let snapshot = leader_status.snapshot_index.unwrap_or(0);
    ensure!(snapshot > 20, "the leader did not snapshot ({snapshot})");

    // Restarted, it is behind the leader's purged log: it must install a snapshot.
    cluster.namenodes[follower].daemon.start()?;
    let target = leader_status.commit_index.context("commit index")?;
    let s = wait_applied(&cluster, follower, target).await?;
    ensure!(s.role == NamenodeRole::Follower, "rejoined as {:?}", s.role);
    let log = std::fs::read_to_string(cluster.root.path().join(format!("nn{}.log", follower + 1)))?;
    ensure!(
        log.contains("installed snapshot from leader"),
        "the follower caught up without a snapshot"
    );

    // And it can lead with everything: kill the others' leader and read.
    cluster.namenodes[leader].daemon.kill9()?;
    wait_new_leader(&cluster, Some(leader)).await?;
    let list = client.list("/d").await?;
    ensure!(list.len() == 60, "{} entries after failover", list.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_and_restarted_five_times_under_load() -> Result<()> {
    const LEN: usize = 100 * 1024;
    let mut cluster = ha_cluster().await?;
    let client = cluster.client()?;
    let stop = AtomicBool::new(false);
    let written = Mutex::new(Written::default());
    // The writer runs beside the kills in this task (the put future is not `Send`).
    let writer = async {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let data = content(i, LEN);
            let r = client
                .put_reader(&data[..], &format!("/g{i}"), 0o644, false, &mut |_| {})
                .await;
            let mut w = written.lock().unwrap_or_else(|e| e.into_inner());
            match r {
                Ok(_) => w.ok.push(i),
                Err(e) => w.failed.push((i, e.to_string())),
            }
            i += 1;
        }
    };
    let count = || written.lock().unwrap_or_else(|e| e.into_inner()).ok.len();

    let mut leaders = Vec::new();
    let killer = async {
        let result: Result<()> = async {
            for round in 0..5 {
                let before = count();
                poll_until(Duration::from_secs(120), || async {
                    (count() >= before + 3).then_some(())
                })
                .await
                .with_context(|| format!("no progress before kill {round}"))?;
                let old = cluster.leader().await?;
                leaders.push(old + 1);
                cluster.namenodes[old].daemon.kill9()?;
                wait_new_leader(&cluster, Some(old)).await?;
                cluster.namenodes[old].daemon.start()?;
            }
            let before = count();
            poll_until(Duration::from_secs(120), || async {
                (count() >= before + 3).then_some(())
            })
            .await
            .context("no progress after the last kill")
        }
        .await;
        stop.store(true, Ordering::Relaxed);
        result
    };
    let ((), result) = tokio::join!(writer, killer);
    result?;

    let w = std::mem::take(&mut *written.lock().unwrap_or_else(|e| e.into_inner()));
    ensure!(
        w.failed.is_empty(),
        "puts failed (leaders killed: {leaders:?}): {:?}",
        w.failed
    );
    verify(&cluster, "/g", &w.ok, LEN).await?;

    // Every namenode ends with the same applied state.
    let leader = cluster.leader().await?;
    let commit = status_of(&cluster, &cluster.namenodes[leader].addr)
        .await
        .and_then(|s| s.commit_index)
        .context("leader status")?;
    let mut applied = BTreeMap::new();
    for i in 0..3 {
        applied.insert(i, wait_applied(&cluster, i, commit).await?.applied_index);
    }
    if applied.values().any(|a| a.unwrap_or(0) < commit) {
        bail!("namenodes did not converge: {applied:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_cannot_commit() -> Result<()> {
    partition::isolated_leader_cannot_commit().await
}

/// Two namenodes: the survivor of a leader crash cannot elect alone; `dfs admin ha promote`
/// (refused while the other runs) makes it the only voter, with every acknowledged change, and
/// the promotion survives its restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survivor_of_two_namenodes_is_promoted_by_hand() -> Result<()> {
    let mut cluster = Cluster::start(ClusterConfig {
        namenodes: 2,
        ..ClusterConfig::default()
    })
    .await?;
    let local = cluster.scratch("before.bin");
    integration::random_file(&local, 3 * 1024 * 1024 + 17, 7)?;
    cluster.dfs_ok(&["mkdir", "/kept"])?;
    cluster.dfs_ok(&[
        "put",
        local.to_str().unwrap_or_default(),
        "/kept/before.bin",
    ])?;

    let leader = cluster.leader().await?;
    let survivor = 1 - leader;
    let addr = cluster.namenodes[survivor].addr.clone();

    // While the other namenode runs, promoting would split the group: refused, nothing changes.
    let refused = cluster.dfs(&["admin", "ha", "promote", &addr])?;
    ensure!(
        !refused.status.success(),
        "promote succeeded beside a live leader"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    ensure!(stderr.contains("still accepts connections"), "{stderr}");
    ensure!(cluster.leader().await? == leader, "the leader changed");

    // The leader dies: the survivor alone is no majority, so writes stop...
    cluster.namenodes[leader].daemon.kill9()?;
    let status = status_of(&cluster, &addr)
        .await
        .context("survivor status")?;
    ensure!(status.role != NamenodeRole::Leader, "{status:?}");

    // ... until it is promoted.
    let out = cluster.dfs_ok(&["admin", "ha", "promote", &addr])?;
    ensure!(out.contains("leader"), "promote printed: {out}");
    cluster.dfs_ok(&["mkdir", "/after"])?;
    let back = cluster.scratch("back.bin");
    cluster.dfs_ok(&["get", "/kept/before.bin", back.to_str().unwrap_or_default()])?;
    ensure!(
        std::fs::read(&back)? == std::fs::read(&local)?,
        "file changed"
    );

    // The promotion is on disk: after a crash the survivor leads alone again.
    cluster.namenodes[survivor].daemon.kill9()?;
    cluster.namenodes[survivor].daemon.start()?;
    poll_until(ELECTION, || async {
        let s = status_of(&cluster, &addr).await?;
        (s.role == NamenodeRole::Leader && s.members.len() == 1).then_some(())
    })
    .await
    .with_context(|| {
        format!(
            "survivor did not lead alone\n{}",
            cluster.logs_for_failure()
        )
    })?;
    let ls = cluster.dfs_ok(&["ls", "/"])?;
    ensure!(ls.contains("after") && ls.contains("kept"), "ls /: {ls}");
    Ok(())
}
