//! Graceful shutdown on SIGTERM, against the real binaries: a datanode finishes a read in
//! flight and exits 0; a namenode exits 0 and restarts with the namespace intact; the mount
//! commits a file still open for writing, releases its lease, unmounts and exits 0.
//! The mount test needs root and /dev/fuse.

use anyhow::{Context, Result, ensure};
use integration::mount::{Mount, is_mounted};
use integration::{Cluster, ClusterConfig, poll_until, random_file};
use std::io::Write;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const MIB: usize = 1024 * 1024;
/// Generous: these tests run on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// One datanode, one replica: every read goes to the node being stopped.
fn single_replica(block_size: u64) -> ClusterConfig {
    ClusterConfig {
        datanodes: 1,
        replication: 1,
        block_size,
        ..ClusterConfig::default()
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datanode_sigterm_lets_a_read_in_flight_finish() -> Result<()> {
    let block = 16 * MIB;
    let mut cluster = Cluster::start(single_replica(block as u64)).await?;
    let client = cluster.client()?;
    let local = cluster.scratch("big.bin");
    random_file(&local, block, 7)?;
    let want = std::fs::read(&local)?;
    client.put(&local, "/big.bin", false, &mut |_| {}).await?;
    let ino = client.resolve("/big.bin").await?.ino;

    // The reader streams the block into a small pipe that the test drains slowly: the
    // datanode is mid-stream, held back by flow control, when it gets SIGTERM.
    let (mut out, mut sink) = tokio::io::duplex(64 * 1024);
    let mut reader = client.open_reader(ino);
    let mut progress = |_| {};
    let copy = reader.copy_to(&mut sink, &mut progress);
    let mut datanode = cluster.datanodes.remove(0);
    let log = cluster.root.path().join("dn1.log");
    let drive = async {
        let mut got = vec![0u8; block];
        out.read_exact(&mut got[..MIB]).await.context("first MiB")?;
        let stop = tokio::task::spawn_blocking(move || {
            let status = datanode.daemon.terminate();
            (datanode, status)
        });
        poll_until(DEADLINE, || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("SIGTERM received").then_some(())
        })
        .await
        .context("the datanode never logged SIGTERM")?;
        out.read_exact(&mut got[MIB..])
            .await
            .context("rest of the block")?;
        anyhow::Ok((got, stop))
    };
    let (copied, driven) = tokio::join!(copy, drive);
    let (got, stop) = driven?;
    let copied = copied.context("the read in flight failed")?;
    let (datanode, status) = stop.await?;
    let status = status?.context("the datanode was running")?;
    ensure!(
        status.success(),
        "datanode exited with {status}:\n{}",
        datanode.daemon.log_tail(30)
    );
    ensure!(copied == block as u64, "copied {copied} bytes");
    ensure!(got == want, "the block read across the shutdown differs");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namenode_sigterm_exits_zero_and_restarts_intact() -> Result<()> {
    let mut cluster = Cluster::start(single_replica(MIB as u64)).await?;
    let client = cluster.client()?;
    let local = cluster.scratch("f.bin");
    random_file(&local, 3 * MIB + 17, 3)?;
    client.put(&local, "/f.bin", false, &mut |_| {}).await?;

    let nn = &mut cluster.namenodes[0];
    let status = tokio::task::block_in_place(|| nn.daemon.terminate())?
        .context("the namenode was running")?;
    ensure!(
        status.success(),
        "namenode exited with {status}:\n{}",
        nn.daemon.log_tail(30)
    );
    let log = nn.daemon.log_tail(200);
    ensure!(log.contains("shutting down"), "no shutdown logged:\n{log}");

    nn.daemon.start()?;
    cluster.wait_ready(DEADLINE).await?;
    let back = cluster.scratch("back.bin");
    let client = cluster.client()?;
    poll_until(DEADLINE, || async {
        client.get("/f.bin", &back, &mut |_| {}).await.ok()
    })
    .await
    .context("read the file after the restart")?;
    ensure!(
        std::fs::read(&back)? == std::fs::read(&local)?,
        "the file differs after the namenode restart"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_sigterm_commits_open_files_and_unmounts() -> Result<()> {
    let cluster = Cluster::start(single_replica(MIB as u64)).await?;
    let mut mount = Mount::start(&cluster, &[])?;
    let data = pattern(2 * MIB + 4321, 5);

    // Written, never closed: the mount holds the data and the write lease at SIGTERM.
    let mut open = std::fs::File::create(mount.path("open.bin"))?;
    open.write_all(&data)?;
    let dir = mount.dir.clone();
    tokio::task::block_in_place(|| mount.stop()).context("dfs-fuse on SIGTERM")?;
    ensure!(!is_mounted(&dir), "still mounted after dfs-fuse exited");
    drop(open);

    let client = cluster.client()?;
    let back = cluster.scratch("open.back");
    client.get("/open.bin", &back, &mut |_| {}).await?;
    ensure!(
        std::fs::read(&back)? == data,
        "the data written before SIGTERM was not committed"
    );
    // The lease is released: another writer may open the file at once.
    let ino = client.resolve("/open.bin").await?.ino;
    let writer = client
        .open_file(ino, true, false)
        .await
        .context("open for writing after the mount stopped")?;
    writer.close().await?;
    Ok(())
}
