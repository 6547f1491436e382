//! Leader finding: NOT_LEADER hints are followed, unreachable namenodes skipped, the leader
//! remembered, and a cluster with no leader gives up after the failover timeout.

mod fake;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dfs_client::{Client, ClientConfig, Error};
use dfs_proto::rest::ClusterInfo;
use dfs_proto::rest::Empty;
use dfs_proto::{ApiError, ErrorCode};
use fake::{api_error, cluster_info, serve_http};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A namenode that answers `/v1/cluster` with `answer` and counts the calls.
async fn namenode(
    answer: impl Fn() -> Response + Clone + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = Router::new().route(
        "/v1/cluster",
        get(move || {
            let counter = counter.clone();
            let answer = answer.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                answer()
            }
        }),
    );
    (serve_http(router).await, hits)
}

fn leader_answer() -> Response {
    axum::Json(cluster_info(1 << 20)).into_response()
}

async fn free_port() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr").to_string()
}

fn client(namenodes: Vec<String>, failover: Duration) -> Client {
    let mut config = ClientConfig::new(namenodes);
    config.failover_timeout = failover;
    config.request_timeout = Duration::from_secs(5);
    Client::new(config).expect("client")
}

#[tokio::test]
async fn follows_the_leader_hint_and_remembers_it() {
    let (leader, leader_hits) = namenode(leader_answer).await;
    let hint = leader.clone();
    let (follower, follower_hits) =
        namenode(move || api_error(ApiError::not_leader(Some(hint.clone())))).await;
    let (other, other_hits) = namenode(|| api_error(ApiError::not_leader(None))).await;

    // The follower is asked first and points straight at the leader, skipping `other`.
    let c = client(
        vec![follower.clone(), other, leader.clone()],
        Duration::from_secs(10),
    );
    let info = c.call::<ClusterInfo>(&Empty {}).await.expect("call");
    assert_eq!(info.default_block_size, 1 << 20);
    assert_eq!(follower_hits.load(Ordering::SeqCst), 1);
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);
    assert_eq!(leader_hits.load(Ordering::SeqCst), 1);
    assert_eq!(c.current_namenode(), leader);

    // The next call goes to the leader directly.
    c.call::<ClusterInfo>(&Empty {}).await.expect("second call");
    assert_eq!(follower_hits.load(Ordering::SeqCst), 1);
    assert_eq!(leader_hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn skips_unreachable_and_leaderless_namenodes() {
    let dead = free_port().await;
    let (busy, busy_hits) =
        namenode(|| api_error(ApiError::new(ErrorCode::Unavailable, "electing"))).await;
    let (leader, _) = namenode(leader_answer).await;
    let c = client(vec![dead, busy, leader.clone()], Duration::from_secs(10));
    c.call::<ClusterInfo>(&Empty {}).await.expect("call");
    assert_eq!(busy_hits.load(Ordering::SeqCst), 1);
    assert_eq!(c.current_namenode(), leader);
}

#[tokio::test]
async fn gives_up_after_the_failover_timeout() {
    let (busy, busy_hits) =
        namenode(|| api_error(ApiError::new(ErrorCode::Unavailable, "electing"))).await;
    let dead = free_port().await;
    let c = client(vec![busy, dead], Duration::from_millis(800));
    let started = std::time::Instant::now();
    let err = c
        .call::<ClusterInfo>(&Empty {})
        .await
        .expect_err("no leader");
    assert!(matches!(err, Error::NoLeader { .. }), "{err}");
    assert!(err.to_string().contains("electing") || err.to_string().contains("namenode"));
    assert!(
        busy_hits.load(Ordering::SeqCst) >= 2,
        "retried with back-off"
    );
    // Bounded: well under the default 30 s even on a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn api_errors_are_returned_not_retried() {
    let (nn, hits) = namenode(|| api_error(ApiError::new(ErrorCode::NotFound, "gone"))).await;
    let c = client(vec![nn], Duration::from_secs(10));
    let err = c.call::<ClusterInfo>(&Empty {}).await.expect_err("ENOENT");
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    assert_eq!(err.errno(), libc::ENOENT);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
