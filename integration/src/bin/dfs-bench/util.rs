//! Timing helpers shared by the benchmark sections.

use anyhow::{Context, Result, bail};
use dfs_proto::rest;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const MIB: f64 = 1024.0 * 1024.0;

pub fn timed(what: &str, cmd: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    let status = cmd.status().with_context(|| format!("run {what}"))?;
    if !status.success() {
        bail!("{what} failed: {status}");
    }
    Ok(start.elapsed())
}

/// `cp` of `src` to `dst`, then `sync` of `dst`: how long a user waits for a durable copy.
pub fn cp_sync(src: &Path, dst: &Path) -> Result<Duration> {
    timed(
        "cp",
        Command::new("sh").arg("-c").arg(format!(
            "cp '{}' '{}' && sync '{}'",
            src.display(),
            dst.display(),
            dst.display()
        )),
    )
}

/// The local disk's write speed: [`cp_sync`] of `src` to `dst`, best of `runs` (`dst` is
/// removed after each). The best, because on a virtual machine the first writes into memory
/// the guest has not touched lately cost several times more than later ones, and a slow first
/// run would flatter whatever is compared with it.
pub fn local_write(src: &Path, dst: &Path, runs: usize) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs.max(1) {
        let took = cp_sync(src, dst)?;
        std::fs::remove_file(dst)?;
        best = best.min(took);
    }
    Ok(best)
}

pub fn rate(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / MIB / d.as_secs_f64()
}

/// Runs `ops` calls spread over `clients` concurrent tasks; answers ops/s.
pub async fn concurrent<F, Fut>(clients: usize, ops: usize, f: F) -> Result<f64>
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

/// Calls one namenode endpoint directly (no client-side retries), failing on an error answer.
pub async fn post<E: rest::Endpoint>(
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
        bail!(
            "{} answered {}: {}",
            E::PATH,
            resp.status(),
            resp.text().await?
        );
    }
    Ok(resp.json().await?)
}
