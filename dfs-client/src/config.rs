//! Where the client finds the namenodes, and its timeouts.
//!
//! Discovery order: the `--namenodes` flag, env `DFS_NAMENODES`, the TOML file at `$DFS_CONFIG`,
//! `$XDG_CONFIG_HOME/dfs/client.toml`, `~/.config/dfs/client.toml`, `/etc/dfs/client.toml`.
//! The logic takes the environment as a parameter so that tests never touch the process env.

use crate::error::{Error, Result};
use dfs_proto::ClientId;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The system-wide configuration file, the last place discovery looks.
pub const SYSTEM_CONFIG: &str = "/etc/dfs/client.toml";

/// How the client reaches the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// REST addresses (host:port) of every namenode; any of them leads to the leader.
    pub namenodes: Vec<String>,
    /// Longest a single REST request may take.
    pub request_timeout: Duration,
    /// How long a call keeps looking for a leader (across elections) before giving up.
    pub failover_timeout: Duration,
    /// This process's identity as a lease holder.
    pub client_id: ClientId,
    /// The cluster secret file; every namenode call carries the credential derived from it.
    /// From env `DFS_SECRET_FILE`, else the config file's `secret_file` (relative to the file).
    pub secret_file: Option<PathBuf>,
    /// The CA certificate (PEM) of a cluster that serves TLS: calls then use `https://` and
    /// accept only servers whose certificate this CA signed. From env `DFS_TLS_CA`, else the
    /// config file's `tls_ca` (relative to the file). `None`: plain HTTP.
    pub tls_ca: Option<PathBuf>,
    /// Read replicas held by datanodes of this machine from their files (short-circuit local
    /// reads, `dfs_proto::local_read`) rather than over gRPC. On unless env `DFS_LOCAL_READS`
    /// or the config file's `local_reads` says `false`.
    pub local_reads: bool,
}

/// The TOML file's contents.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    namenodes: Vec<String>,
    #[serde(default)]
    request_timeout_ms: Option<u64>,
    #[serde(default)]
    failover_timeout_ms: Option<u64>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    #[serde(default)]
    tls_ca: Option<PathBuf>,
    #[serde(default)]
    local_reads: Option<bool>,
}

impl ClientConfig {
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

    /// A configuration with default timeouts and a fresh client id.
    pub fn new(namenodes: Vec<String>) -> ClientConfig {
        ClientConfig {
            namenodes,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            failover_timeout: Self::DEFAULT_FAILOVER_TIMEOUT,
            client_id: new_client_id(),
            secret_file: None,
            tls_ca: None,
            local_reads: true,
        }
    }

    /// Finds the namenodes from `flag` (a comma-separated list), the process environment, or
    /// a configuration file.
    pub fn discover(flag: Option<&str>) -> Result<ClientConfig> {
        discover_with(flag, |k| std::env::var(k).ok(), Path::new(SYSTEM_CONFIG))
    }
}

/// [`ClientConfig::discover`] with the environment and the system file given explicitly.
pub fn discover_with(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    system_file: &Path,
) -> Result<ClientConfig> {
    let mut config = discover_namenodes(flag, &env, system_file)?;
    if let Some(path) = env("DFS_SECRET_FILE").filter(|s| !s.is_empty()) {
        config.secret_file = Some(PathBuf::from(path));
    }
    if let Some(path) = env("DFS_TLS_CA").filter(|s| !s.is_empty()) {
        config.tls_ca = Some(PathBuf::from(path));
    }
    if let Some(value) = env("DFS_LOCAL_READS").filter(|s| !s.is_empty()) {
        config.local_reads = match value.trim() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            other => {
                return Err(Error::Config(format!(
                    "DFS_LOCAL_READS is '{other}': use true or false"
                )));
            }
        };
    }
    Ok(config)
}

