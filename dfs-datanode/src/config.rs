//! The datanode's configuration: command-line flags (each also readable from a `DFS_DATANODE_*`
//! environment variable), an optional TOML file with the same keys in snake_case, and defaults.
//! Precedence, lowest first: defaults, the file, the environment, flags. Unknown file keys are
//! an error. [`Config::to_toml`] writes the effective configuration back as a file the daemon
//! accepts (`--print-config`).

use dfs_proto::LogFormat;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Everything the datanode needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub data_dir: PathBuf,
    /// REST addresses (host:port) of every namenode.
    pub namenodes: Vec<String>,
    pub grpc_listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// Host clients and peers use to reach this node; `None` = the gRPC listener's IP
    /// (127.0.0.1 when that is unspecified).
    pub advertise_host: Option<String>,
    pub heartbeat_interval: Duration,
    pub block_report_interval: Duration,
    /// Cap on the capacity reported, in bytes.
    pub capacity: Option<u64>,
    /// Bytes of the file system kept free.
    pub reserved: u64,
    /// Bytes per second this node sends for replication copies, all copies together; 0 means
    /// no limit.
    pub replication_bandwidth: u64,
    /// Bytes per second the scrubber re-reads and verifies; 0 turns it off.
    pub scrub_rate: u64,
    /// Pause between two scrub passes over every replica.
    pub scrub_interval: Duration,
    /// A gRPC connection on which nothing is read or written for this long is closed (a peer
    /// that connects and says nothing); a write stream whose next message takes this long is
    /// cut off. Live connections carry HTTP/2 pings every 30 s, so this must be longer.
    pub idle_timeout: Duration,
    /// The Unix socket that hands co-located clients replica files (short-circuit local
    /// reads); `None`: no local reads, every read goes over gRPC.
    pub local_socket: Option<PathBuf>,
    /// Shape of the log lines (read by the binary, which starts logging).
    pub log_format: LogFormat,
    /// The cluster secret file (see `docs/SECURITY.md`). `None`: dev mode, no authentication
    /// to namenodes and no block token checks.
    pub secret_file: Option<PathBuf>,
    /// TLS certificate chain (PEM) the gRPC and HTTP listeners serve with; `None`: no TLS.
    /// Set with `tls_key` and `tls_ca` (see `docs/SECURITY.md`).
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// CA certificate (PEM) that namenodes' and other datanodes' certificates must chain to.
    pub tls_ca: Option<PathBuf>,
}

pub const DEFAULT_GRPC_LISTEN: &str = "0.0.0.0:9866";
pub const DEFAULT_HTTP_LISTEN: &str = "0.0.0.0:9864";
pub const DEFAULT_RESERVED: u64 = 256 * 1024 * 1024;
/// Per sending datanode, all its copies together; lower it where copies must leave more of the
/// disks and the network to clients.
pub const DEFAULT_REPLICATION_BANDWIDTH: u64 = 512 * 1024 * 1024;
pub const DEFAULT_SCRUB_RATE: u64 = 4 * 1024 * 1024;
pub const DEFAULT_SCRUB_INTERVAL: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The local read socket's name in the data directory, unless configured elsewhere.
pub const DEFAULT_LOCAL_SOCKET: &str = "local-reads.sock";

