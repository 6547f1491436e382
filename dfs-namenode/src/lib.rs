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
use axum::serve::ListenerExt;
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

/// What an operator can do about a namenode data directory that fails its start checks.
const RECOVER_HINT: &str = "restore the data directory from a backup, or remove this node with \
     `dfs admin ha remove` and add it back with an empty data directory: see docs/SECURITY.md";

/// Refuses a data directory whose log and snapshot do not fit together: a log purged past the
/// newest snapshot (the snapshot file is missing or older), or an empty log beside a snapshot
/// (the log file was lost). Starting either would serve an incomplete namespace.
fn check_log_meets_snapshot(
    data_dir: &std::path::Path,
    pristine: bool,
    purged: Option<raft::LogId>,
    snapshot: Option<raft::LogId>,
) -> anyhow::Result<()> {
    let log = data_dir.join("raft.redb");
    let snaps = data_dir.join("snapshots");
    let snap_index = snapshot.map(|l| l.index);
    if let Some(p) = purged
        && snap_index < Some(p.index)
    {
        let newest = match snap_index {
            Some(i) => format!("the newest snapshot covers up to index {i}"),
            None => "there is no snapshot".to_string(),
        };
        anyhow::bail!(
            "raft log {} was purged up to index {} but {newest} in {}: the snapshot file is \
             missing or stale; refusing to start with an incomplete namespace ({RECOVER_HINT})",
            log.display(),
            p.index,
            snaps.display()
        );
    }
    if pristine && let Some(i) = snap_index {
        anyhow::bail!(
            "raft log {} is empty but {} holds a snapshot up to index {i}: the log file was lost \
             or replaced; refusing to start ({RECOVER_HINT})",
            log.display(),
            snaps.display()
        );
    }
    Ok(())
}

/// The TLS settings of a namenode: both or neither (see [`Config::validate`]).
struct Tls {
    server: Option<dfs_tls::ServerTls>,
    client: Option<dfs_tls::ClientTls>,
}

async fn load_tls(config: &Config) -> anyhow::Result<Tls> {
    let (cert, key, ca) = (
        config.tls_cert.clone(),
        config.tls_key.clone(),
        config.tls_ca.clone(),
    );
    tokio::task::spawn_blocking(move || {
        anyhow::Ok(Tls {
            server: dfs_tls::ServerTls::load_optional(cert.as_deref(), key.as_deref())?,
            client: dfs_tls::ClientTls::load_optional(ca.as_deref())?,
        })
    })
    .await?
}

/// Runs a namenode on `listener` until `shutdown` is cancelled.
///
/// On a first start (empty Raft log) the namenode initializes the cluster with every peer as a
/// voter; afterwards it rejoins from its log and snapshot. It is ready once `GET /v1/cluster`
/// answers with a leader. After `dfs admin ha promote` it stops everything but the listening
/// socket and starts again from disk, where the promotion is carried out (`raft::promote`).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate()?;
    let listener = listener.into_std().context("listener")?;
    loop {
        let this_run = tokio::net::TcpListener::from_std(
            listener
                .try_clone()
                .context("duplicate the listening socket")?,
        )
        .context("listener")?;
        // A child: shutdown ends this run too; a restart ends only this run.
        run_once(&config, this_run, shutdown.child_token()).await?;
        if shutdown.is_cancelled() {
            return Ok(());
        }
        tracing::warn!("restarting the namenode's raft node");
        wait_for_log_closed(&config.data_dir.join("raft.redb")).await?;
    }
}

/// Waits until the last run's tasks have let go of the Raft log (redb opens a file once per
/// process), for at most [`SHUTDOWN_GRACE`].
async fn wait_for_log_closed(path: &std::path::Path) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    loop {
        let p = path.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || raft::log_store::LogDb::open(&p)).await?;
        match opened {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("reopen raft log {}", path.display()));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

/// One life of the Raft node and everything built on it, until `stop` is cancelled (shutdown,
/// or a restart).
async fn run_once(
    config: &Config,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
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
    let (log_store, pristine, purged, snapshots, secret) = tokio::task::spawn_blocking(move || {
        let secret = secret_file
            .map(|path| dfs_proto::ClusterSecret::load(&path))
            .transpose()
            .context("load the cluster secret")?;
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("create data directory {}", data_dir.display()))?;
        let log_path = data_dir.join("raft.redb");
        {
            let db = raft::log_store::LogDb::open(&log_path)
                .with_context(|| format!("open raft log {}", log_path.display()))?;
            raft::promote::apply_pending(&data_dir, &db).context("carry out the promotion")?;
        }
        let store = LogStore::open(&log_path)
            .with_context(|| format!("open raft log {}", log_path.display()))?;
        let pristine = store
            .is_pristine()
            .with_context(|| format!("read raft log {}", log_path.display()))?;
        let purged = store.check().with_context(|| {
            format!(
                "raft log {} is corrupt; refusing to start ({RECOVER_HINT})",
                log_path.display()
            )
        })?;
        let snapshots =
            SnapshotDir::open(data_dir.join("snapshots")).context("open snapshot directory")?;
        anyhow::Ok((store, pristine, purged, snapshots, secret))
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
            .context("load the namespace snapshot; refusing to start")?
    };
    check_log_meets_snapshot(&config.data_dir, pristine, purged, state.last_applied())?;

    let tls = load_tls(config).await?;
    let network = NetworkFactory {
        client: http_client(
            Some(local.ip()).filter(|ip| !ip.is_unspecified()),
            security.secret(),
            tls.client.as_ref(),
        )
        .context("build HTTP client")?,
        scheme: dfs_tls::scheme(tls.client.as_ref()),
        node_id: config.node_id,
    };
    let raft = raft::Raft::new(
        config.node_id,
        Arc::new(raft_config(config)?),
        network,
        log_store,
        state.clone(),
    )
    .await
    .context("start raft")?;

    let node = Arc::new(Node {
        id: config.node_id,
        data_dir: config.data_dir.clone(),
        restart: stop.clone(),
        raft: raft.clone(),
        proposer: Proposer::start(raft.clone(), node::PROPOSE_TIMEOUT),
        read_lease: raft::read_lease::ReadLease::new(config.election_timeout_min),
        state,
        datanodes: Datanodes::new(config.datanode_dead_after),
        blocks,
        commands_ready: tokio::sync::Notify::new(),
        metrics: metrics::Metrics::new(),
        events: events::Events::new(),
        security,
        settings: Settings {
            block_size: config.block_size,
            replication: config.replication,
            lease_ms: millis(config.lease_duration),
            max_leases_per_client: config.max_leases_per_client,
            request_timeout: config.request_timeout,
        },
    });

    let app = api::router(node.clone());
    let server = tokio::spawn(
        axum::serve(
            // `tap_io` so that `ConnectInfo<SocketAddr>` works on the TLS listener too.
            api::conn_limits::LimitedListener::new(
                dfs_tls::HttpListener::new(listener, tls.server.as_ref())
                    .context("start the TLS listener")?,
                config.max_connections as usize,
                config.idle_timeout,
            )
            .tap_io(|_| {}),
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stop.clone().cancelled_owned())
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

    let ticker = tokio::spawn(lease_ticker::run(node.clone(), stop.clone()));
    let replicator = tokio::spawn(replication::run(node.clone(), stop.clone()));

    stop.cancelled().await;
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
