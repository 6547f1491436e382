//! `make bench`: starts a release cluster on this machine (one namenode, three datanodes,
//! replication 3, 64 MiB blocks) and prints, in one run, file throughput of `dfs put`/`dfs get`
//! beside `cp` on the local disk, and namenode metadata throughput with 1 and 16 clients.

use anyhow::{Context, Result, bail};
use dfs_proto::InodeId;
use dfs_proto::rest::{self, FileKind};
use integration::{Cluster, ClusterConfig, random_file};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;

struct Args {
    file_mib: usize,
    ops: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        file_mib: 1024,
        ops: 4000,
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
            other => bail!("unknown argument {other} (--bin-dir DIR, --file-mib N, --ops N)"),
        }
    }
    Ok(args)
}

fn timed(what: &str, cmd: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    let status = cmd.status().with_context(|| format!("run {what}"))?;
    if !status.success() {
        bail!("{what} failed: {status}");
    }
    Ok(start.elapsed())
}

fn rate(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / MIB / d.as_secs_f64()
}

/// Runs `ops` calls spread over `clients` concurrent tasks; answers ops/s.
async fn concurrent<F, Fut>(clients: usize, ops: usize, f: F) -> Result<f64>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let f = Arc::new(f);
    let per = ops / clients;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                f(c, i).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per * clients) as f64 / start.elapsed().as_secs_f64())
}

async fn post<E: rest::Endpoint>(
    http: &reqwest::Client,
    addr: &str,
    req: &E::Request,
) -> Result<E::Response> {
    let url = format!("http://{addr}{}", E::PATH);
    let resp = match E::METHOD {
        rest::Method::Get => http.get(url).query(req).send().await?,
        rest::Method::Post => http.post(url).json(req).send().await?,
    };
    if !resp.status().is_success() {
        bail!("{} answered {}: {}", E::PATH, resp.status(), resp.text().await?);
    }
    Ok(resp.json().await?)
}

async fn metadata(cluster: &Cluster, ops: usize) -> Result<()> {
    let addr: Arc<str> = cluster.namenodes[cluster.leader().await?]
        .addr
        .clone()
        .into();
    let http = reqwest::Client::new();
    println!("\nnamenode metadata (durable, one namenode), ops/s:");
    println!("  {:<10} {:>12} {:>12}", "op", "1 client", "16 clients");
    let mut dirs = Vec::new();
    for clients in [1usize, 16] {
        // Each client creates files in a directory of its own.
        let mut mine = Vec::new();
        for c in 0..clients {
            let dir: rest::Attr = post::<rest::Mkdir>(
                &http,
                &addr,
                &rest::MkdirRequest {
                    parent: InodeId::ROOT,
                    name: format!("bench-{clients}-{c}"),
                    perm: 0o755,
                    uid: 0,
                    gid: 0,
                },
            )
            .await?;
            mine.push(dir.ino);
        }
        dirs.push(mine);
    }
    let mut results = Vec::new();
    for (k, clients) in [1usize, 16].into_iter().enumerate() {
        let mine = Arc::new(dirs[k].clone());
        let (h, a) = (http.clone(), addr.clone());
        let create = concurrent(clients, ops, move |c, i| {
            let (h, a, parent) = (h.clone(), a.clone(), mine[c]);
            async move {
                post::<rest::Create>(
                    &h,
                    &a,
                    &rest::CreateRequest {
                        parent,
                        name: format!("f{i}"),
                        kind: FileKind::File,
                        perm: 0o644,
                        uid: 0,
                        gid: 0,
                        lease: None,
                    },
                )
                .await?;
                Ok(())
            }
        })
        .await?;
        let mine = Arc::new(dirs[k].clone());
        let (h, a) = (http.clone(), addr.clone());
        let getattr = concurrent(clients, ops, move |c, i| {
            let (h, a, parent) = (h.clone(), a.clone(), mine[c]);
            async move {
                post::<rest::Lookup>(
                    &h,
                    &a,
                    &rest::LookupRequest {
                        parent,
                        name: format!("f{}", i % 100),
                    },
                )
                .await?;
                Ok(())
            }
        })
        .await?;
        let mine = Arc::new(dirs[k].clone());
        let (h, a) = (http.clone(), addr.clone());
        let readdir = concurrent(clients, ops / 4, move |c, _| {
            let (h, a, ino) = (h.clone(), a.clone(), mine[c]);
            async move {
                post::<rest::ReadDir>(
                    &h,
                    &a,
                    &rest::ReadDirRequest {
                        ino,
                        after: None,
                        limit: Some(100),
                    },
                )
                .await?;
                Ok(())
            }
        })
        .await?;
        results.push((create, getattr, readdir));
    }
    let row = |name: &str, f: fn(&(f64, f64, f64)) -> f64, target: &str| {
        println!(
            "  {:<10} {:>12.0} {:>12.0}   {target}",
            name,
            f(&results[0]),
            f(&results[1])
        );
    };
    row("create", |r| r.0, "(target >= 15000 with 16 clients)");
    row("lookup", |r| r.1, "");
    row("readdir", |r| r.2, "(100 entries a call)");
    Ok(())
}

async fn files(cluster: &Cluster, file_mib: usize) -> Result<()> {
    let bytes = file_mib * 1024 * 1024;
    let src = cluster.scratch("bench-src.bin");
    random_file(&src, bytes, 42)?;
    let local_copy = cluster.scratch("bench-cp.bin");
    let cp = timed(
        "cp",
        Command::new("sh").arg("-c").arg(format!(
            "cp '{}' '{}' && sync '{}'",
            src.display(),
            local_copy.display(),
            local_copy.display()
        )),
    )?;
    std::fs::remove_file(&local_copy)?;
    let read_local = timed(
        "cat",
        Command::new("sh")
            .arg("-c")
            .arg(format!("cat '{}' > /dev/null", src.display())),
    )?;

    let dfs = integration::bin("dfs")?;
    let nn = cluster.namenodes_arg();
    let put = timed(
        "dfs put",
        Command::new(&dfs)
            .args(["--namenodes", &nn, "put"])
            .arg(&src)
            .arg("/bench.bin"),
    )?;
    let get = timed(
        "dfs get",
        Command::new("sh").arg("-c").arg(format!(
            "'{}' --namenodes {nn} get /bench.bin - > /dev/null",
            dfs.display()
        )),
    )?;
    let (cp_r, put_r, get_r, cat_r) = (
        rate(bytes, cp),
        rate(bytes, put),
        rate(bytes, get),
        rate(bytes, read_local),
    );
    println!("\nfile throughput, {file_mib} MiB, MB/s (MiB/s):");
    println!("  local cp + fsync       {cp_r:>8.0}");
    println!(
        "  dfs put (3 replicas)   {put_r:>8.0}   {:.2} of local cp   (target >= 185)",
        put_r / cp_r
    );
    println!("  local cat (page cache) {cat_r:>8.0}");
    println!(
        "  dfs get                {get_r:>8.0}   {:.2} of local cat  (target >= 850)",
        get_r / cat_r
    );
    Ok(())
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
        files(&cluster, args.file_mib).await?;
        metadata(&cluster, args.ops).await?;
        Ok(())
    })
}
