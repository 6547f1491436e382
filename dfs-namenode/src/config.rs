//! The namenode's configuration: command-line flags (each also readable from a `DFS_NAMENODE_*`
//! environment variable), an optional TOML file with the same keys in snake_case, and the typed
//! [`Config`] the daemon runs with. Precedence, lowest first: defaults, the file, the
//! environment, flags. [`Config::to_toml`] writes the effective configuration back as a file the
//! daemon accepts (`--print-config`).

use anyhow::{Context, bail};
use dfs_proto::LogFormat;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Everything the namenode needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This namenode's Raft node id; must be a key of `peers`.
    pub node_id: u64,
    /// Address the binary binds (the library is handed a bound listener instead).
    pub listen: SocketAddr,
    /// REST address (host:port) other namenodes and clients reach this one at; `None` means the
    /// listener's local address.
    pub advertise: Option<String>,
    /// The full voter set, including this node: node id to REST address. Empty means "only this
    /// node, at its advertised address".
    pub peers: BTreeMap<u64, String>,
    pub data_dir: PathBuf,
    /// Block size for new files, in bytes.
    pub block_size: u64,
    /// Replicas wanted per block.
    pub replication: u32,
    /// Fewest replicas a block write may end with: pipeline recovery fails below it.
    pub min_replicas: u32,
    /// How often datanodes are expected to heartbeat (informational for the namenode).
    pub heartbeat_interval: Duration,
    /// A datanode silent for this long is dead: no new blocks go to it and its replicas do not
    /// count.
    pub datanode_dead_after: Duration,
    pub lease_duration: Duration,
    /// Most write leases (files open for writing) one client may hold at once; an open beyond
    /// it is refused with `EMFILE`, so one client cannot fill the namespace with leases.
    pub max_leases_per_client: u32,
    /// Longest a REST request may take from its first byte to its answer; a slower one is
    /// answered 408 and its connection closed, so a slow or silent peer cannot hold a task.
    pub request_timeout: Duration,
    /// A REST connection on which nothing is read or written for this long is closed (a peer
    /// that connects and says nothing, or stops reading). Longer than `request_timeout`.
    pub idle_timeout: Duration,
    /// Most REST connections open at once; further peers wait in the kernel's backlog.
    pub max_connections: u32,
    /// Build a Raft snapshot (and purge older log entries) every this many applied entries.
    pub snapshot_every: u64,
    /// Raft leader heartbeat.
    pub raft_heartbeat: Duration,
    /// Raft election timeout range: a follower that hears no leader for a random time in this
    /// range stands for election.
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Shape of the log lines (read by the binary, which starts logging).
    pub log_format: LogFormat,
    /// The cluster secret file (see `docs/SECURITY.md`). `None`: dev mode, no authentication.
    pub secret_file: Option<PathBuf>,
    /// How long a block access token handed to a client stays valid.
    pub block_token_lifetime: Duration,
    /// TLS certificate chain (PEM) the REST API is served with; `None`: plain HTTP. Set with
    /// `tls_key` and `tls_ca` (see `docs/SECURITY.md`).
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// CA certificate (PEM) other namenodes' certificates must chain to (Raft traffic).
    pub tls_ca: Option<PathBuf>,
}

