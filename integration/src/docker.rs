//! The compose cluster of `docker-compose.yml` under test: builds the images with
//! `docker/build-images`, runs `docker compose` (v2) or `docker-compose` (1.29) with a project
//! name and network of its own, and mounts the cluster on the host with the workspace's
//! `dfs-fuse`. Every docker command has a deadline; dropping the [`Compose`] runs `down -v`, so
//! nothing is left behind even when a test fails.

use crate::mount::is_mounted;
use crate::{bin, free_port};
use anyhow::{Context, Result, anyhow, bail};
use dfs_proto::rest::{self, ClusterReport, DatanodeState, Endpoint, NamenodeRole};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The namenode services of the compose file, in node-id order, and their host octet.
pub const NAMENODES: [(&str, u8); 3] = [("namenode1", 11), ("namenode2", 12), ("namenode3", 13)];
/// The datanode services of the compose file and their host octet.
pub const DATANODES: [(&str, u8); 3] = [("datanode1", 21), ("datanode2", 22), ("datanode3", 23)];

/// Set to 1 (as CI does) to fail instead of skipping where Docker is missing.
pub const REQUIRE_VAR: &str = "DFS_REQUIRE_DOCKER";

/// Staging the binaries and `docker build` of three small contexts; generous for a loaded disk.
const BUILD_DEADLINE: Duration = Duration::from_secs(10 * 60);
/// Any other docker command (up, down, kill, inspect).
const COMMAND_DEADLINE: Duration = Duration::from_secs(180);

/// The repository root (the compose file's directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The compose cluster's secret, which `docker/build-images` generates if missing and compose
/// mounts into every container.
pub fn secret_file() -> PathBuf {
    repo_root().join("docker/secrets/cluster-secret")
}

/// Why Docker cannot be used here, or `None` when the daemon answers and a compose is installed.
pub fn unavailable() -> Option<String> {
    let answers = |program: &str, args: &[&str]| {
        run(Command::new(program).args(args), Duration::from_secs(30))
            .is_ok_and(|o| o.status.success())
    };
    if !answers("docker", &["info"]) {
        return Some(
            "`docker info` fails: Docker is not installed or dockerd is not running".into(),
        );
    }
    if compose_program().is_none() {
        return Some("neither `docker compose` nor `docker-compose` is installed".into());
    }
    None
}

/// `docker compose` when the v2 plugin is there, else Debian's `docker-compose`.
fn compose_program() -> Option<Vec<String>> {
    let ok =
        |cmd: &mut Command| run(cmd, Duration::from_secs(30)).is_ok_and(|o| o.status.success());
    if ok(Command::new("docker").args(["compose", "version"])) {
        Some(vec!["docker".into(), "compose".into()])
    } else if ok(Command::new("docker-compose").arg("version")) {
        Some(vec!["docker-compose".into()])
    } else {
        None
    }
}

