//! The mount's configuration: flags (most also readable from an environment variable), an
//! optional TOML file (`--config`), the client configuration file (`client.toml`) for the
//! namenodes and timeouts, and defaults.
//!
//! Precedence, lowest first: defaults, `client.toml`, the mount's file, the environment, flags.
//! `-o` options add to the file's `options`. Unknown file keys are an error.
//! [`Settings::to_toml`] writes the effective configuration back as a file `--config` accepts
//! (`--print-config`).

use crate::mount::MountConfig;
use crate::options::MountOptions;
use anyhow::{Context, Result, anyhow, bail};
use dfs_client::ClientConfig;
use dfs_proto::LogFormat;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The command line of `dfs-fuse`.
#[derive(Debug, Default, clap::Parser)]
#[command(
    name = "dfs-fuse",
    version,
    about = "Mount a dfs cluster as a local file system"
)]
pub struct Args {
    /// TOML file with the mount's settings (keys as in `--print-config`); flags override it.
    #[arg(long, env = "DFS_FUSE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Namenode REST addresses, host:port[,host:port...] (also DFS_NAMENODES) [default: the
    /// config file's, else the client config file's].
    #[arg(long)]
    pub namenodes: Option<String>,
    /// The cluster secret file [default: DFS_SECRET_FILE, else the client config file's
    /// `secret_file`].
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// CA certificate (PEM) of a cluster that serves TLS [default: DFS_TLS_CA, else the
    /// client config file's `tls_ca`; without one, plain HTTP].
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Mount options: allow_other, allow_root, ro, default_permissions, auto_unmount,
    /// fsname=NAME, metrics_listen=ADDR, noexec, nosuid, nodev, noatime, ...
    #[arg(short = 'o', value_name = "OPTS", env = "DFS_FUSE_OPTIONS")]
    pub options: Vec<String>,
    /// Run in the background once the mount is live.
    #[arg(long)]
    pub daemon: bool,
    /// Write the log to this file instead of stderr.
    #[arg(long, value_name = "FILE", env = "DFS_FUSE_LOG")]
    pub log: Option<PathBuf>,
    /// Log lines as `text` or `json` [default: text].
    #[arg(long, env = "DFS_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// How long an operation keeps looking for a namenode leader (across an election) before
    /// it fails with EIO: seconds (`30`) or a duration (`1m30s`) [default: 30s].
    #[arg(long, env = "DFS_FUSE_FAILOVER_TIMEOUT", value_parser = parse_timeout)]
    pub failover_timeout: Option<Duration>,
    /// Longest one REST request to a namenode may take: seconds or a duration [default: 30s].
    #[arg(long, env = "DFS_FUSE_REQUEST_TIMEOUT", value_parser = parse_timeout)]
    pub request_timeout: Option<Duration>,
    /// Print the effective configuration (defaults, files, environment and flags merged) as
    /// TOML that `--config` accepts, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Where to mount [default: the config file's `mountpoint`].
    pub mountpoint: Option<PathBuf>,
}

/// Seconds as a number (`30`, `2.5`), or a duration with units (`30s`, `1m`, `500ms`).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.trim().parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("'{s}': {e}"));
    }
    humantime::parse_duration(s).map_err(|e| format!("'{s}': {e} (e.g. 30, 30s, 500ms)"))
}

/// The mount's TOML file. Every key is optional.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    namenodes: Option<Vec<String>>,
    mountpoint: Option<PathBuf>,
    /// `-o` options, one per item (`"allow_other"`, `"fsname=dfs"`).
    options: Option<Vec<String>>,
    #[serde(default, with = "humantime_serde")]
    failover_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    request_timeout: Option<Duration>,
    log: Option<PathBuf>,
    log_format: Option<LogFormat>,
    secret_file: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
}

impl FileConfig {
    fn read(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parse config file {}", path.display()))
    }
}

/// The effective configuration of one `dfs-fuse` process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Namenodes and timeouts.
    pub client: ClientConfig,
    /// Every `-o` option, one per item, validated.
    pub options: Vec<String>,
    /// `None` only until checked by [`Settings::into_mount`].
    pub mountpoint: Option<PathBuf>,
    /// Log file; `None` = stderr.
    pub log: Option<PathBuf>,
    pub log_format: LogFormat,
}

