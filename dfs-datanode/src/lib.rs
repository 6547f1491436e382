//! dfs datanode: stores block replicas on local disk with CRC32C checksums, serves them over
//! gRPC (`DataTransfer`: pipeline writes, ranged reads), and keeps every namenode informed with
//! registration, heartbeats and block reports over REST.
//!
//! - [`block_store`]: the on-disk replicas (crash-safe writes, start-up scan); `durable` holds
//!   the one rename-into-place helper, `sidecar` the checksum file format, [`space`] statvfs.
//! - `transfer`: the gRPC service; `peers`: cached channels to other datanodes.
//! - `heartbeat`, `reports`, `commands`: the conversation with namenodes; `throttle` caps the
//!   bandwidth of replication copies; `scrubber` re-verifies stored replicas in the background.
//! - `auth`: block access token checks on every transfer.
//! - `local_reads`: the Unix socket that hands co-located clients replica files.
//! - `http`: `GET /health` and `GET /metrics` (`metrics`). [`config`]: flags, TOML file and defaults.
//!
//! [`run`] takes its listeners and a shutdown token, so tests start a datanode in-process on
//! `127.0.0.1:0`.

mod auth;
pub mod block_store;
mod commands;
pub mod config;
mod durable;
mod heartbeat;
mod http;
mod local_reads;
mod metrics;
mod peers;
mod reports;
mod scrubber;
mod sidecar;
pub mod space;
mod throttle;
mod transfer;

pub use config::{ByteSize, Cli, Config, ConfigError};
pub use transfer::FAILED_DATANODE;

use anyhow::Context;
use block_store::BlockStore;
use dfs_proto::flow;
use peers::Peers;
use reports::{NamenodeClient, Reports};
use space::{Space, SpaceLimits};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use transfer::ActiveTransfers;

/// How long shutdown waits for servers and loops to finish.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// TCP keepalive and HTTP/2 ping interval on gRPC connections: a peer that vanished is found.
const GRPC_KEEPALIVE: Duration = Duration::from_secs(30);
/// A ping not answered within this closes the connection.
const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Concurrent gRPC streams one connection may open (writes, pipeline forwards and reads).
const GRPC_MAX_STREAMS: u32 = 256;
/// Largest header block a gRPC request may carry (a block token is well under 1 KiB).
const GRPC_MAX_HEADER_LIST: u32 = 16 * 1024;

/// What the services and loops of one datanode share.
pub(crate) struct Node {
    store: Arc<BlockStore>,
    /// The gRPC address (host:port) clients and peers reach this node at.
    grpc_addr: String,
    /// The HTTP address (host:port) of `/health`, as registered with namenodes.
    http_addr: String,
    /// The local read socket's absolute path, as registered with namenodes (`None`: no local
    /// reads).
    local_socket: Option<String>,
    peers: Peers,
    rest: NamenodeClient,
    reports: Reports,
    transfers: Arc<ActiveTransfers>,
    heartbeat_interval: Duration,
    block_report_interval: Duration,
    /// Shared by every replication copy this node sends.
    replication_throttle: Arc<throttle::Throttle>,
    /// Counters and histograms for `/metrics`.
    metrics: metrics::Metrics,
    /// Checks the block access token of every transfer.
    tokens: auth::TokenCheck,
    /// A write stream whose next message takes longer than this is cut off.
    idle_timeout: Duration,
}

impl Node {
    /// Current space figures; zeros (logged) if the file system cannot be asked.
    async fn space(&self) -> Space {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || store.space()).await {
            Ok(Ok(space)) => space,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot measure free space");
                Space::default()
            }
            Err(e) => {
                tracing::error!(error = %e, "space measurement task failed");
                Space::default()
            }
        }
    }
}

/// `host:port`, with brackets around an IPv6 host.
fn host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}

/// The host to advertise: the configured one, or the listener's IP (127.0.0.1 if unspecified).
fn advertise_host(config: &Config, listen: SocketAddr) -> String {
    match &config.advertise_host {
        Some(host) => host.clone(),
        None if listen.ip().is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
        None => listen.ip().to_string(),
    }
}

