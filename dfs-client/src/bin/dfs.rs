//! The `dfs` command-line tool; everything but startup lives in `dfs_client::cli`.

use clap::Parser;
use dfs_client::cli::{Cli, run};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    dfs_proto::allocator::reuse_data_buffers(dfs_proto::allocator::Keep::Little);
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("DFS_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(run(cli));
    // Leave in-flight background work (lease renewal) behind rather than waiting on it.
    runtime.shutdown_background();
    std::process::exit(code);
}
