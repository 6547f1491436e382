//! `make bench`: starts a release cluster on this machine (one namenode, three datanodes,
//! replication 3, 64 MiB blocks) and prints, in one run, file throughput of `dfs put`/`dfs get`
//! beside `cp` on the local disk, namenode metadata throughput with 1 and 16 clients, and what
//! users get through the FUSE mount beside the same work on the local disk.

mod failover;
mod files;
mod metadata;
mod mount;
mod rereplication;
mod util;

use anyhow::{Context, Result, bail};
use integration::{Cluster, ClusterConfig};
use std::time::Duration;

struct Args {
    file_mib: usize,
    ops: usize,
    /// Sections to run (all when empty).
    only: Vec<String>,
}

const SECTIONS: [&str; 5] = ["files", "metadata", "mount", "failover", "rereplication"];

impl Args {
    fn runs(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        file_mib: 1024,
        ops: 4000,
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bin-dir" => {
                // SAFETY: set before any thread is started.
                unsafe { std::env::set_var("DFS_BIN_DIR", it.next().context("--bin-dir DIR")?) };
            }
            "--file-mib" => args.file_mib = it.next().context("--file-mib N")?.parse()?,
            "--ops" => args.ops = it.next().context("--ops N")?.parse()?,
            "--only" => {
                for s in it.next().context("--only SECTION,...")?.split(',') {
                    if !SECTIONS.contains(&s) {
                        bail!("unknown section {s} (one of {})", SECTIONS.join(", "));
                    }
                    args.only.push(s.to_string());
                }
            }
            other => bail!(
                "unknown argument {other} (--bin-dir DIR, --file-mib N, --ops N, --only SECTION,...)"
            ),
        }
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let cluster = Cluster::start(ClusterConfig {
            block_size: 64 * 1024 * 1024,
            heartbeat: Duration::from_secs(3),
            dead_after: Duration::from_secs(30),
            lease: Duration::from_secs(60),
            ..ClusterConfig::default()
        })
        .await?;
        println!(
            "dfs bench: release binaries from {}, 1 namenode, 3 datanodes, replication 3, \
             64 MiB blocks, data in {}",
            integration::bin_dir().display(),
            cluster.root.path().display()
        );
        if args.runs("files") {
            files::files(&cluster, args.file_mib).await?;
        }
        if args.runs("metadata") {
            metadata::metadata(&cluster, args.ops).await?;
        }
        if args.runs("mount") {
            mount::mount(&cluster, args.file_mib)?;
        }
        drop(cluster);
        if args.runs("failover") {
            failover::failover().await?;
        }
        if args.runs("rereplication") {
            rereplication::rereplication(args.file_mib).await?;
        }
        Ok(())
    })
}
