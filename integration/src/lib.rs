//! A test harness that runs the real dfs daemons as a local cluster: each namenode and datanode
//! is a separate process on loopback with its own temp directory and ports, started from the
//! binaries cargo built (`make test` builds them before the tests run). Readiness is polled,
//! never slept for; dropping the [`Cluster`] kills every process it started.

use anyhow::{Context, Result, anyhow, bail};
use dfs_proto::rest::{self, ClusterReport, DatanodeState, Endpoint, Method, NamenodeRole};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod docker;
pub mod mount;
pub mod wait;

pub use wait::{poll_every, poll_until};

/// Where the workspace's binaries are: `$DFS_BIN_DIR`, or the cargo profile directory that holds
/// the running test executable (`target/<profile>/deps/<test>` → `target/<profile>`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DFS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The path of one of the workspace's binaries, or a clear error if it was not built.
pub fn bin(name: &str) -> Result<PathBuf> {
    let path = bin_dir().join(name);
    if !path.exists() {
        bail!(
            "{} not found: build the binaries first (`cargo build --workspace --bins`, which \
             `make test` does), or set DFS_BIN_DIR",
            path.display()
        );
    }
    Ok(path)
}

/// Where [`free_port`] looks: below the kernel's ephemeral range (32768-60999 by default), so
/// that no outgoing connection (of any test's clients) can be given the port between the check
/// here and the daemon's bind, as happened with ports the kernel picked.
const TEST_PORTS: std::ops::Range<u32> = 20_000..32_000;

/// A free loopback port for a daemon to listen on: each call of this process tries the next
/// port of [`TEST_PORTS`] (starting at an offset taken from the pid, so successive test
/// processes use different ports) and answers the first one that can be bound.
pub fn free_port() -> Result<u16> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let offset = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = TEST_PORTS.start + (offset + n) % span;
        let port = u16::try_from(port).context("test port range")?;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in {TEST_PORTS:?}")
}

/// One daemon process: how to start it, and the running child if any.
pub struct Daemon {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    pub fn new(name: String, program: PathBuf, args: Vec<String>, log: PathBuf) -> Daemon {
        Daemon {
            name,
            program,
            args,
            log,
            child: None,
        }
    }

    /// Starts the process (stdout and stderr appended to its log file).
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.name);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open log {}", self.log.display()))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("DFS_TEST_LOG").unwrap_or("info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .with_context(|| format!("kill {}", self.name))?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM and wait for a clean exit (up to 30 s, then SIGKILL).
    pub fn stop(&mut self) -> Result<()> {
        self.terminate().map(drop)
    }

    /// SIGTERM and wait for the exit (up to 30 s, then SIGKILL and an error); the exit status,
    /// or `None` if the daemon was not running.
    pub fn terminate(&mut self) -> Result<Option<std::process::ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        // SAFETY: kill(2) on the pid of a child we own; no memory is involved.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                bail!("{} did not stop within 30 s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `timeout` for the daemon to exit on its own (a start that fails); its exit
    /// status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} is not running", self.name);
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("{} still running after {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The end of the daemon's log (for failure messages), without the periodic lines that
    /// would crowd out what happened (a fast test scrubber logs every second); says so when the
    /// daemon logged nothing at all.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // Backtrace frames are left out too, so that the error a daemon exited with shows.
        let all: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("scrub pass done") && !is_backtrace_frame(l))
            .collect();
        if all.is_empty() {
            let pid = self.child.as_ref().map(Child::id);
            return format!("(nothing logged in {}; pid {pid:?})", self.log.display());
        }
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A line of a printed backtrace: `  12: function` (the frame number right-aligned in four
/// columns, where anyhow's `Caused by:` list indents by four) or `      at file:line`.
fn is_backtrace_frame(line: &str) -> bool {
    let t = line.trim_start();
    if t.len() == line.len() {
        return false;
    }
    let numbered = line.split_once(": ").is_some_and(|(n, _)| {
        n.len() == 4
            && n.trim_start().len() < 4
            && n.trim_start().bytes().all(|b| b.is_ascii_digit())
    });
    t.starts_with("at ") || numbered
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How to build a test cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub namenodes: usize,
    pub datanodes: usize,
    pub block_size: u64,
    pub replication: u32,
    pub heartbeat: Duration,
    pub dead_after: Duration,
    pub lease: Duration,
    /// Serve REST and gRPC over TLS with these files; `None` (the default): plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// A CA and one certificate (for 127.0.0.1) that every daemon of a test cluster serves with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            namenodes: 1,
            datanodes: 3,
            block_size: 1024 * 1024,
            replication: 3,
            heartbeat: Duration::from_millis(500),
            dead_after: Duration::from_secs(6),
            lease: Duration::from_secs(20),
            tls: None,
        }
    }
}

