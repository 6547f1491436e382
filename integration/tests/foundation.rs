//! The foundation, end to end with real processes: one namenode, three datanodes, 1 MiB blocks.
//! Files go in and out with the `dfs` CLI, replicas are checked on disk, the namenode is killed
//! with SIGKILL and restarted.

use anyhow::{Context, Result};
use dfs_proto::rest::{self, BlockInfo};
use integration::{Cluster, ClusterConfig, poll_until, random_file};
use std::collections::HashSet;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

fn replica_names(cluster: &Cluster, dn: usize) -> HashSet<String> {
    cluster
        .replica_files(dn)
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .collect()
}

async fn file_blocks(cluster: &Cluster, path: &str) -> Result<Vec<BlockInfo>> {
    let leader = cluster.leader().await?;
    let (status, attr) = cluster
        .raw_call::<rest::Resolve>(
            leader,
            &rest::ResolveRequest {
                path: path.to_string(),
            },
        )
        .await?;
    anyhow::ensure!(status == 200, "resolve {path}: {status} {attr}");
    let attr: rest::Attr = serde_json::from_value(attr)?;
    let (status, blocks) = cluster
        .raw_call::<rest::GetBlocks>(
            leader,
            &rest::GetBlocksRequest {
                ino: attr.ino,
                offset: 0,
                len: 0,
            },
        )
        .await?;
    anyhow::ensure!(status == 200, "blocks of {path}: {status} {blocks}");
    let blocks: rest::FileBlocks = serde_json::from_value(blocks)?;
    Ok(blocks.blocks.iter().map(|b| b.block).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_replicas_and_namenode_restart() -> Result<()> {
    let mut cluster = Cluster::start(ClusterConfig::default()).await?;

    // 50 MiB of random data in, out, byte-identical.
    let local = cluster.scratch("in.bin");
    random_file(&local, 50 * MIB, 7)?;
    cluster.dfs_ok(&["mkdir", "-p", "/data/sub"])?;
    cluster.dfs_ok(&["put", local.to_str().context("path")?, "/data/sub/big.bin"])?;
    let out = cluster.scratch("out.bin");
    cluster.dfs_ok(&["get", "/data/sub/big.bin", out.to_str().context("path")?])?;
    let (a, b) = (std::fs::read(&local)?, std::fs::read(&out)?);
    assert_eq!(a.len(), b.len());
    assert!(a == b, "downloaded bytes differ from the uploaded ones");

    // 50 blocks, each with a replica file on each of the three datanodes.
    let blocks = file_blocks(&cluster, "/data/sub/big.bin").await?;
    assert_eq!(blocks.len(), 50);
    for dn in 0..3 {
        let names = replica_names(&cluster, dn);
        for b in &blocks {
            let name = format!("blk_{}_{}", b.id, b.generation);
            assert!(names.contains(&name), "datanode {dn} lacks replica {name}");
        }
    }
    // Each replica on disk holds exactly the block's bytes.
    let first = cluster
        .replica_files(0)
        .into_iter()
        .find(|p| p.ends_with(format!("blk_{}_{}", blocks[0].id, blocks[0].generation)))
        .context("replica of block 0")?;
    assert_eq!(std::fs::read(first)?, a[..MIB]);

    let listing = cluster.dfs_ok(&["ls", "-l", "/data/sub"])?;
    assert!(listing.contains("big.bin"), "{listing}");
    assert!(listing.contains(&(50 * MIB).to_string()), "{listing}");

    // kill -9 the namenode and start it again: the namespace is intact, and a read sent at
    // once succeeds: the client waits for the namenode to start, and the namenode answers
    // "retry" until the datanodes have reported their blocks again, never "missing".
    cluster.namenodes[0].daemon.kill9()?;
    cluster.namenodes[0].daemon.start()?;
    let out2 = cluster.scratch("out2.bin");
    cluster
        .dfs_ok(&["get", "/data/sub/big.bin", out2.to_str().context("path")?])
        .with_context(|| cluster.logs_for_failure())?;
    let listing = cluster.dfs_ok(&["ls", "-l", "/data/sub"])?;
    assert!(listing.contains("big.bin"), "{listing}");
    assert_eq!(file_blocks(&cluster, "/data/sub/big.bin").await?, blocks);
    assert!(
        std::fs::read(&out2)? == a,
        "bytes differ after namenode restart"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_metadata_survives_kill9() -> Result<()> {
    let mut cluster = Cluster::start(ClusterConfig::default()).await?;
    for i in 0..50 {
        cluster.dfs_ok(&["mkdir", "-p", &format!("/many/d{i}")])?;
    }
    let small = cluster.scratch("small.txt");
    std::fs::write(&small, b"hello dfs\n")?;
    cluster.dfs_ok(&["put", small.to_str().context("path")?, "/many/d7/hello.txt"])?;
    cluster.dfs_ok(&["mv", "/many/d7/hello.txt", "/many/d8/moved.txt"])?;
    cluster.dfs_ok(&["rm", "-r", "/many/d9"])?;

    cluster.namenodes[0].daemon.kill9()?;
    cluster.namenodes[0].daemon.start()?;
    cluster.wait_ready(Duration::from_secs(60)).await?;

    let listing = cluster.dfs_ok(&["ls", "/many"])?;
    let names: Vec<&str> = listing.split_whitespace().collect();
    assert_eq!(names.len(), 49, "{listing}");
    assert!(!names.contains(&"d9"));
    let cat = poll_until(Duration::from_secs(60), || async {
        cluster.dfs_ok(&["cat", "/many/d8/moved.txt"]).ok()
    })
    .await?;
    assert_eq!(cat, "hello dfs\n");
    let missing = cluster.dfs(&["cat", "/many/d7/hello.txt"])?;
    assert_eq!(missing.status.code(), Some(1));
    Ok(())
}
