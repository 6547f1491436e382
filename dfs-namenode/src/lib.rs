//! The dfs namenode: the namespace on a Raft log, the soft block map, and the REST API.
//!
//! [`run`] starts a namenode on a listener it is given and stops when a cancellation token
//! fires, so tests run it in-process on `127.0.0.1:0`; the `dfs-namenode` binary only parses
//! flags and calls it.

pub mod api;
pub mod block_map;
pub mod config;
pub mod datanodes;
pub mod events;
pub mod lease_ticker;
pub mod metrics;
pub mod namespace;
pub mod node;
pub mod placement;
pub mod raft;
pub mod replication;
pub mod status_page;

pub use config::Config;

use anyhow::Context;
use block_map::BlockMap;
use datanodes::Datanodes;
use namespace::NamespaceConfig;
use node::{Node, Settings};
use openraft::{BasicNode, SnapshotPolicy};
use raft::log_store::LogStore;
use raft::network::{NetworkFactory, http_client};
use raft::proposer::Proposer;
use raft::snapshot_file::SnapshotDir;
use raft::state_machine::StateMachine;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for in-flight HTTP requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn raft_config(config: &Config) -> anyhow::Result<openraft::Config> {
    let c = openraft::Config {
        cluster_name: "dfs".to_string(),
        heartbeat_interval: millis(config.raft_heartbeat),
        election_timeout_min: millis(config.election_timeout_min),
        election_timeout_max: millis(config.election_timeout_max),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        // Keep half a snapshot interval of log behind each snapshot (a follower a little
        // behind catches up by log); one further behind gets the snapshot.
        max_in_snapshot_log_to_keep: (config.snapshot_every / 2).min(1000),
        ..Default::default()
    };
    c.validate().context("raft settings")
}

/// Runs a namenode on `listener` until `shutdown` is cancelled.
///
/// On a first start (empty Raft log) the namenode initializes the cluster with every peer as a
/// voter; afterwards it rejoins from its log and snapshot. It is ready once `GET /v1/cluster`
/// answers with a leader.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate()?;
    let local = listener.local_addr().context("listener address")?;
    let advertise = match &config.advertise {
        Some(a) => a.clone(),
        None => local.to_string(),
    };
    let peers = if config.peers.is_empty() {
        BTreeMap::from([(config.node_id, advertise.clone())])
    } else {
        config.peers.clone()
    };

    let data_dir = config.data_dir.clone();
    let secret_file = config.secret_file.clone();
    let (log_store, pristine, snapshots, secret) = tokio::task::spawn_blocking(move || {
        let secret = secret_file
            .map(|path| dfs_proto::ClusterSecret::load(&path))
            .transpose()
            .context("load the cluster secret")?;
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("create data directory {}", data_dir.display()))?;
        let store = LogStore::open(&data_dir.join("raft.redb")).context("open raft log")?;
        let pristine = store.is_pristine().context("read raft log")?;
        let snapshots =
            SnapshotDir::open(data_dir.join("snapshots")).context("open snapshot directory")?;
        anyhow::Ok((store, pristine, snapshots, secret))
    })
    .await??;
    if secret.is_none() {
        tracing::warn!(
            "no cluster secret configured (--secret-file): REST calls and block transfers are \
             not authenticated; anyone who can reach this namenode can use and change it"
        );
    }
    let security = api::auth::Security::new(secret, config.block_token_lifetime);

    let blocks = Arc::new(Mutex::new(BlockMap::with_policy(
        replication::ReplicationPolicy {
            min_replicas: config.min_replicas,
            ..Default::default()
        },
    )));
    let namespace_config = NamespaceConfig {
        block_size: config.block_size,
        lease_ms: millis(config.lease_duration),
    };
    let state = {
        let blocks = blocks.clone();
        tokio::task::spawn_blocking(move || StateMachine::open(snapshots, namespace_config, blocks))
            .await?
            .context("load the namespace snapshot")?
    };

    let network = NetworkFactory {
        client: http_client(
            Some(local.ip()).filter(|ip| !ip.is_unspecified()),
            security.secret(),
        )
        .context("build HTTP client")?,
        node_id: config.node_id,
    };
    let raft = raft::Raft::new(
        config.node_id,
        Arc::new(raft_config(&config)?),
        network,
        log_store,
        state.clone(),
    )
    .await
    .context("start raft")?;

    let node = Arc::new(Node {
        id: config.node_id,
        raft: raft.clone(),
        proposer: Proposer::start(raft.clone(), node::PROPOSE_TIMEOUT),
        state,
        datanodes: Datanodes::new(config.datanode_dead_after),
        blocks,
        metrics: metrics::Metrics::new(),
        events: events::Events::new(),
        security,
        settings: Settings {
            block_size: config.block_size,
            replication: config.replication,
            lease_ms: millis(config.lease_duration),
        },
    });

    let app = api::router(node.clone());
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future(),
    );
    tracing::info!(node_id = config.node_id, %advertise, ?peers, "namenode listening");

    if pristine {
        let members: BTreeMap<u64, BasicNode> = peers
            .iter()
            .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
            .collect();
        match raft.initialize(members).await {
            Ok(()) => tracing::info!("initialized a new cluster"),
            // Another peer initialized first; this node joins through it.
            Err(e) => tracing::info!(error = %e, "cluster already initialized"),
        }
    }

    let ticker = tokio::spawn(lease_ticker::run(node.clone(), shutdown.clone()));
    let replicator = tokio::spawn(replication::run(node.clone(), shutdown.clone()));

    shutdown.cancelled().await;
    tracing::info!("shutting down");
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
        Err(_) => tracing::warn!("HTTP requests still running at shutdown deadline"),
    }
    if let Err(e) = ticker.await {
        tracing::warn!(error = %e, "lease ticker failed");
    }
    if let Err(e) = replicator.await {
        tracing::warn!(error = %e, "replication monitor failed");
    }
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft shutdown failed");
    }
    drop(node);
    Ok(())
}
