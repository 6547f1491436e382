//! `dfs-datanode`: loads the configuration, starts logging and runs the datanode until SIGINT
//! or SIGTERM (a clean shutdown, exit 0). `--print-config` prints the effective configuration
//! instead.

use anyhow::Context;
use clap::Parser;
use dfs_datanode::{Cli, Config};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    // Before the runtime starts any thread.
    dfs_proto::allocator::reuse_data_buffers(dfs_proto::allocator::Keep::PerThread);
    tokio::runtime::Runtime::new()
        .context("start the runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let print_config = cli.print_config;
    let config = Config::load(cli)?;
    if print_config {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    dfs_proto::logging::init(config.log_format, None)?;
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