fn discover_namenodes(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    system_file: &Path,
) -> Result<ClientConfig> {
    if let Some(list) = flag.filter(|s| !s.trim().is_empty()) {
        return from_list(list, "--namenodes");
    }
    if let Some(list) = env("DFS_NAMENODES").filter(|s| !s.trim().is_empty()) {
        return from_list(&list, "DFS_NAMENODES");
    }
    if let Some(path) = env("DFS_CONFIG").filter(|s| !s.is_empty()) {
        // Named explicitly: a missing file is an error, not a reason to look elsewhere.
        return from_file(Path::new(&path));
    }
    let mut candidates = Vec::new();
    if let Some(xdg) = env("XDG_CONFIG_HOME").filter(|s| !s.is_empty()) {
        candidates.push(PathBuf::from(xdg).join("dfs/client.toml"));
    }
    if let Some(home) = env("HOME").filter(|s| !s.is_empty()) {
        candidates.push(PathBuf::from(home).join(".config/dfs/client.toml"));
    }
    candidates.push(system_file.to_path_buf());
    for path in &candidates {
        if path.is_file() {
            return from_file(path);
        }
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(Error::Config(format!(
        "no namenode addresses: give --namenodes host:port[,host:port...], set DFS_NAMENODES, \
         set DFS_CONFIG to a TOML file, or write `namenodes = [\"host:port\"]` to one of: {}",
        tried.join(", ")
    )))
}

fn from_list(list: &str, source: &str) -> Result<ClientConfig> {
    let namenodes = parse_addrs(list.split(','), source)?;
    Ok(ClientConfig::new(namenodes))
}

fn from_file(path: &Path) -> Result<ClientConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::local(path, e))?;
    let file: ConfigFile =
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let source = path.display().to_string();
    let mut config = ClientConfig::new(parse_addrs(file.namenodes.iter(), &source)?);
    if let Some(ms) = file.request_timeout_ms {
        config.request_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = file.failover_timeout_ms {
        config.failover_timeout = Duration::from_millis(ms);
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    config.secret_file = file.secret_file.map(|p| dir.join(p));
    config.tls_ca = file.tls_ca.map(|p| dir.join(p));
    if let Some(on) = file.local_reads {
        config.local_reads = on;
    }
    Ok(config)
}

/// Trims each address, drops an `http://` or `https://` prefix, and refuses an empty list or an address
/// without a port.
fn parse_addrs<S: AsRef<str>>(items: impl Iterator<Item = S>, source: &str) -> Result<Vec<String>> {
    let mut addrs = Vec::new();
    for item in items {
        let addr = item.as_ref().trim();
        let addr = addr
            .strip_prefix("http://")
            .or_else(|| addr.strip_prefix("https://"))
            .unwrap_or(addr)
            .trim_end_matches('/');
        if addr.is_empty() {
            continue;
        }
        if !addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        {
            return Err(Error::Config(format!(
                "{source}: namenode address '{addr}' is not host:port"
            )));
        }
        addrs.push(addr.to_string());
    }
    if addrs.is_empty() {
        return Err(Error::Config(format!("{source}: no namenode addresses")));
    }
    Ok(addrs)
}

/// `hostname-pid-random`: unique per process, and readable in the namenode's lease table.
pub fn new_client_id() -> ClientId {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    ClientId(format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn write(dir: &Path, rel: &str, addrs: &str) -> PathBuf {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(&path, format!("namenodes = [{addrs}]\n")).expect("write config");
        path
    }

    #[test]
    fn flag_beats_env_beats_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = write(dir.path(), "explicit.toml", "\"file:1\"");
        let cfg = cfg.to_string_lossy().to_string();
        let sys = dir.path().join("none.toml");
        let vars = env(&[("DFS_NAMENODES", "env:1, env:2"), ("DFS_CONFIG", &cfg)]);
        let c = discover_with(Some("flag:1,http://flag:2/"), &vars, &sys).expect("flag");
        assert_eq!(c.namenodes, ["flag:1", "flag:2"]);
        let c = discover_with(None, &vars, &sys).expect("env");
        assert_eq!(c.namenodes, ["env:1", "env:2"]);
        let c = discover_with(None, env(&[("DFS_CONFIG", &cfg)]), &sys).expect("file");
        assert_eq!(c.namenodes, ["file:1"]);
    }

    #[test]
    fn xdg_then_home_then_system_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let xdg = dir.path().join("xdg");
        let home = dir.path().join("home");
        let sys = write(dir.path(), "etc/client.toml", "\"sys:1\"");
        let vars = |x: &Path, h: &Path| {
            env(&[
                ("XDG_CONFIG_HOME", &x.to_string_lossy()),
                ("HOME", &h.to_string_lossy()),
            ])
        };
        assert_eq!(
            discover_with(None, vars(&xdg, &home), &sys)
                .expect("sys")
                .namenodes,
            ["sys:1"]
        );
        write(&home, ".config/dfs/client.toml", "\"home:1\"");
        assert_eq!(
            discover_with(None, vars(&xdg, &home), &sys)
                .expect("home")
                .namenodes,
            ["home:1"]
        );
        write(&xdg, "dfs/client.toml", "\"xdg:1\", \"xdg:2\"");
        assert_eq!(
            discover_with(None, vars(&xdg, &home), &sys)
                .expect("xdg")
                .namenodes,
            ["xdg:1", "xdg:2"]
        );
    }

    #[test]
    fn nothing_found_names_every_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sys = dir.path().join("etc/client.toml");
        let home = dir.path().join("home");
        let err = discover_with(None, env(&[("HOME", &home.to_string_lossy())]), &sys)
            .expect_err("nothing configured");
        let msg = err.to_string();
        for needle in [
            "--namenodes",
            "DFS_NAMENODES",
            "DFS_CONFIG",
            ".config/dfs/client.toml",
        ] {
            assert!(msg.contains(needle), "{msg} should mention {needle}");
        }
        assert!(msg.contains(&sys.to_string_lossy().to_string()));
    }

    #[test]
    fn bad_inputs_are_refused() {
        let sys = Path::new("/nonexistent/client.toml");
        assert!(discover_with(Some("nohost"), env(&[]), sys).is_err());
        assert!(discover_with(Some("h:notaport"), env(&[]), sys).is_err());
        let missing = env(&[("DFS_CONFIG", "/nonexistent/dfs.toml")]);
        assert!(matches!(
            discover_with(None, missing, sys),
            Err(Error::LocalIo { .. })
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "namenodes = 3\n").expect("write");
        let vars = env(&[("DFS_CONFIG", &bad.to_string_lossy())]);
        assert!(matches!(
            discover_with(None, vars, sys),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn file_timeouts_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "namenodes = [\"a:1\"]\nrequest_timeout_ms = 500\nfailover_timeout_ms = 2000\n",
        )
        .expect("write");
        let vars = env(&[("DFS_CONFIG", &path.to_string_lossy())]);
        let c = discover_with(None, vars, Path::new("/nonexistent")).expect("file");
        assert_eq!(c.request_timeout, Duration::from_millis(500));
        assert_eq!(c.failover_timeout, Duration::from_secs(2));
        assert!(c.client_id.0.split('-').count() >= 3);
    }

    #[test]
    fn tls_ca_comes_from_the_env_or_the_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "namenodes = [\"https://a:1\"]\ntls_ca = \"ca.pem\"\n",
        )
        .expect("write");
        let file = path.to_string_lossy().to_string();
        let sys = Path::new("/nonexistent");
        let c = discover_with(None, env(&[("DFS_CONFIG", &file)]), sys).expect("file");
        assert_eq!(c.tls_ca, Some(dir.path().join("ca.pem")));
        assert_eq!(
            c.namenodes,
            vec!["a:1".to_string()],
            "the scheme is dropped"
        );
        let vars = env(&[("DFS_CONFIG", &file), ("DFS_TLS_CA", "/etc/dfs/ca.pem")]);
        let c = discover_with(None, vars, sys).expect("file");
        assert_eq!(c.tls_ca, Some(PathBuf::from("/etc/dfs/ca.pem")));
        let c = discover_with(Some("a:1"), env(&[]), sys).expect("flag");
        assert_eq!(c.tls_ca, None);
    }

    #[test]
    fn secret_file_comes_from_the_env_or_the_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "namenodes = [\"a:1\"]\nsecret_file = \"secret\"\n").expect("write");
        let file = path.to_string_lossy().to_string();
        let sys = Path::new("/nonexistent");
        let c = discover_with(None, env(&[("DFS_CONFIG", &file)]), sys).expect("file");
        assert_eq!(c.secret_file, Some(dir.path().join("secret")));
        let vars = env(&[("DFS_CONFIG", &file), ("DFS_SECRET_FILE", "/etc/dfs/s")]);
        let c = discover_with(None, vars, sys).expect("file");
        assert_eq!(c.secret_file, Some(PathBuf::from("/etc/dfs/s")));
        let c = discover_with(Some("a:1"), env(&[]), sys).expect("flag");
        assert_eq!(c.secret_file, None);
    }

    #[test]
    fn local_reads_are_on_unless_the_env_or_the_config_file_says_false() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "namenodes = [\"a:1\"]\nlocal_reads = false\n").expect("write");
        let file = path.to_string_lossy().to_string();
        let sys = Path::new("/nonexistent");
        assert!(
            discover_with(Some("a:1"), env(&[]), sys)
                .expect("flag")
                .local_reads
        );
        let c = discover_with(None, env(&[("DFS_CONFIG", &file)]), sys).expect("file");
        assert!(!c.local_reads);
        let off = env(&[("DFS_LOCAL_READS", "false")]);
        assert!(
            !discover_with(Some("a:1"), off, sys)
                .expect("env")
                .local_reads
        );
        let on = env(&[("DFS_CONFIG", &file), ("DFS_LOCAL_READS", "1")]);
        assert!(discover_with(None, on, sys).expect("env").local_reads);
        let bad = env(&[("DFS_LOCAL_READS", "sometimes")]);
        let err = discover_with(Some("a:1"), bad, sys).expect_err("not a boolean");
        assert!(err.to_string().contains("DFS_LOCAL_READS"), "{err}");
    }
}