impl Config {
    /// Defaults for a single-node namenode storing its state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            node_id: 1,
            listen: SocketAddr::from(([127, 0, 0, 1], 9870)),
            advertise: None,
            peers: BTreeMap::new(),
            data_dir: data_dir.into(),
            block_size: 64 * 1024 * 1024,
            replication: 3,
            min_replicas: 1,
            heartbeat_interval: Duration::from_secs(3),
            datanode_dead_after: Duration::from_secs(30),
            lease_duration: Duration::from_secs(60),
            max_leases_per_client: 10_000,
            request_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(300),
            max_connections: 4096,
            snapshot_every: 10_000,
            // Failover takes about twice the upper election timeout (a follower first waits out
            // the old leader's lease): 1.2 s gives a new leader in ~2.2 s (measured, 3 nodes).
            raft_heartbeat: Duration::from_millis(150),
            election_timeout_min: Duration::from_millis(600),
            election_timeout_max: Duration::from_millis(1200),
            log_format: LogFormat::Text,
            secret_file: None,
            block_token_lifetime: Duration::from_secs(600),
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
        }
    }

    /// Checks the values that cannot be expressed by their types.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.block_size == 0 || self.block_size > dfs_proto::MAX_BLOCK_SIZE {
            bail!(
                "block size must be between 1 byte and {} bytes (what a datanode stores)",
                dfs_proto::MAX_BLOCK_SIZE
            );
        }
        if self.replication == 0 {
            bail!("replication must be at least 1");
        }
        if self.min_replicas == 0 || self.min_replicas > self.replication {
            bail!("--min-replicas must be between 1 and the replication factor");
        }
        if !self.peers.is_empty() && !self.peers.contains_key(&self.node_id) {
            bail!(
                "--peers must list every voter including this node (id {})",
                self.node_id
            );
        }
        if self.election_timeout_min >= self.election_timeout_max {
            bail!("election timeout min must be below max");
        }
        if self.raft_heartbeat >= self.election_timeout_min {
            bail!("raft heartbeat must be shorter than the election timeout");
        }
        if self.max_leases_per_client == 0 {
            bail!("--max-leases-per-client must be positive");
        }
        if self.request_timeout < Duration::from_secs(10) {
            bail!("--request-timeout must be at least 10s (Raft proposals wait up to 8s)");
        }
        if self.idle_timeout <= self.request_timeout {
            bail!("--idle-timeout must be longer than --request-timeout");
        }
        if self.max_connections == 0 {
            bail!("--max-connections must be positive");
        }
        if self.snapshot_every == 0 {
            bail!("--snapshot-every must be positive");
        }
        if self.block_token_lifetime < Duration::from_secs(1) {
            bail!("--block-token-lifetime must be at least 1s");
        }
        dfs_tls::check_daemon_settings(
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_ca.as_deref(),
        )
        .map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// The configuration as a TOML file with every key, which `--config` accepts back.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        let peers = (!self.peers.is_empty()).then(|| {
            self.peers
                .iter()
                .map(|(id, addr)| format!("{id}={addr}"))
                .collect::<Vec<_>>()
                .join(",")
        });
        let file = FileConfig {
            node_id: Some(self.node_id),
            listen: Some(self.listen),
            advertise: self.advertise.clone(),
            peers,
            data_dir: Some(self.data_dir.clone()),
            block_size: Some(ByteSize(self.block_size)),
            replication: Some(self.replication),
            min_replicas: Some(self.min_replicas),
            heartbeat_interval: Some(self.heartbeat_interval),
            datanode_dead_after: Some(self.datanode_dead_after),
            lease_duration: Some(self.lease_duration),
            max_leases_per_client: Some(self.max_leases_per_client),
            request_timeout: Some(self.request_timeout),
            idle_timeout: Some(self.idle_timeout),
            max_connections: Some(self.max_connections),
            snapshot_every: Some(self.snapshot_every),
            raft_heartbeat: Some(self.raft_heartbeat),
            election_timeout_min: Some(self.election_timeout_min),
            election_timeout_max: Some(self.election_timeout_max),
            log_format: Some(self.log_format),
            secret_file: self.secret_file.clone(),
            block_token_lifetime: Some(self.block_token_lifetime),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_ca: self.tls_ca.clone(),
        };
        toml::to_string(&file).context("write the configuration as TOML")
    }
}

/// A byte count given as plain bytes (`67108864`) or with a suffix (`64MiB`, `1M`, `4k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<ByteSize, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let num: u64 = num
            .parse()
            .map_err(|_| format!("'{s}' is not a byte size (e.g. 67108864 or 64MiB)"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            other => return Err(format!("unknown size unit '{other}' in '{s}'")),
        };
        num.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("'{s}' is too large"))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Ok(ByteSize(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// `id=host:port,id=host:port`.
pub fn parse_peers(s: &str) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut peers = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .with_context(|| format!("peer '{part}' is not id=host:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("peer id in '{part}' is not a number"))?;
        if peers.insert(id, addr.trim().to_string()).is_some() {
            bail!("peer id {id} is listed twice");
        }
    }
    Ok(peers)
}

/// The TOML file: the flags' keys in snake_case, all optional; unknown keys are an error.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub node_id: Option<u64>,
    pub listen: Option<SocketAddr>,
    pub advertise: Option<String>,
    /// Same syntax as the flag: `"1=host:port,2=host:port"`.
    pub peers: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub block_size: Option<ByteSize>,
    pub replication: Option<u32>,
    pub min_replicas: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub heartbeat_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub datanode_dead_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub lease_duration: Option<Duration>,
    pub max_leases_per_client: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    pub max_connections: Option<u32>,
    pub snapshot_every: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    pub raft_heartbeat: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub election_timeout_min: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub election_timeout_max: Option<Duration>,
    pub log_format: Option<LogFormat>,
    pub secret_file: Option<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    pub block_token_lifetime: Option<Duration>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parse config file {}", path.display()))
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("'{s}': {e} (e.g. 3s, 500ms)"))
}