impl Settings {
    /// Merges `args`, the process environment, the files and the defaults.
    pub fn load(args: Args) -> Result<Settings> {
        Settings::load_with(
            args,
            |k| std::env::var(k).ok(),
            Path::new(dfs_client::config::SYSTEM_CONFIG),
        )
    }

    /// [`Settings::load`] with the environment (for `DFS_NAMENODES` and the client file
    /// search; clap reads the other variables) and the system client file given explicitly.
    pub fn load_with(
        args: Args,
        env: impl Fn(&str) -> Option<String>,
        system_client_file: &Path,
    ) -> Result<Settings> {
        let file = match &args.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        let namenodes = args
            .namenodes
            .filter(|s| !s.trim().is_empty())
            .or_else(|| env("DFS_NAMENODES").filter(|s| !s.trim().is_empty()))
            .or_else(|| file.namenodes.map(|list| list.join(",")));
        let mut client =
            dfs_client::config::discover_with(namenodes.as_deref(), &env, system_client_file)
                .map_err(|e| anyhow!("{e}"))?;
        if let Some(t) = args.failover_timeout.or(file.failover_timeout) {
            client.failover_timeout = t;
        }
        if let Some(t) = args.request_timeout.or(file.request_timeout) {
            client.request_timeout = t;
        }
        if let Some(path) = args.secret_file.or(file.secret_file) {
            client.secret_file = Some(path);
        }
        if let Some(path) = args.tls_ca.or(file.tls_ca) {
            client.tls_ca = Some(path);
        }
        let options: Vec<String> = file
            .options
            .unwrap_or_default()
            .iter()
            .chain(&args.options)
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(String::from)
            .collect();
        MountOptions::parse(&options).map_err(|e| anyhow!(e))?;
        Ok(Settings {
            client,
            options,
            mountpoint: args.mountpoint.or(file.mountpoint),
            log: args.log.or(file.log),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
        })
    }

    /// What [`crate::run`] needs; fails without a mountpoint.
    pub fn into_mount(self) -> Result<MountConfig> {
        let Some(mountpoint) = self.mountpoint else {
            bail!("no mountpoint: give it as the argument or as `mountpoint` in --config");
        };
        Ok(MountConfig {
            client: self.client,
            options: MountOptions::parse(&self.options).map_err(|e| anyhow!(e))?,
            mountpoint,
        })
    }

    /// The configuration as a TOML file with every key, which `--config` accepts back.
    pub fn to_toml(&self) -> Result<String> {
        let file = FileConfig {
            namenodes: Some(self.client.namenodes.clone()),
            mountpoint: self.mountpoint.clone(),
            options: Some(self.options.clone()),
            failover_timeout: Some(self.client.failover_timeout),
            request_timeout: Some(self.client.request_timeout),
            log: self.log.clone(),
            log_format: Some(self.log_format),
            secret_file: self.client.secret_file.clone(),
            tls_ca: self.client.tls_ca.clone(),
        };
        toml::to_string(&file).context("write the configuration as TOML")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// No environment, no system client file.
    fn load(argv: &[&str]) -> Result<Settings> {
        let args = Args::try_parse_from(argv)?;
        Settings::load_with(args, |_| None, Path::new("/nonexistent/client.toml"))
    }

    #[test]
    fn flags_override_the_file_and_options_add_up() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("mount.toml");
        std::fs::write(
            &path,
            "namenodes = [\"a:1\", \"b:2\"]\nmountpoint = \"/mnt/dfs\"\n\
             options = [\"allow_other\", \"fsname=dfs\"]\nfailover_timeout = \"1m\"\n\
             request_timeout = \"5s\"\nlog_format = \"json\"\n",
        )
        .expect("write config");
        let p = path.to_str().expect("utf-8 path");

        let s = load(&["dfs-fuse", "--config", p]).expect("valid");
        assert_eq!(s.client.namenodes, vec!["a:1", "b:2"]);
        assert_eq!(s.client.failover_timeout, Duration::from_secs(60));
        assert_eq!(s.client.request_timeout, Duration::from_secs(5));
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.mountpoint.as_deref(), Some(Path::new("/mnt/dfs")));

