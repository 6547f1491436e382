//! Namenode failover time: on its own cluster of three namenodes with default election settings,
//! the leader is killed with SIGKILL several times; each time the clock runs from the kill to the
//! first metadata write (a mkdir through the client library, which finds the new leader by
//! itself) that succeeds. Prints min/median/max.

use anyhow::{Context, Result};
use dfs_proto::rest::{self, Endpoint, HaStatusResponse, NamenodeRole};
use integration::{Cluster, ClusterConfig, poll_until};
use std::time::{Duration, Instant};

/// Kills measured.
const KILLS: usize = 5;

async fn role_of(http: &reqwest::Client, addr: &str) -> Option<NamenodeRole> {
    let resp = http
        .get(format!("http://{addr}{}", rest::HaStatus::PATH))
        .send()
        .await
        .ok()?;
    let s: HaStatusResponse = resp.json().await.ok()?;
    Some(s.role)
}

pub async fn failover() -> Result<()> {
    let mut cluster = Cluster::start(ClusterConfig {
        namenodes: 3,
        datanodes: 1,
        replication: 1,
        ..ClusterConfig::default()
    })
    .await?;
    let mut config =
        dfs_client::ClientConfig::new(cluster.namenodes.iter().map(|n| n.addr.clone()).collect());
    config.failover_timeout = Duration::from_secs(120);
    config.secret_file = Some(cluster.secret_file.clone());
    let client = dfs_client::Client::new(config)?;
    let http = cluster.http().clone();
    client.mkdir("/failover", false).await?;

    let mut times = Vec::new();
    for k in 0..KILLS {
        let leader = cluster.leader().await?;
        client.mkdir(&format!("/failover/warm-{k}"), false).await?;
        cluster.namenodes[leader].daemon.kill9()?;
        let killed = Instant::now();
        client
            .mkdir(&format!("/failover/after-{k}"), false)
            .await
            .context("write after the leader was killed")?;
        times.push(killed.elapsed());
        // Back to three before the next kill.
        cluster.namenodes[leader].daemon.start()?;
        let addr = cluster.namenodes[leader].addr.clone();
        poll_until(Duration::from_secs(60), || async {
            (role_of(&http, &addr).await == Some(NamenodeRole::Follower)).then_some(())
        })
        .await
        .context("the restarted namenode did not rejoin")?;
    }
    times.sort();
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "\nnamenode failover (3 namenodes, leader killed -> first successful mkdir through the \
         client), {KILLS} kills:"
    );
    println!(
        "  min {:.2} s   median {:.2} s   max {:.2} s   (target: median <= 3 s)",
        secs(times[0]),
        secs(times[times.len() / 2]),
        secs(times[times.len() - 1])
    );
    Ok(())
}
