//! `dfs-datanode`: parses flags, loads the config, starts tracing and runs the datanode until
//! SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use dfs_datanode::{Cli, Config};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = Config::load(Cli::parse())?;
    let grpc = TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| format!("bind gRPC to {}", config.grpc_listen))?;
    let http = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("bind HTTP to {}", config.http_listen))?;

    let shutdown = CancellationToken::new();
    let mut sigterm = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            _ = sigterm.recv() => tracing::info!("SIGTERM received"),
        }
        on_signal.cancel();
    });
    dfs_datanode::run(config, grpc, http, shutdown).await
}
