//! `dfs-fuse`: mounts a dfs cluster. Foreground unless `--daemon`; SIGINT/SIGTERM unmount.

mod daemon;

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use dfs_client::ClientConfig;
use dfs_fuse::{MountConfig, MountOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Mount a dfs cluster as a local file system.
#[derive(Parser, Debug)]
#[command(name = "dfs-fuse", version)]
struct Args {
    /// Namenode REST addresses, host:port[,host:port...] (else DFS_NAMENODES or the client
    /// config file).
    #[arg(long)]
    namenodes: Option<String>,
    /// Mount options: allow_other, allow_root, ro, default_permissions, auto_unmount,
    /// fsname=NAME, noexec, nosuid, nodev, noatime, ...
    #[arg(short = 'o', value_name = "OPTS")]
    options: Vec<String>,
    /// Run in the background once the mount is live.
    #[arg(long)]
    daemon: bool,
    /// Write the log to this file instead of stderr.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// How long an operation keeps looking for a namenode leader (across an election) before
    /// it fails with EIO, in seconds [default: 30, or the client config file's].
    #[arg(long, value_name = "SECONDS")]
    failover_timeout: Option<f64>,
    mountpoint: PathBuf,
}

fn main() -> ExitCode {
    dfs_fuse::return_freed_memory_promptly();
    let args = Args::parse();
    if args.daemon {
        return daemon::detach();
    }
    let mut readiness = daemon::Readiness::from_env();
    let result = init_tracing(args.log.as_deref()).and_then(|()| {
        let mut client = ClientConfig::discover(args.namenodes.as_deref())?;
        if let Some(secs) = args.failover_timeout {
            client.failover_timeout = std::time::Duration::try_from_secs_f64(secs)
                .map_err(|e| anyhow!("--failover-timeout {secs}: {e}"))?;
        }
        let config = MountConfig {
            client,
            options: MountOptions::parse(&args.options).map_err(|e| anyhow!(e))?,
            mountpoint: args.mountpoint.clone(),
        };
        dfs_fuse::run(config, |r| readiness.report(r))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            readiness.report(Err(format!("{e:#}")));
            eprintln!("dfs-fuse: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(log: Option<&Path>) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("open log {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}