/// Runs a datanode until `shutdown` is cancelled (or a server fails).
pub async fn run(
    config: Config,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let limits = SpaceLimits {
        reserved: config.reserved,
        capacity: config.capacity,
    };
    let secret = match config.secret_file.clone() {
        Some(path) => Some(
            tokio::task::spawn_blocking(move || dfs_proto::ClusterSecret::load(&path))
                .await
                .context("load the cluster secret")?
                .context("load the cluster secret")?,
        ),
        None => {
            tracing::warn!(
                "no cluster secret configured (--secret-file): block transfers are not \
                 checked and namenodes that require the secret will refuse this datanode"
            );
            None
        }
    };
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || BlockStore::open(&data_dir, limits))
        .await
        .context("open the block store")?
        .with_context(|| format!("open the data directory {}", config.data_dir.display()))?;
    let grpc_local = grpc_listener
        .local_addr()
        .context("read the gRPC address")?;
    let http_local = http_listener
        .local_addr()
        .context("read the HTTP address")?;
    let host = advertise_host(&config, grpc_local);
    let local = config.local_socket.as_deref().and_then(|path| {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        match local_reads::bind(&path) {
            Ok(listener) => Some((listener, path)),
            Err(e) => {
                tracing::warn!(socket = %path.display(), error = %e,
                    "cannot listen for local reads; clients on this machine will read over gRPC");
                None
            }
        }
    });
    let (server_tls, client_tls) = {
        let (cert, key, ca) = (
            config.tls_cert.clone(),
            config.tls_key.clone(),
            config.tls_ca.clone(),
        );
        tokio::task::spawn_blocking(move || {
            anyhow::Ok((
                dfs_tls::ServerTls::load_optional(cert.as_deref(), key.as_deref())?,
                dfs_tls::ClientTls::load_optional(ca.as_deref())?,
            ))
        })
        .await??
    };
    let node = Arc::new(Node {
        store,
        grpc_addr: host_port(&host, grpc_local.port()),
        http_addr: host_port(&host, http_local.port()),
        local_socket: local
            .as_ref()
            .map(|(_, path)| path.to_string_lossy().into_owned()),
        peers: Peers::new(client_tls.clone()),
        rest: NamenodeClient::new(secret.as_ref(), client_tls.as_ref())
            .context("build the namenode HTTP client")?,
        reports: Reports::new(config.namenodes.len()),
        transfers: Arc::default(),
        heartbeat_interval: config.heartbeat_interval,
        block_report_interval: config.block_report_interval,
        replication_throttle: Arc::new(throttle::Throttle::new(config.replication_bandwidth)),
        metrics: metrics::Metrics::new(),
        tokens: auth::TokenCheck::new(secret.as_ref()),
        idle_timeout: config.idle_timeout,
    });
    tracing::info!(
        datanode_id = %node.store.datanode_id(),
        grpc = %node.grpc_addr,
        http = %node.http_addr,
        local_socket = node.local_socket.as_deref().unwrap_or("none"),
        namenodes = ?config.namenodes,
        "datanode starting"
    );

    // Our own token, so a failing server can stop everything without touching the caller's.
    let stop = shutdown.child_token();
    let mut servers = JoinSet::new();
    let idle = config.idle_timeout;
    let incoming = tokio_stream::StreamExt::map(
        tonic::transport::server::TcpIncoming::from(grpc_listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(GRPC_KEEPALIVE)),
        move |tcp| tcp.map(|tcp| dfs_proto::idle::IdleIo::new(tcp, idle, None)),
    );
    // A peer that vanishes (no FIN) is found by HTTP/2 pings; streams per connection are
    // bounded; a write stream that stalls is cut off in `transfer::write`.
    let mut grpc = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(GRPC_KEEPALIVE))
        .http2_keepalive_timeout(Some(GRPC_KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(GRPC_MAX_STREAMS)
        .http2_max_header_list_size(GRPC_MAX_HEADER_LIST)
        .max_frame_size(flow::MAX_FRAME)
        .initial_stream_window_size(flow::STREAM_WINDOW)
        .initial_connection_window_size(flow::CONNECTION_WINDOW);
    if let Some(tls) = &server_tls {
        grpc = grpc.tls_config(tls.grpc()).context("gRPC TLS settings")?;
    }
    let grpc = grpc
        .add_service(transfer::server(Arc::clone(&node)))
        .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
    servers.spawn(async move { grpc.await.context("serve gRPC") });
    let http_listener = dfs_tls::HttpListener::new(http_listener, server_tls.as_ref())
        .context("start the TLS listener")?;
    let http = axum::serve(http_listener, http::router(Arc::clone(&node)))
        .with_graceful_shutdown(stop.clone().cancelled_owned());
    servers.spawn(async move { http.await.context("serve HTTP") });

    let mut loops = JoinSet::new();
    if let Some((listener, path)) = local {
        loops.spawn(local_reads::serve(
            Arc::clone(&node),
            listener,
            path,
            stop.clone(),
        ));
    }
    let (commands, command_worker) = commands::start(Arc::clone(&node), stop.clone());
    loops.spawn(scrubber::run(
        Arc::clone(&node),
        config.namenodes.clone(),
        scrubber::ScrubSettings {
            rate: config.scrub_rate,
            interval: config.scrub_interval,
        },
        stop.clone(),
    ));
    for (i, namenode) in config.namenodes.iter().enumerate() {
        let Some(pending) = node.reports.for_namenode(i) else {
            continue;
        };
        loops.spawn(heartbeat::namenode_loop(
            Arc::clone(&node),
            namenode.clone(),
            pending,
            commands.clone(),
            stop.clone(),
        ));
        loops.spawn(heartbeat::command_loop(
            Arc::clone(&node),
            namenode.clone(),
            commands.clone(),
            stop.clone(),
        ));
    }

    let mut result = Ok(());
    // Biased: at shutdown the servers end on their own as the token fires, and that clean end
    // must not be taken for a server stopping unexpectedly.
    tokio::select! {
        biased;
        _ = stop.cancelled() => {}
        Some(ended) = servers.join_next() => {
            result = match ended {
                Ok(Ok(())) if stop.is_cancelled() => Ok(()),
                Ok(Ok(())) => Err(anyhow::anyhow!("a server stopped unexpectedly")),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow::Error::new(e).context("a server task failed")),
            };
            stop.cancel();
        }
    }
    tracing::info!("datanode shutting down");
    let drain = async {
        while let Some(ended) = servers.join_next().await {
            if let Ok(Err(e)) = ended {
                tracing::warn!(error = %e, "server ended with an error during shutdown");
            }
        }
        while loops.join_next().await.is_some() {}
        let _ = command_worker.await;
    };
    if tokio::time::timeout(SHUTDOWN_DEADLINE, drain)
        .await
        .is_err()
    {
        tracing::warn!("shutdown deadline passed; abandoning remaining tasks");
    }
    result
}