/// A namenode process with its addresses.
pub struct Namenode {
    pub id: u64,
    pub addr: String,
    pub dir: PathBuf,
    pub daemon: Daemon,
}

/// A datanode process with its addresses and data directory.
pub struct Datanode {
    pub grpc_addr: String,
    pub http_addr: String,
    pub dir: PathBuf,
    pub daemon: Daemon,
}

/// A running local cluster. Dropping it kills every process and removes its directory.
pub struct Cluster {
    pub config: ClusterConfig,
    pub namenodes: Vec<Namenode>,
    pub datanodes: Vec<Datanode>,
    /// Holds everything: daemon data, logs, scratch files for tests.
    pub root: tempfile::TempDir,
    /// The cluster secret file every daemon, client and mount of this cluster is given.
    pub secret_file: PathBuf,
    /// Carries the cluster credential.
    http: reqwest::Client,
}

impl Cluster {
    /// Starts the cluster and waits until a leader answers and every datanode is live.
    pub async fn start(config: ClusterConfig) -> Result<Cluster> {
        let root = tempfile::Builder::new().prefix("dfs-it-").tempdir()?;
        // Every test cluster runs with authentication on, as a deployment should.
        let secret_file = root.path().join("secret");
        std::fs::write(&secret_file, dfs_proto::ClusterSecret::generate_file_text())
            .context("write the cluster secret")?;
        let secret = dfs_proto::ClusterSecret::load(&secret_file)?;
        let nn_ports: Vec<u16> = (0..config.namenodes)
            .map(|_| free_port())
            .collect::<Result<_>>()?;
        let peers = nn_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let nn_addrs: Vec<String> = nn_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let tls_args: Vec<String> = match &config.tls {
            Some(tls) => vec![
                "--tls-cert".into(),
                tls.cert.display().to_string(),
                "--tls-key".into(),
                tls.key.display().to_string(),
                "--tls-ca".into(),
                tls.ca.display().to_string(),
            ],
            None => Vec::new(),
        };

        let mut namenodes = Vec::new();
        for (i, addr) in nn_addrs.iter().enumerate() {
            let id = i as u64 + 1;
            let dir = root.path().join(format!("nn{id}"));
            std::fs::create_dir_all(&dir)?;
            let mut args: Vec<String> = vec![
                "--node-id".into(),
                id.to_string(),
                "--listen".into(),
                addr.clone(),
                "--peers".into(),
                peers.clone(),
                "--data-dir".into(),
                dir.display().to_string(),
                "--block-size".into(),
                config.block_size.to_string(),
                "--replication".into(),
                config.replication.to_string(),
                "--heartbeat-interval".into(),
                format!("{}ms", config.heartbeat.as_millis()),
                "--datanode-dead-after".into(),
                format!("{}ms", config.dead_after.as_millis()),
                "--lease-duration".into(),
                format!("{}ms", config.lease.as_millis()),
                "--secret-file".into(),
                secret_file.display().to_string(),
            ];
            args.extend(tls_args.iter().cloned());
            let daemon = Daemon::new(
                format!("namenode {id}"),
                bin("dfs-namenode")?,
                args,
                root.path().join(format!("nn{id}.log")),
            );
            namenodes.push(Namenode {
                id,
                addr: addr.clone(),
                dir,
                daemon,
            });
        }

        let mut datanodes = Vec::new();
        for i in 0..config.datanodes {
            let dir = root.path().join(format!("dn{}", i + 1));
            std::fs::create_dir_all(&dir)?;
            let grpc_addr = format!("127.0.0.1:{}", free_port()?);
            let http_addr = format!("127.0.0.1:{}", free_port()?);
            let mut args: Vec<String> = vec![
                "--data-dir".into(),
                dir.display().to_string(),
                "--namenodes".into(),
                nn_addrs.join(","),
                "--grpc-listen".into(),
                grpc_addr.clone(),
                "--http-listen".into(),
                http_addr.clone(),
                "--heartbeat-interval".into(),
                format!("{}ms", config.heartbeat.as_millis()),
                "--reserved".into(),
                "0".into(),
                "--secret-file".into(),
                secret_file.display().to_string(),
            ];
            args.extend(tls_args.iter().cloned());
            let daemon = Daemon::new(
                format!("datanode {}", i + 1),
                bin("dfs-datanode")?,
                args,
                root.path().join(format!("dn{}.log", i + 1)),
            );
            datanodes.push(Datanode {
                grpc_addr,
                http_addr,
                dir,
                daemon,
            });
        }

        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::try_from(secret.authorization())?,
        );
        let client_tls = dfs_tls::ClientTls::load_optional(config.tls.as_ref().map(|t| &*t.ca))?;
        let http = dfs_tls::http_client(client_tls.as_ref())
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut cluster = Cluster {
            config,
            namenodes,
            datanodes,
            root,
            secret_file,
            http,
        };
        for nn in &mut cluster.namenodes {
            nn.daemon.start()?;
        }
        for dn in &mut cluster.datanodes {
            dn.daemon.start()?;
        }
        cluster.wait_ready(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    /// REST addresses of every namenode, comma-separated (the CLI's `--namenodes`).
    pub fn namenodes_arg(&self) -> String {
        self.namenodes
            .iter()
            .map(|n| n.addr.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A client library handle for this cluster.
    pub fn client(&self) -> Result<dfs_client::Client> {
        let mut config =
            dfs_client::ClientConfig::new(self.namenodes.iter().map(|n| n.addr.clone()).collect());
        config.secret_file = Some(self.secret_file.clone());
        config.tls_ca = self.tls_ca().map(Path::to_path_buf);
        Ok(dfs_client::Client::new(config)?)
    }

    /// The CA file clients of this cluster need, if it serves TLS.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.config.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// `https` if the cluster serves TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        match self.config.tls {
            Some(_) => "https",
            None => "http",
        }
    }

    /// The cluster secret.
    pub fn secret(&self) -> Result<dfs_proto::ClusterSecret> {
        Ok(dfs_proto::ClusterSecret::load(&self.secret_file)?)
    }

    /// An HTTP client whose requests carry the cluster credential (for tests of the REST
    /// surface that go around the client library).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A block access token for `ops` on a replica, valid for ten minutes (for tests that talk
    /// gRPC to datanodes directly).
    pub fn block_token(
        &self,
        block_id: u64,
        generation: u64,
        ops: &[dfs_proto::token::BlockOp],
    ) -> Result<String> {
        let expires = std::time::SystemTime::now() + Duration::from_secs(600);
        Ok(self.secret()?.block_token_key().sign(
            dfs_proto::BlockId(block_id),
            dfs_proto::Generation(generation),
            ops,
            expires,
        ))
    }

    /// The located blocks of `path`, with their read tokens, as namenode 0 answers them.
    pub async fn blocks_of(&self, path: &str) -> Result<Vec<rest::LocatedBlock>> {
        let (status, body) = self
            .raw_call::<rest::Resolve>(0, &rest::ResolveRequest { path: path.into() })
            .await?;
        if status != 200 {
            bail!("resolve {path}: {status} {body}");
        }
        let attr: rest::Attr = serde_json::from_value(body)?;
        let req = rest::GetBlocksRequest {
            ino: attr.ino,
            offset: 0,
            len: 0,
        };
        let (status, body) = self.raw_call::<rest::GetBlocks>(0, &req).await?;
        if status != 200 {
            bail!("blocks of {path}: {status} {body}");
        }
        let blocks: rest::FileBlocks = serde_json::from_value(body)?;
        Ok(blocks.blocks)
    }

    /// Calls one REST endpoint of one namenode directly, returning the HTTP status and the body
    /// parsed as JSON (for tests of what the wire answers).
    pub async fn raw_call<E: Endpoint>(
        &self,
        namenode: usize,
        req: &E::Request,
    ) -> Result<(u16, serde_json::Value)> {
        let url = format!(
            "{}://{}{}",
            self.scheme(),
            self.namenodes[namenode].addr,
            E::PATH
        );
        let builder = match E::METHOD {
            Method::Get => self.http.get(&url).query(req),
            Method::Post => self.http.post(&url).json(req),
        };
        let resp = builder.send().await?;
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        Ok((status, body))
    }

    /// The leader's admin report, if some namenode answers as leader.
    pub async fn report(&self) -> Result<ClusterReport> {
        let leader = self.leader().await?;
        let (status, body) = self
            .raw_call::<rest::AdminReport>(leader, &rest::Empty {})
            .await?;
        if status != 200 {
            bail!("admin report answered {status}: {body}");
        }
        Ok(serde_json::from_value(body)?)
    }

    /// The index of the namenode that says it is the leader.
    pub async fn leader(&self) -> Result<usize> {
        for (i, nn) in self.namenodes.iter().enumerate() {
            if let Ok((200, body)) = self.raw_call::<rest::ClusterInfo>(i, &rest::Empty {}).await {
                let info: rest::ClusterInfoResponse = serde_json::from_value(body)?;
                if info.role == NamenodeRole::Leader {
                    return Ok(i);
                }
            }
            let _ = nn;
        }
        Err(anyhow!("no namenode answers as leader"))
    }

    /// Waits until a leader answers and every running datanode is live in its report.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let want = self
            .datanodes
            .iter_mut()
            .map(|d| d.daemon.is_running())
            .filter(|running| *running)
            .count();
        let result = poll_until(timeout, || async {
            let report = self.report().await.ok()?;
            let live = report
                .datanodes
                .iter()
                .filter(|d| d.state == DatanodeState::Live)
                .count();
            (live >= want).then_some(())
        })
        .await;
        if result.is_err() {
            let exited: Vec<String> = self
                .datanodes
                .iter_mut()
                .filter_map(|d| (!d.daemon.is_running()).then(|| d.daemon.name.clone()))
                .collect();
            bail!(
                "cluster not ready within {timeout:?} (not running: {exited:?})\n{}",
                self.logs_for_failure()
            );
        }
        Ok(())
    }