/// Runs `cmd` with its output captured, killing it if it outlives `deadline`.
pub fn run(cmd: &mut Command, deadline: Duration) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {cmd:?}"))?;
    // Drain the pipes on threads so a chatty command cannot block on a full pipe.
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{cmd:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: join(out),
        stderr: join(err),
    })
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Like [`run`], failing with the command's output unless it exits 0; returns stdout.
pub fn run_ok(cmd: &mut Command, deadline: Duration) -> Result<String> {
    let out = run(cmd, deadline)?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds the three images with `docker/build-images` from the binaries the tests run (so no
/// second build of the workspace is needed).
pub fn build_images() -> Result<String> {
    run_ok(
        Command::new(repo_root().join("docker/build-images"))
            .env("DFS_IMAGE_BIN_DIR", crate::bin_dir())
            .current_dir(repo_root()),
        BUILD_DEADLINE,
    )
    .context("docker/build-images")
}

/// One compose project: the repository's compose file under a unique project name, on a /24
/// and host ports of its own.
pub struct Compose {
    program: Vec<String>,
    pub project: String,
    /// First three octets of the project's network, e.g. `10.250.77`.
    pub net_prefix: String,
    /// Host ports (on 127.0.0.1) published for the three namenodes.
    pub nn_ports: [u16; 3],
    /// Carries the cluster credential (from [`secret_file`]).
    http: reqwest::Client,
}

impl Compose {
    /// A project named `dfs-test-<pid>` on a /24 no route of this host uses yet. Nothing runs
    /// until [`Compose::up`]. The images must be built (and with them the secret) first.
    pub fn new() -> Result<Compose> {
        let program = compose_program().context("no docker compose")?;
        let pid = std::process::id();
        let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        let net_prefix = (0..64u32)
            .map(|i| format!("10.250.{}", 64 + (pid + i) % 128))
            .find(|p| !routes_cover(&routes, p))
            .context("no free 10.250.x.0/24 for the test network")?;
        Ok(Compose {
            program,
            project: format!("dfs-test-{pid}"),
            net_prefix,
            nn_ports: [free_port()?, free_port()?, free_port()?],
            http: reqwest::Client::builder()
                .default_headers(credential()?)
                .connect_timeout(Duration::from_secs(3))
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    /// `docker compose -p PROJECT -f docker-compose.yml ARGS`, with this project's variables.
    pub fn compose(&self, args: &[&str], deadline: Duration) -> Result<String> {
        let root = repo_root();
        let mut cmd = Command::new(&self.program[0]);
        cmd.args(&self.program[1..])
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(root.join("docker-compose.yml"))
            .args(args)
            .current_dir(&root)
            .env("DFS_NET_PREFIX", &self.net_prefix)
            .env("DFS_NN1_PORT", self.nn_ports[0].to_string())
            .env("DFS_NN2_PORT", self.nn_ports[1].to_string())
            .env("DFS_NN3_PORT", self.nn_ports[2].to_string())
            .env("DFS_LOG", "info");
        run_ok(&mut cmd, deadline)
    }

    /// `up -d`: creates what is missing and starts what is stopped.
    pub fn up(&self) -> Result<()> {
        self.compose(&["up", "-d"], COMMAND_DEADLINE).map(drop)
    }

    /// `down` (keeping the volumes) or `down -v` (removing them).
    pub fn down(&self, volumes: bool) -> Result<()> {
        let mut args = vec!["down", "--remove-orphans", "--timeout", "30"];
        if volumes {
            args.push("-v");
        }
        self.compose(&args, COMMAND_DEADLINE).map(drop)
    }

    /// The container id of a service (empty when it has none).
    pub fn container(&self, service: &str) -> Result<String> {
        Ok(self
            .compose(&["ps", "-q", service], COMMAND_DEADLINE)?
            .trim()
            .to_string())
    }

    /// `docker kill` (SIGKILL) of a service's container.
    pub fn kill(&self, service: &str) -> Result<()> {
        let id = self.container(service)?;
        if id.is_empty() {
            bail!("{service} has no container");
        }
        run_ok(Command::new("docker").args(["kill", &id]), COMMAND_DEADLINE).map(drop)
    }

    /// The health Docker reports for a service: `healthy`, `starting`, `unhealthy`, or the
    /// container's state when it is not running.
    pub fn health(&self, service: &str) -> Result<String> {
        let id = self.container(service)?;
        if id.is_empty() {
            return Ok("absent".into());
        }
        let fmt = "{{if .State.Running}}{{if .State.Health}}{{.State.Health.Status}}\
                   {{else}}running{{end}}{{else}}{{.State.Status}}{{end}}";
        Ok(run_ok(
            Command::new("docker").args(["inspect", "-f", fmt, &id]),
            COMMAND_DEADLINE,
        )?
        .trim()
        .to_string())
    }

    /// Waits until Docker calls every service in `services` healthy.
    pub fn wait_healthy(&self, services: &[&str], timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        loop {
            let states = services
                .iter()
                .map(|s| Ok(format!("{s}={}", self.health(s)?)))
                .collect::<Result<Vec<_>>>()?;
            if states.iter().all(|s| s.ends_with("=healthy")) {
                return Ok(());
            }
            if Instant::now() > end {
                bail!(
                    "not healthy within {timeout:?}: {}\n{}",
                    states.join(" "),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The container address of a service's host octet, e.g. `10.250.77.11`.
    pub fn ip(&self, octet: u8) -> String {
        format!("{}.{octet}", self.net_prefix)
    }

    /// The namenodes as a host-side client reaches them: the ports published on 127.0.0.1.
    pub fn namenodes_arg(&self) -> String {
        self.nn_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// GETs one endpoint of the namenode at `addr` (host:port) and parses the answer.
    pub async fn get<E: Endpoint>(&self, addr: &str) -> Result<E::Response>
    where
        E::Request: Default,
    {
        let url = format!("http://{addr}{}", E::PATH);
        let resp = self.http.get(&url).send().await?;
        let status = resp.status();
        if !status.is_success() {
            bail!("{url} answered {status}");
        }
        Ok(resp.json().await?)
    }

    /// The service name of the namenode that answers as leader.
    pub async fn leader(&self) -> Result<&'static str> {
        for (service, octet) in NAMENODES {
            let addr = format!("{}:9870", self.ip(octet));
            if let Ok(info) = self.get::<rest::ClusterInfo>(&addr).await
                && info.role == NamenodeRole::Leader
            {
                return Ok(service);
            }
        }
        Err(anyhow!("no namenode answers as leader"))
    }

    /// The leader's report, once some namenode answers as leader.
    pub async fn report(&self) -> Result<ClusterReport> {
        let leader = self.leader().await?;
        let octet = NAMENODES
            .iter()
            .find(|(s, _)| *s == leader)
            .map(|(_, o)| *o)
            .context("leader is a known service")?;
        self.get::<rest::AdminReport>(&format!("{}:9870", self.ip(octet)))
            .await
    }

    /// Waits until a leader answers and at least `live` datanodes are live in its report.
    pub async fn wait_live_datanodes(&self, live: usize, timeout: Duration) -> Result<()> {
        crate::poll_until(timeout, || async {
            let report = self.report().await.ok()?;
            let n = report
                .datanodes
                .iter()
                .filter(|d| d.state == DatanodeState::Live)
                .count();
            (n >= live).then_some(())
        })
        .await
        .with_context(|| format!("{live} live datanodes\n{}", self.logs()))
    }

    /// The last log lines of every service, for a failing test's message.
    pub fn logs(&self) -> String {
        self.compose(&["logs", "--no-color", "--tail", "25"], COMMAND_DEADLINE)
            .unwrap_or_else(|e| format!("(no logs: {e:#})"))
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if let Err(e) = self.down(true) {
            eprintln!("cleaning up compose project {}: {e:#}", self.project);
        }
    }
}

/// Whether a route of this host (from `/proc/net/route`) lies in `prefix`.0/24.
fn routes_cover(routes: &str, prefix: &str) -> bool {
    routes.lines().skip(1).any(|line| {
        let dest = line.split_whitespace().nth(1).unwrap_or_default();
        let Ok(raw) = u32::from_str_radix(dest, 16) else {
            return false;
        };
        // The kernel prints the address in host (little-endian) byte order.
        let [a, b, c, _] = raw.to_le_bytes();
        format!("{a}.{b}.{c}") == prefix
    })
}

/// The `Authorization` header of the compose cluster's secret.
fn credential() -> Result<reqwest::header::HeaderMap> {
    let secret = dfs_proto::ClusterSecret::load(&secret_file())
        .context("the compose cluster's secret (docker/build-images makes it)")?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::try_from(secret.authorization())?,
    );
    Ok(headers)
}

/// `dfs-fuse` of the workspace mounting a compose cluster on a host directory.
pub struct HostMount {
    pub dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl HostMount {
    /// Mounts `namenodes` (host:port,...) at `dir`, with the compose cluster's secret, and waits
    /// until the mount is live.
    pub fn start(namenodes: &str, dir: &Path, log: &Path) -> Result<HostMount> {
        std::fs::create_dir_all(dir)?;
        let out = std::fs::File::create(log).context("create the mount's log")?;
        let child = Command::new(bin("dfs-fuse")?)
            .arg("--namenodes")
            .arg(namenodes)
            .arg("--secret-file")
            .arg(secret_file())
            .arg(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("start dfs-fuse")?;
        let mut mount = HostMount {
            dir: dir.to_path_buf(),
            log: log.to_path_buf(),
            child: Some(child),
        };
        let end = Instant::now() + Duration::from_secs(60);
        while !is_mounted(dir) {
            if let Some(c) = mount.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!("dfs-fuse exited ({status}):\n{}", mount.log_tail());
            }
            if Instant::now() > end {
                bail!("not mounted within 60 s:\n{}", mount.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(mount)
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel.trim_start_matches('/'))
    }

    /// The last lines of the mount's log.
    pub fn log_tail(&self) -> String {
        crate::mount::log_tail(&self.log)
    }
}

impl Drop for HostMount {
    /// Unmounts (lazily, so a hung cluster cannot block it) and reaps `dfs-fuse`.
    fn drop(&mut self) {
        crate::mount::unmount_and_reap(&self.dir, self.child.take());
    }
}