/// The command line of `dfs-namenode`. Every flag can also come from `DFS_NAMENODE_<FLAG>`.
#[derive(Debug, clap::Parser)]
#[command(name = "dfs-namenode", version, about = "dfs metadata server")]
pub struct Args {
    /// TOML file with the same keys in snake_case; flags override it.
    #[arg(long, env = "DFS_NAMENODE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Raft node id [default: 1].
    #[arg(long, env = "DFS_NAMENODE_NODE_ID")]
    pub node_id: Option<u64>,
    /// Address to listen on [default: 127.0.0.1:9870].
    #[arg(long, env = "DFS_NAMENODE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// host:port others reach this namenode at [default: the listen address].
    #[arg(long, env = "DFS_NAMENODE_ADVERTISE")]
    pub advertise: Option<String>,
    /// Every voter including this node: id=host:port,... [default: only this node].
    #[arg(long, env = "DFS_NAMENODE_PEERS")]
    pub peers: Option<String>,
    /// Directory for the Raft log and snapshots (required, here or in the config file).
    #[arg(long, env = "DFS_NAMENODE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Block size for new files: bytes or 1MiB, 64MiB... [default: 64MiB].
    #[arg(long, env = "DFS_NAMENODE_BLOCK_SIZE")]
    pub block_size: Option<ByteSize>,
    /// Replicas per block [default: 3].
    #[arg(long, env = "DFS_NAMENODE_REPLICATION")]
    pub replication: Option<u32>,
    /// Fewest replicas a block write may end with after dropping failed datanodes
    /// [default: 1].
    #[arg(long, env = "DFS_NAMENODE_MIN_REPLICAS")]
    pub min_replicas: Option<u32>,
    /// Datanode heartbeat interval [default: 3s].
    #[arg(long, env = "DFS_NAMENODE_HEARTBEAT_INTERVAL", value_parser = parse_duration)]
    pub heartbeat_interval: Option<Duration>,
    /// A datanode silent this long is dead [default: 30s].
    #[arg(long, env = "DFS_NAMENODE_DATANODE_DEAD_AFTER", value_parser = parse_duration)]
    pub datanode_dead_after: Option<Duration>,
    /// Write lease duration without renewal [default: 60s].
    #[arg(long, env = "DFS_NAMENODE_LEASE_DURATION", value_parser = parse_duration)]
    pub lease_duration: Option<Duration>,
    /// Most files one client may hold open for writing [default: 10000].
    #[arg(long, env = "DFS_NAMENODE_MAX_LEASES_PER_CLIENT")]
    pub max_leases_per_client: Option<u32>,
    /// Longest a REST request may take before it is answered 408 [default: 2m].
    #[arg(long, env = "DFS_NAMENODE_REQUEST_TIMEOUT", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
    /// Close a REST connection idle this long [default: 5m].
    #[arg(long, env = "DFS_NAMENODE_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Most REST connections open at once [default: 4096].
    #[arg(long, env = "DFS_NAMENODE_MAX_CONNECTIONS")]
    pub max_connections: Option<u32>,
    /// Snapshot every this many log entries [default: 10000].
    #[arg(long, env = "DFS_NAMENODE_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<u64>,
    /// Raft leader heartbeat [default: 150ms].
    #[arg(long, env = "DFS_NAMENODE_RAFT_HEARTBEAT", value_parser = parse_duration)]
    pub raft_heartbeat: Option<Duration>,
    /// Raft election timeout lower bound [default: 600ms].
    #[arg(long, env = "DFS_NAMENODE_ELECTION_TIMEOUT_MIN", value_parser = parse_duration)]
    pub election_timeout_min: Option<Duration>,
    /// Raft election timeout upper bound [default: 1200ms].
    #[arg(long, env = "DFS_NAMENODE_ELECTION_TIMEOUT_MAX", value_parser = parse_duration)]
    pub election_timeout_max: Option<Duration>,
    /// Log lines as `text` or `json` [default: text].
    #[arg(long, env = "DFS_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// File holding the cluster secret (at least 32 random bytes, e.g. hex); without one the
    /// namenode runs unauthenticated (dev mode).
    #[arg(long, env = "DFS_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// How long a block access token stays valid [default: 10m].
    #[arg(long, env = "DFS_NAMENODE_BLOCK_TOKEN_LIFETIME", value_parser = parse_duration)]
    pub block_token_lifetime: Option<Duration>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key and --tls-ca
    /// [default: plain HTTP].
    #[arg(long, env = "DFS_NAMENODE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "DFS_NAMENODE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA certificate (PEM) the other namenodes' certificates must chain to.
    #[arg(long, env = "DFS_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Print the effective configuration (defaults, file, environment and flags merged) as
    /// TOML that `--config` accepts, and exit.
    #[arg(long)]
    pub print_config: bool,
}