impl Config {
    /// A configuration with defaults, for tests and embedding.
    pub fn new(data_dir: impl Into<PathBuf>, namenodes: Vec<String>) -> Config {
        let data_dir: PathBuf = data_dir.into();
        Config {
            local_socket: Some(data_dir.join(DEFAULT_LOCAL_SOCKET)),
            data_dir,
            namenodes,
            grpc_listen: SocketAddr::from(([0, 0, 0, 0], 9866)),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 9864)),
            advertise_host: None,
            heartbeat_interval: Duration::from_secs(3),
            block_report_interval: Duration::from_secs(600),
            capacity: None,
            reserved: DEFAULT_RESERVED,
            replication_bandwidth: DEFAULT_REPLICATION_BANDWIDTH,
            scrub_rate: DEFAULT_SCRUB_RATE,
            scrub_interval: DEFAULT_SCRUB_INTERVAL,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            log_format: LogFormat::Text,
            secret_file: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
        }
    }

    /// Merges flags over the file named by `--config` (if any) over defaults.
    pub fn load(cli: Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        let data_dir = cli
            .data_dir
            .or(file.data_dir)
            .ok_or(ConfigError::Missing("data-dir"))?;
        let namenodes = match cli.namenodes {
            Some(list) => list,
            None => file.namenodes.ok_or(ConfigError::Missing("namenodes"))?,
        };
        if namenodes.is_empty() {
            return Err(ConfigError::Missing("namenodes"));
        }
        if namenodes.iter().any(|n| n.trim().is_empty()) {
            return Err(ConfigError::Invalid("--namenodes holds an empty address"));
        }
        let mut config = Config::new(data_dir, namenodes);
        if let Some(v) = cli.grpc_listen.or(file.grpc_listen) {
            config.grpc_listen = v;
        }
        if let Some(v) = cli.http_listen.or(file.http_listen) {
            config.http_listen = v;
        }
        config.advertise_host = cli.advertise_host.or(file.advertise_host);
        if let Some(v) = cli.heartbeat_interval.or(file.heartbeat_interval) {
            config.heartbeat_interval = v;
        }
        if let Some(v) = cli.block_report_interval.or(file.block_report_interval) {
            config.block_report_interval = v;
        }
        config.capacity = cli.capacity.or(file.capacity).map(|b| b.0);
        if let Some(v) = cli.reserved.or(file.reserved) {
            config.reserved = v.0;
        }
        if let Some(v) = cli.replication_bandwidth.or(file.replication_bandwidth) {
            config.replication_bandwidth = v.0;
        }
        if let Some(v) = cli.scrub_rate.or(file.scrub_rate) {
            config.scrub_rate = v.0;
        }
        if let Some(v) = cli.scrub_interval.or(file.scrub_interval) {
            config.scrub_interval = v;
        }
        if let Some(v) = cli.idle_timeout.or(file.idle_timeout) {
            config.idle_timeout = v;
        }
        if let Some(v) = cli.local_socket.or(file.local_socket) {
            config.local_socket = Some(v);
        }
        if !cli.local_reads.or(file.local_reads).unwrap_or(true) {
            config.local_socket = None;
        }
        if let Some(v) = cli.log_format.or(file.log_format) {
            config.log_format = v;
        }
        config.secret_file = cli.secret_file.or(file.secret_file);
        config.tls_cert = cli.tls_cert.or(file.tls_cert);
        config.tls_key = cli.tls_key.or(file.tls_key);
        config.tls_ca = cli.tls_ca.or(file.tls_ca);
        if dfs_tls::check_daemon_settings(
            config.tls_cert.as_deref(),
            config.tls_key.as_deref(),
            config.tls_ca.as_deref(),
        )
        .is_err()
        {
            return Err(ConfigError::Invalid(
                "--tls-cert, --tls-key and --tls-ca go together: set all three or none",
            ));
        }
        if config.idle_timeout < Duration::from_secs(1) {
            return Err(ConfigError::Invalid("--idle-timeout must be at least 1s"));
        }
        if config.heartbeat_interval.is_zero() || config.block_report_interval.is_zero() {
            return Err(ConfigError::Invalid("intervals must be longer than zero"));
        }
        Ok(config)
    }

    /// The configuration as a TOML file with every key, which `--config` accepts back.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let file = FileConfig {
            data_dir: Some(self.data_dir.clone()),
            namenodes: Some(self.namenodes.clone()),
            grpc_listen: Some(self.grpc_listen),
            http_listen: Some(self.http_listen),
            advertise_host: self.advertise_host.clone(),
            heartbeat_interval: Some(self.heartbeat_interval),
            block_report_interval: Some(self.block_report_interval),
            capacity: self.capacity.map(ByteSize),
            reserved: Some(ByteSize(self.reserved)),
            replication_bandwidth: Some(ByteSize(self.replication_bandwidth)),
            scrub_rate: Some(ByteSize(self.scrub_rate)),
            scrub_interval: Some(self.scrub_interval),
            idle_timeout: Some(self.idle_timeout),
            local_reads: Some(self.local_socket.is_some()),
            local_socket: self.local_socket.clone(),
            log_format: Some(self.log_format),
            secret_file: self.secret_file.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_ca: self.tls_ca.clone(),
        };
        toml::to_string(&file)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("--{0} is required (as a flag, environment variable or config key)")]
    Missing(&'static str),
    #[error("{0}")]
    Invalid(&'static str),
}

/// Command-line flags. Every flag is optional here so that the file can supply it.
#[derive(Debug, Default, clap::Parser)]
#[command(name = "dfs-datanode", version, about = "dfs block server")]
pub struct Cli {
    /// Directory holding this node's blocks and identity.
    #[arg(long, env = "DFS_DATANODE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// REST addresses of every namenode, comma separated (host:port,...).
    #[arg(long, env = "DFS_DATANODE_NAMENODES", value_delimiter = ',')]
    pub namenodes: Option<Vec<String>>,
    /// gRPC listen address [default: 0.0.0.0:9866].
    #[arg(long, env = "DFS_DATANODE_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,
    /// HTTP (health) listen address [default: 0.0.0.0:9864].
    #[arg(long, env = "DFS_DATANODE_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Host clients and peers reach this node at [default: the gRPC listen IP, or 127.0.0.1].
    #[arg(long, env = "DFS_DATANODE_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
    /// Time between heartbeats, e.g. 3s [default: 3s].
    #[arg(long, env = "DFS_DATANODE_HEARTBEAT_INTERVAL", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Option<Duration>,
    /// Time between full block reports [default: 10m].
    #[arg(long, env = "DFS_DATANODE_BLOCK_REPORT_INTERVAL", value_parser = humantime::parse_duration)]
    pub block_report_interval: Option<Duration>,
    /// Cap on the capacity reported, e.g. 10GiB [default: the file system's size].
    #[arg(long, env = "DFS_DATANODE_CAPACITY")]
    pub capacity: Option<ByteSize>,
    /// Space kept free on the file system, e.g. 256MiB [default: 256MiB].
    #[arg(long, env = "DFS_DATANODE_RESERVED")]
    pub reserved: Option<ByteSize>,
    /// Bytes per second sent for replication copies, e.g. 100MiB; 0 = no limit
    /// [default: 512MiB].
    #[arg(long, env = "DFS_DATANODE_REPLICATION_BANDWIDTH")]
    pub replication_bandwidth: Option<ByteSize>,
    /// Bytes per second the scrubber verifies, e.g. 4MiB; 0 = off [default: 4MiB].
    #[arg(long, env = "DFS_DATANODE_SCRUB_RATE")]
    pub scrub_rate: Option<ByteSize>,
    /// Pause between scrub passes, e.g. 24h [default: 24h].
    #[arg(long, env = "DFS_DATANODE_SCRUB_INTERVAL", value_parser = humantime::parse_duration)]
    pub scrub_interval: Option<Duration>,
    /// Close a gRPC connection or write stream idle this long, e.g. 5m [default: 5m].
    #[arg(long, env = "DFS_DATANODE_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Hand replica files to clients on this machine over a Unix socket (short-circuit local
    /// reads): `true` or `false` [default: true].
    #[arg(long, env = "DFS_DATANODE_LOCAL_READS")]
    pub local_reads: Option<bool>,
    /// Path of the local read socket [default: DATA_DIR/local-reads.sock].
    #[arg(long, env = "DFS_DATANODE_LOCAL_SOCKET")]
    pub local_socket: Option<PathBuf>,
    /// Log lines as `text` or `json` [default: text].
    #[arg(long, env = "DFS_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// File holding the cluster secret (at least 32 random bytes, e.g. hex); without one the
    /// datanode runs unauthenticated (dev mode).
    #[arg(long, env = "DFS_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Serve gRPC and HTTP over TLS with this certificate chain (PEM); needs --tls-key and
    /// --tls-ca [default: no TLS].
    #[arg(long, env = "DFS_DATANODE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "DFS_DATANODE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA certificate (PEM) namenodes' and other datanodes' certificates must chain to.
    #[arg(long, env = "DFS_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// TOML file with the same settings (snake_case keys).
    #[arg(long, env = "DFS_DATANODE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (defaults, file, environment and flags merged) as
    /// TOML that `--config` accepts, and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// The TOML file's keys.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    namenodes: Option<Vec<String>>,
    grpc_listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    advertise_host: Option<String>,
    #[serde(default, with = "humantime_serde")]
    heartbeat_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    block_report_interval: Option<Duration>,
    capacity: Option<ByteSize>,
    reserved: Option<ByteSize>,
    replication_bandwidth: Option<ByteSize>,
    scrub_rate: Option<ByteSize>,
    #[serde(default, with = "humantime_serde")]
    scrub_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    idle_timeout: Option<Duration>,
    local_reads: Option<bool>,
    local_socket: Option<PathBuf>,
    log_format: Option<LogFormat>,
    secret_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
}

impl FileConfig {
    fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// A size in bytes, written plainly (`1048576`) or with a suffix (`1MiB`, `10GB`, `512K`).
/// Binary suffixes (`KiB`, `K`) count 1024s, decimal ones (`KB`) 1000s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<ByteSize, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, suffix) = s.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{s}` is not a size (like 1048576 or 1MiB)"))?;
        let unit: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            other => return Err(format!("unknown size suffix `{other}` in `{s}`")),
        };
        n.checked_mul(unit)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{s}` is too large"))
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
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn sizes_parse_with_and_without_suffix() {
        assert_eq!("1048576".parse(), Ok(ByteSize(1 << 20)));
        assert_eq!("1MiB".parse(), Ok(ByteSize(1 << 20)));
        assert_eq!("256MiB".parse(), Ok(ByteSize(256 << 20)));
        assert_eq!("2 GB".parse(), Ok(ByteSize(2_000_000_000)));
        assert!("1XB".parse::<ByteSize>().is_err());
        assert!("MiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dn.toml");
        std::fs::write(
            &path,
            "data_dir = \"/from/file\"\nnamenodes = [\"a:1\", \"b:2\"]\n\
             heartbeat_interval = \"1s\"\nreserved = \"1MiB\"\ncapacity = 5000\n",
        )
        .expect("write config");
        let cli = Cli::try_parse_from([
            "dfs-datanode",
            "--config",
            path.to_str().expect("utf-8 path"),
            "--data-dir",
            "/from/flag",
            "--block-report-interval",
            "2m",
        ])
        .expect("parse flags");
        let config = Config::load(cli).expect("load");
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.namenodes, vec!["a:1".to_string(), "b:2".to_string()]);
        assert_eq!(config.heartbeat_interval, Duration::from_secs(1));
        assert_eq!(config.block_report_interval, Duration::from_secs(120));
        assert_eq!(config.reserved, 1 << 20);
        assert_eq!(config.capacity, Some(5000));
        assert_eq!(config.grpc_listen.to_string(), DEFAULT_GRPC_LISTEN);
        assert_eq!(config.http_listen.to_string(), DEFAULT_HTTP_LISTEN);
    }

    #[test]
    fn unknown_keys_and_missing_settings_are_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dn.toml");
        std::fs::write(&path, "data_dir = \"/d\"\nnamenode = [\"a:1\"]\n").expect("write");
        let cli = Cli {
            config: Some(path),
            ..Cli::default()
        };
        let err = Config::load(cli).expect_err("unknown key");
        assert!(matches!(err, ConfigError::Parse { .. }));
        assert!(
            err.to_string().contains("`namenode`"),
            "names the key: {err}"
        );
        let cli = Cli::try_parse_from(["dfs-datanode", "--data-dir", "/d"]).expect("parse");
        assert!(matches!(
            Config::load(cli),
            Err(ConfigError::Missing("namenodes"))
        ));
        let cli =
            Cli::try_parse_from(["dfs-datanode", "--data-dir", "/d", "--namenodes", "a:1,b:2"])
                .expect("parse");
        assert_eq!(Config::load(cli).expect("load").namenodes.len(), 2);
    }

    #[test]
    fn tls_keys_go_together() {
        let base = ["dfs-datanode", "--data-dir", "/d", "--namenodes", "a:1"];
        let partial =
            Cli::try_parse_from(base.iter().chain(&["--tls-cert", "/c.pem"])).expect("parse");
        let err = Config::load(partial).expect_err("cert without key and CA");
        assert!(err.to_string().contains("--tls-key"), "{err}");
        let all = [
            "--tls-cert",
            "/c.pem",
            "--tls-key",
            "/c.key",
            "--tls-ca",
            "/ca.pem",
        ];
        let cli = Cli::try_parse_from(base.iter().chain(&all)).expect("parse");
        let c = Config::load(cli).expect("all three");
        assert_eq!(c.tls_ca, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn local_reads_are_on_in_the_data_dir_unless_turned_off() {
        let base = ["dfs-datanode", "--data-dir", "/d", "--namenodes", "a:1"];
        let load = |extra: &[&str]| {
            let cli = Cli::try_parse_from(base.iter().chain(extra)).expect("parse");
            Config::load(cli).expect("load").local_socket
        };
        assert_eq!(load(&[]), Some(PathBuf::from("/d/local-reads.sock")));
        assert_eq!(
            load(&["--local-socket", "/run/dfs/dn.sock"]),
            Some(PathBuf::from("/run/dfs/dn.sock"))
        );
        assert_eq!(load(&["--local-reads", "false"]), None);
        assert!(Cli::try_parse_from(base.iter().chain(&["--local-reads", "maybe"])).is_err());
    }

    #[test]
    fn printed_config_reads_back_as_the_same_config() {
        let mut c = Config::new("/srv/dn1", vec!["a:1".into(), "b:2".into()]);
        c.capacity = Some(10 << 30);
        c.advertise_host = Some("dn1.example".into());
        c.scrub_interval = Duration::from_secs(90 * 60);
        c.log_format = LogFormat::Json;
        c.tls_cert = Some("/etc/dfs/dn1.pem".into());
        c.tls_key = Some("/etc/dfs/dn1.key".into());
        c.tls_ca = Some("/etc/dfs/ca.pem".into());
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dn.toml");
        let mut no_local_reads = Config::new("/d2", vec!["a:1".into()]);
        no_local_reads.local_socket = None;
        for config in [c, Config::new("/d", vec!["a:1".into()]), no_local_reads] {
            let text = config.to_toml().expect("serialize");
            std::fs::write(&path, &text).expect("write config");
            let cli =
                Cli::try_parse_from(["dfs-datanode", "--config", path.to_str().expect("utf-8")])
                    .expect("parse flags");
            assert_eq!(Config::load(cli).expect("load"), config, "from:\n{text}");
        }
    }
}
