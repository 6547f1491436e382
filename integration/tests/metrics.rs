//! `/metrics` on real daemons: after a file is written and read back, the namenode's and the
//! datanodes' Prometheus metrics show it (requests counted by route, Raft position, datanodes
//! by state, bytes written and read, heartbeats both ways), and a FUSE mount started with
//! `-o metrics_listen=ADDR` counts its operations (needs root and /dev/fuse, as the mount tests).

use anyhow::{Context, Result, bail, ensure};
use integration::mount::Mount;
use integration::{Cluster, ClusterConfig, free_port, poll_until, random_file};
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// One sample line: `name{labels} value`, labels kept as written.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: String,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            Some(Sample {
                name: name.to_string(),
                labels: labels.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// The sum of every sample of `name` whose labels contain each of `labels` (`key="value"`).
fn sum(samples: &[Sample], name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|l| s.labels.contains(l)))
        .map(|s| s.value)
        .sum()
}

async fn scrape(http: &reqwest::Client, addr: &str) -> Result<Vec<Sample>> {
    let resp = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .with_context(|| format!("scrape {addr}"))?;
    ensure!(
        resp.status() == 200,
        "{addr}/metrics answered {}",
        resp.status()
    );
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    ensure!(
        content_type.starts_with("text/plain"),
        "content type {content_type}"
    );
    Ok(parse(&resp.text().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_reads_and_writes() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let size = 3 * MIB + 100;
    let local = cluster.scratch("file.bin");
    random_file(&local, size, 8)?;
    let local = local.to_str().context("utf-8 path")?;
    cluster.dfs_ok(&["mkdir", "-p", "/m"])?;
    cluster.dfs_ok(&["put", local, "/m/file.bin"])?;
    let back = cluster.scratch("back.bin");
    cluster.dfs_ok(&["get", "/m/file.bin", back.to_str().context("utf-8 path")?])?;
    ensure!(
        std::fs::read(&back)?.len() == size,
        "read back a different size"
    );

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let leader = &cluster.namenodes[cluster.leader().await?];

    // Gauges are measured at scrape time and block reports may trail the commit: poll.
    let nn = poll_until(Duration::from_secs(60), || async {
        let m = scrape(&http, &leader.addr).await.ok()?;
        let settled = sum(&m, "dfs_namenode_blocks", &[]) >= 4.0
            && sum(&m, "dfs_namenode_blocks_under_replicated", &[]) == 0.0
            && sum(&m, "dfs_namenode_heartbeats_received_total", &[]) > 0.0;
        settled.then_some(m)
    })
    .await
    .with_context(|| cluster.logs_for_failure())?;
    let create = ["path=\"/v1/create\"", "code=\"200\""];
    for (name, labels, at_least) in [
        ("dfs_namenode_requests_total", &create[..], 1.0),
        (
            "dfs_namenode_requests_total",
            &["path=\"/v1/block/allocate\""][..],
            4.0,
        ),
        (
            "dfs_namenode_request_duration_seconds_count",
            &["path=\"/v1/create\""][..],
            1.0,
        ),
        ("dfs_namenode_raft_term", &[][..], 1.0),
        ("dfs_namenode_raft_role", &["role=\"leader\""][..], 1.0),
        ("dfs_namenode_raft_commit_index", &[][..], 1.0),
        ("dfs_namenode_raft_applied_index", &[][..], 1.0),
        ("dfs_namenode_datanodes", &["state=\"live\""][..], 3.0),
        ("dfs_namenode_files", &[][..], 1.0),
        ("dfs_namenode_directories", &[][..], 2.0),
        ("dfs_namenode_block_reports_received_total", &[][..], 3.0),
    ] {
        let v = sum(&nn, name, labels);
        ensure!(v >= at_least, "{name}{labels:?} = {v}, want >= {at_least}");
    }
    for (name, labels) in [
        ("dfs_namenode_raft_role", &["role=\"follower\""][..]),
        ("dfs_namenode_datanodes", &["state=\"dead\""][..]),
        ("dfs_namenode_blocks_missing", &[][..]),
        ("dfs_namenode_blocks_corrupt", &[][..]),
    ] {
        let v = sum(&nn, name, labels);
        ensure!(v == 0.0, "{name}{labels:?} = {v}, want 0");
    }
    let buckets = nn
        .iter()
        .filter(|s| s.name == "dfs_namenode_request_duration_seconds_bucket")
        .count();
    ensure!(buckets > 10, "the latency histogram has {buckets} buckets");

    // Every datanode got every block (replication 3); the read, on the datanodes' machine, was
    // served by handing replica files over (short-circuit local reads), one per block. A
    // datanode's first heartbeat may come after a quick put: wait for it rather than race it.
    let (mut written, mut handed, mut writes_ok) = (0.0, 0.0, 0.0);
    for dn in &cluster.datanodes {
        let m = poll_until(Duration::from_secs(60), || async {
            let m = scrape(&http, &dn.http_addr).await.ok()?;
            let beats = sum(&m, "dfs_datanode_heartbeats_sent_total", &["result=\"ok\""]);
            (beats >= 1.0).then_some(m)
        })
        .await
        .with_context(|| format!("{} sent no heartbeat", dn.daemon.name))?;
        let mine = sum(&m, "dfs_datanode_bytes_written_total", &[]);
        if mine < size as f64 {
            bail!("{} wrote {mine} bytes, want >= {size}", dn.daemon.name);
        }
        for (name, labels, at_least) in [
            ("dfs_datanode_blocks", &[][..], 4.0),
            ("dfs_datanode_capacity_bytes", &[][..], 1.0),
            ("dfs_datanode_used_bytes", &[][..], size as f64),
            (
                "dfs_datanode_heartbeats_sent_total",
                &["result=\"ok\""][..],
                1.0,
            ),
            (
                "dfs_datanode_grpc_duration_seconds_count",
                &["op=\"write_block\""][..],
                4.0,
            ),
        ] {
            let v = sum(&m, name, labels);
            ensure!(
                v >= at_least,
                "{}: {name} = {v}, want >= {at_least}",
                dn.daemon.name
            );
        }
        written += mine;
        handed += sum(&m, "dfs_datanode_local_reads_total", &["result=\"ok\""]);
        writes_ok += sum(
            &m,
            "dfs_datanode_grpc_requests_total",
            &["op=\"write_block\"", "result=\"ok\""],
        );
    }
    ensure!(
        written >= 3.0 * size as f64,
        "{written} bytes written in all"
    );
    ensure!(
        handed >= 4.0,
        "{handed} replica files handed to the local reader, want one per block (4)"
    );
    ensure!(
        writes_ok >= 12.0,
        "{writes_ok} block writes in all, want 4 blocks x 3"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mount_counts_its_operations() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mount = Mount::start(&cluster, &["-o", &format!("metrics_listen={addr}")])?;
    let file = mount.dir.join("hello.txt");
    std::fs::write(&file, vec![7u8; 300 * 1024])?;
    ensure!(
        std::fs::read(&file)?.len() == 300 * 1024,
        "read back a different size"
    );
    ensure!(
        std::fs::metadata(mount.dir.join("missing")).is_err(),
        "a missing file has attributes"
    );

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let m = scrape(&http, &addr).await?;
    for (op, result) in [
        ("create", "ok"),
        ("write", "ok"),
        ("flush", "ok"),
        ("lookup", "error"),
    ] {
        let labels = [format!("op=\"{op}\""), format!("result=\"{result}\"")];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let v = sum(&m, "dfs_fuse_operations_total", &labels);
        ensure!(
            v >= 1.0,
            "dfs_fuse_operations_total{labels:?} = {v}, want >= 1"
        );
    }
    let writes = sum(
        &m,
        "dfs_fuse_operation_duration_seconds_count",
        &["op=\"write\""],
    );
    ensure!(writes >= 1.0, "{writes} write latencies recorded");
    drop(mount);
    Ok(())
}