    /// The last lines of every daemon's log, for a failing test's message.
    pub fn logs_for_failure(&self) -> String {
        let mut out = String::new();
        for nn in &self.namenodes {
            out += &format!("--- {} ---\n{}\n", nn.daemon.name, nn.daemon.log_tail(30));
        }
        for dn in &self.datanodes {
            out += &format!("--- {} ---\n{}\n", dn.daemon.name, dn.daemon.log_tail(15));
        }
        out
    }

    /// Runs the `dfs` CLI against this cluster.
    pub fn dfs(&self, args: &[&str]) -> Result<std::process::Output> {
        let mut cmd = Command::new(bin("dfs")?);
        if let Some(ca) = self.tls_ca() {
            cmd.env("DFS_TLS_CA", ca);
        }
        let out = cmd
            .arg("--namenodes")
            .arg(self.namenodes_arg())
            .env("DFS_SECRET_FILE", &self.secret_file)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("run dfs")?;
        Ok(out)
    }

    /// Runs the `dfs` CLI and fails with its stderr unless it exits 0.
    pub fn dfs_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.dfs(args)?;
        if !out.status.success() {
            bail!(
                "dfs {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Every replica file (`blk_<id>_<gen>`, not the sidecar) under a datanode's directory.
    pub fn replica_files(&self, datanode: usize) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.datanodes[datanode].dir.join("current"), &mut out);
        out.retain(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("blk_") && !n.ends_with(".meta"))
        });
        out
    }

    /// A scratch path inside the cluster's temp directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Writes `len` pseudo-random bytes (from `seed`) to `path`.
pub fn random_file(path: &Path, len: usize, seed: u64) -> Result<()> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    std::fs::write(path, data)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtrace_frames_are_told_from_log_lines() {
        assert!(is_backtrace_frame("  12: std::rt::lang_start"));
        assert!(is_backtrace_frame("             at ./src/main.rs:20:5"));
        assert!(!is_backtrace_frame(
            "Error: bind gRPC to 127.0.0.1:4000: Address in use"
        ));
        assert!(!is_backtrace_frame(
            "2026-11-30T02:42:08.746541Z  INFO dfs_datanode: datanode starting"
        ));
        assert!(!is_backtrace_frame("Caused by:"));
        assert!(!is_backtrace_frame("    0: bind gRPC to 127.0.0.1:4000"));
        assert!(!is_backtrace_frame(
            "    Address already in use (os error 98)"
        ));
    }

    #[test]
    fn free_ports_are_distinct_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port().expect("port")).collect();
        let unique: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(unique.len(), ports.len());
        assert!(ports.iter().all(|p| TEST_PORTS.contains(&u32::from(*p))));
    }
}
