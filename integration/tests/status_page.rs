//! The namenode status page in a real headless browser (Debian's `chromium`): opened on a
//! follower it lands on the leader's page, which lists every datanode live; after one datanode
//! is killed with SIGKILL the page (reloaded) shows it dead, and the loss and the
//! re-replication of its blocks among the recent events. A screenshot is kept at
//! `target/status-page.png`.
//!
//! Chromium is driven from the command line (`--dump-dom`, `--screenshot`), no driver needed.
//! `make test-deps` installs it; when it is missing and cannot be installed the test says so
//! and passes without running.

use anyhow::{Context, Result, bail, ensure};
use integration::{Cluster, ClusterConfig, poll_until};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// One browser run may take this long on a loaded machine.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// The browser, installing it first when missing (root only); `None` if there is none.
fn chromium() -> Option<PathBuf> {
    let find = || {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    };
    if let Some(found) = find() {
        return Some(found);
    }
    // SAFETY: getuid(2) has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        eprintln!("chromium is missing: installing it with apt-get");
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium")
            .status();
    }
    find()
}

/// Runs chromium headless on `url` with `args`; answers its stdout.
async fn browse(browser: &Path, profile: &Path, args: &[&str], url: &str) -> Result<String> {
    let child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("start chromium")?;
    let out = tokio::time::timeout(BROWSER_TIMEOUT, child.wait_with_output())
        .await
        .context("chromium did not finish in time")??;
    if !out.status.success() {
        bail!(
            "chromium failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `data-state` of every datanode row of a page, by `data-id`.
fn datanode_states(dom: &str) -> Vec<(String, String)> {
    dom.split("<tr class=\"dn ")
        .skip(1)
        .filter_map(|row| {
            let attr = |name: &str| {
                let start = row.find(&format!("{name}=\""))? + name.len() + 2;
                let len = row[start..].find('"')?;
                Some(row[start..start + len].to_string())
            };
            Some((attr("data-id")?, attr("data-state")?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_a_killed_datanode_dead() -> Result<()> {
    let Some(browser) = chromium() else {
        eprintln!(
            "SKIPPED: chromium is not installed and could not be installed \
             (`apt-get install chromium`); the status page browser test did not run"
        );
        return Ok(());
    };
    let mut cluster = Cluster::start(ClusterConfig {
        namenodes: 3,
        datanodes: 4,
        dead_after: Duration::from_secs(3),
        ..ClusterConfig::default()
    })
    .await?;
    let local = cluster.scratch("data.bin");
    integration::random_file(&local, 2 * 1024 * 1024 + 5, 3)?;
    let local = local.to_str().context("utf-8 path")?;
    cluster.dfs_ok(&["put", local, "/data.bin"])?;
    let profile = tempfile::tempdir()?;
    let leader = cluster.leader().await?;
    let follower = (leader + 1) % cluster.namenodes.len();
    // Opened on a follower, the page is the leader's.
    let url = format!("http://{}/", cluster.namenodes[follower].addr);

    let dom = browse(&browser, profile.path(), &["--dump-dom"], &url).await?;
    ensure!(
        dom.contains("id=\"role\">leader<"),
        "not the leader's page:\n{dom}"
    );
    let states = datanode_states(&dom);
    ensure!(
        states.len() == 4,
        "want 4 datanode rows, page has {states:?}"
    );
    ensure!(
        states.iter().all(|(_, s)| s == "live"),
        "not every datanode is live: {states:?}"
    );
    ensure!(dom.contains("id=\"namenodes\""), "no namenode table");

    // Kill a datanode holding replicas; find its id from the admin report by its address.
    let report = cluster.report().await?;
    let (index, victim_id) = cluster
        .datanodes
        .iter()
        .enumerate()
        .find_map(|(i, dn)| {
            let d = report
                .datanodes
                .iter()
                .find(|d| d.grpc_addr == dn.grpc_addr)?;
            (d.blocks > 0).then(|| (i, d.id.to_string()))
        })
        .context("no datanode holds a replica")?;
    cluster.datanodes[index].daemon.kill9()?;

    let (browser_ref, profile_ref, url_ref) = (&browser, profile.path(), &url);
    let victim_ref = &victim_id;
    let dom = poll_until(Duration::from_secs(120), || async move {
        let dom = browse(browser_ref, profile_ref, &["--dump-dom"], url_ref)
            .await
            .ok()?;
        let states = datanode_states(&dom);
        let dead = states.iter().any(|(id, s)| id == victim_ref && s == "dead");
        let others_live = states
            .iter()
            .filter(|(id, _)| id != victim_ref)
            .all(|(_, s)| s == "live");
        let events = dom.contains("datanode lost") && dom.contains("re-replication finished");
        (dead && others_live && events).then_some(dom)
    })
    .await
    .with_context(|| format!("the page never showed {victim_id} dead"))?;
    ensure!(
        dom.contains("id=\"dead-count\" class=\"bad\">1<"),
        "the summary does not count one dead datanode"
    );

    let target = integration::bin_dir()
        .parent()
        .map(Path::to_path_buf)
        .context("no target directory")?;
    let shot = target.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    browse(
        &browser,
        profile.path(),
        &[&arg, "--window-size=1280,900"],
        &url,
    )
    .await?;
    let png = std::fs::read(&shot).with_context(|| format!("read {}", shot.display()))?;
    ensure!(
        png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG of some size ({} bytes)",
        shot.display(),
        png.len()
    );
    eprintln!("screenshot kept at {}", shot.display());
    Ok(())
}