impl Args {
    /// Merges defaults, the config file and the flags, and validates the result.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .context("--data-dir is required (flag, DFS_NAMENODE_DATA_DIR or config file)")?;
        let mut c = Config::new(data_dir);
        macro_rules! merge {
            ($($field:ident),*) => {$(
                if let Some(v) = self.$field.or(file.$field) { c.$field = v; }
            )*};
        }
        merge!(
            node_id,
            listen,
            replication,
            min_replicas,
            heartbeat_interval,
            datanode_dead_after,
            lease_duration,
            max_leases_per_client,
            request_timeout,
            idle_timeout,
            max_connections,
            snapshot_every,
            raft_heartbeat,
            election_timeout_min,
            election_timeout_max,
            log_format,
            block_token_lifetime
        );
        c.secret_file = self.secret_file.or(file.secret_file);
        c.tls_cert = self.tls_cert.or(file.tls_cert);
        c.tls_key = self.tls_key.or(file.tls_key);
        c.tls_ca = self.tls_ca.or(file.tls_ca);
        c.advertise = self.advertise.or(file.advertise);
        if let Some(b) = self.block_size.or(file.block_size) {
            c.block_size = b.0;
        }
        if let Some(p) = self.peers.or(file.peers) {
            c.peers = parse_peers(&p)?;
        }
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn byte_sizes_parse() {
        assert_eq!("67108864".parse(), Ok(ByteSize(67108864)));
        assert_eq!("64MiB".parse(), Ok(ByteSize(64 << 20)));
        assert_eq!("1M".parse(), Ok(ByteSize(1 << 20)));
        assert_eq!("4k".parse(), Ok(ByteSize(4096)));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("MiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn peers_parse() {
        let p = parse_peers("1=a:1, 2=b:2").expect("valid");
        assert_eq!(p.get(&2).map(String::as_str), Some("b:2"));
        assert!(parse_peers("1=a:1,1=b:2").is_err());
        assert!(parse_peers("x=a:1").is_err());
    }

    #[test]
    fn flags_override_the_file_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nn.toml");
        std::fs::write(
            &path,
            "data_dir = \"/d\"\nreplication = 2\nblock_size = \"1MiB\"\nlease_duration = \"5s\"\n",
        )
        .expect("write config");
        let args = Args::parse_from([
            "dfs-namenode",
            "--config",
            path.to_str().expect("utf-8 path"),
            "--replication",
            "1",
        ]);
        let c = args.into_config().expect("valid config");
        assert_eq!(c.replication, 1);
        assert_eq!(c.block_size, 1 << 20);
        assert_eq!(c.lease_duration, Duration::from_secs(5));
        assert_eq!(c.data_dir, PathBuf::from("/d"));

        std::fs::write(&path, "data_dir = \"/d\"\nbogus = 1\n").expect("write config");
        let args = Args::parse_from(["dfs-namenode", "--config", path.to_str().expect("utf-8")]);
        let err = format!("{:#}", args.into_config().expect_err("unknown key"));
        assert!(err.contains("bogus"), "the error names the key: {err}");
    }

    #[test]
    fn printed_config_reads_back_as_the_same_config() {
        let mut c = Config::new("/var/lib/dfs/nn");
        c.node_id = 2;
        c.peers = parse_peers("1=a:1,2=b:2,3=c:3").expect("valid");
        c.advertise = Some("b:2".into());
        c.block_size = 1 << 20;
        c.lease_duration = Duration::from_millis(1500);
        c.log_format = LogFormat::Json;
        c.tls_cert = Some("/etc/dfs/nn.pem".into());
        c.tls_key = Some("/etc/dfs/nn.key".into());
        c.tls_ca = Some("/etc/dfs/ca.pem".into());
        let text = c.to_toml().expect("serialize");
        assert!(
            text.contains("election_timeout_max = \"1s 200ms\""),
            "{text}"
        );

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nn.toml");
        std::fs::write(&path, &text).expect("write config");
        let args = Args::parse_from(["dfs-namenode", "--config", path.to_str().expect("utf-8")]);
        assert_eq!(args.into_config().expect("valid"), c, "from:\n{text}");

        // Defaults only: optional keys left out still read back.
        let d = Config::new("/d");
        std::fs::write(&path, d.to_toml().expect("serialize")).expect("write config");
        let args = Args::parse_from(["dfs-namenode", "--config", path.to_str().expect("utf-8")]);
        assert_eq!(args.into_config().expect("valid"), d);
    }
}