        let s = load(&[
            "dfs-fuse",
            "--config",
            p,
            "--namenodes",
            "c:3",
            "--failover-timeout",
            "90",
            "-o",
            "ro,noatime",
            "--log-format",
            "text",
            "/elsewhere",
        ])
        .expect("valid");
        assert_eq!(s.client.namenodes, vec!["c:3"]);
        assert_eq!(s.client.failover_timeout, Duration::from_secs(90));
        assert_eq!(s.client.request_timeout, Duration::from_secs(5));
        assert_eq!(
            s.options,
            vec!["allow_other", "fsname=dfs", "ro", "noatime"]
        );
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.mountpoint.as_deref(), Some(Path::new("/elsewhere")));
    }

    #[test]
    fn the_environment_sits_between_the_file_and_the_flag() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("mount.toml");
        std::fs::write(&path, "namenodes = [\"file:1\"]\n").expect("write config");
        let env = |k: &str| (k == "DFS_NAMENODES").then(|| "env:2".to_string());
        let nowhere = Path::new("/nonexistent/client.toml");
        let from = |argv: &[&str]| {
            let args = Args::try_parse_from(argv).expect("parse");
            Settings::load_with(args, env, nowhere)
                .expect("valid")
                .client
                .namenodes
        };
        let p = path.to_str().expect("utf-8 path");
        assert_eq!(from(&["dfs-fuse", "--config", p]), vec!["env:2"]);
        assert_eq!(
            from(&["dfs-fuse", "--config", p, "--namenodes", "flag:3"]),
            vec!["flag:3"]
        );
    }

    #[test]
    fn unknown_keys_and_bad_options_are_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("mount.toml");
        std::fs::write(&path, "namenodes = [\"a:1\"]\nmount_point = \"/m\"\n").expect("write");
        let err = load(&["dfs-fuse", "--config", path.to_str().expect("utf-8")])
            .expect_err("unknown key");
        assert!(format!("{err:#}").contains("`mount_point`"), "{err:#}");

        std::fs::write(&path, "namenodes = [\"a:1\"]\noptions = [\"bogus\"]\n").expect("write");
        let err =
            load(&["dfs-fuse", "--config", path.to_str().expect("utf-8")]).expect_err("bad option");
        assert!(format!("{err:#}").contains("bogus"), "{err:#}");

        let s = load(&["dfs-fuse", "--namenodes", "a:1"]).expect("valid");
        assert!(s.into_mount().is_err(), "a mount needs a mountpoint");
    }

    #[test]
    fn printed_config_reads_back_as_the_same_settings() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("mount.toml");
        let p = path.to_str().expect("utf-8 path");
        let first = load(&[
            "dfs-fuse",
            "--namenodes",
            "a:1,b:2",
            "-o",
            "allow_other,metrics_listen=127.0.0.1:9101",
            "--failover-timeout",
            "2.5",
            "--log",
            "/var/log/dfs-fuse.log",
            "--tls-ca",
            "/etc/dfs/ca.pem",
            "/mnt/dfs",
        ])
        .expect("valid");
        let text = first.to_toml().expect("serialize");
        std::fs::write(&path, &text).expect("write config");
        let again = load(&["dfs-fuse", "--config", p]).expect("valid");
        assert_eq!(again.to_toml().expect("serialize"), text);
        assert_eq!(again.client.namenodes, first.client.namenodes);
        assert_eq!(again.client.failover_timeout, Duration::from_millis(2500));
        assert_eq!(again.client.tls_ca, Some(PathBuf::from("/etc/dfs/ca.pem")));
        assert_eq!(again.mount_options(), first.mount_options());
    }

    impl Settings {
        fn mount_options(&self) -> MountOptions {
            MountOptions::parse(&self.options).expect("validated")
        }
    }
}
