//! Three in-process namenodes talking Raft over REST: a leader is elected, followers answer
//! `NOT_LEADER` with the leader's address, and when the leader stops another takes over with
//! the namespace intact.

use dfs_namenode::{Config, run};
use dfs_proto::rest::{self, Empty, Endpoint, Method, MkdirRequest, NamenodeRole, ResolveRequest};
use dfs_proto::{ApiError, ErrorCode, InodeId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

async fn call<E: Endpoint>(
    client: &reqwest::Client,
    addr: &str,
    req: &E::Request,
) -> Result<E::Response, ApiError> {
    let url = format!("http://{addr}{}", E::PATH);
    let builder = match E::METHOD {
        Method::Get => client.get(&url).query(req),
        Method::Post => client.post(&url).json(req),
    };
    let resp = builder
        .send()
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
    if resp.status().is_success() {
        Ok(resp.json().await.expect("response body parses"))
    } else {
        Err(resp.json().await.expect("error body is an ApiError"))
    }
}

/// Polls every live node until one says it leads; answers its address.
async fn find_leader(client: &reqwest::Client, addrs: &[String]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        for addr in addrs {
            if let Ok(info) = call::<rest::ClusterInfo>(client, addr, &Empty {}).await
                && info.role == NamenodeRole::Leader
            {
                return addr.clone();
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no leader in 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_namenodes_elect_replicate_and_fail_over() {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("temp dir"))
        .collect();
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr"))
        .collect();
    let peers: BTreeMap<u64, String> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (i as u64 + 1, a.to_string()))
        .collect();
    let mut nodes: Vec<(String, CancellationToken, JoinHandle<anyhow::Result<()>>)> = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let mut config = Config::new(dirs[i].path());
        config.node_id = i as u64 + 1;
        config.peers = peers.clone();
        config.raft_heartbeat = Duration::from_millis(200);
        config.election_timeout_min = Duration::from_millis(1000);
        config.election_timeout_max = Duration::from_millis(2000);
        let token = CancellationToken::new();
        let task = tokio::spawn(run(config, listener, token.clone()));
        nodes.push((addrs[i].to_string(), token, task));
    }
    let client = reqwest::Client::new();
    let all: Vec<String> = nodes.iter().map(|n| n.0.clone()).collect();
    let leader = find_leader(&client, &all).await;

    let mkdir = MkdirRequest {
        parent: InodeId::ROOT,
        name: "replicated".into(),
        perm: 0o755,
        uid: 0,
        gid: 0,
    };
    call::<rest::Mkdir>(&client, &leader, &mkdir)
        .await
        .expect("mkdir on the leader");
    let follower = all.iter().find(|a| **a != leader).expect("a follower");
    let e = call::<rest::Mkdir>(&client, follower, &mkdir)
        .await
        .expect_err("followers do not write");
    assert_eq!(e.code, ErrorCode::NotLeader);
    assert_eq!(e.leader.as_deref(), Some(leader.as_str()));

    // Stop the leader; the other two elect a new one that has the directory.
    let pos = nodes.iter().position(|n| n.0 == leader).expect("leader");
    let (_, token, task) = nodes.remove(pos);
    token.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("old leader stops")
        .expect("joins")
        .expect("clean exit");
    let rest_addrs: Vec<String> = nodes.iter().map(|n| n.0.clone()).collect();
    let new_leader = find_leader(&client, &rest_addrs).await;
    assert_ne!(new_leader, leader);
    let attr = call::<rest::Resolve>(
        &client,
        &new_leader,
        &ResolveRequest {
            path: "/replicated".into(),
        },
    )
    .await
    .expect("the directory survived fail-over");
    assert_eq!(attr.kind, rest::FileKind::Dir);

    for (_, token, task) in nodes {
        token.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
}
