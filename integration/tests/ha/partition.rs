//! The partition test: three namenodes on their own loopback addresses (127.0.0.11-13; Raft
//! traffic leaves from the address a namenode listens on), the leader cut off from both
//! followers by iptables rules that a guard removes again (also when the test panics).
//! Clients connect from 127.0.0.1, so they still reach every namenode.

use super::status_with;
use anyhow::{Context, Result, bail, ensure};
use dfs_proto::rest::{self, Endpoint, HaStatusResponse, MkdirRequest, NamenodeRole};
use dfs_proto::{ApiError, ErrorCode, InodeId};
use integration::{bin, poll_until};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ELECTION: Duration = Duration::from_secs(60);

/// Namenode processes killed on drop.
struct Namenodes {
    children: Vec<Child>,
    addrs: Vec<String>,
    ips: Vec<Ipv4Addr>,
    _dir: tempfile::TempDir,
}

impl Drop for Namenodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Namenodes {
    fn start() -> Result<Namenodes> {
        let dir = tempfile::Builder::new().prefix("dfs-ha-part-").tempdir()?;
        let ips: Vec<Ipv4Addr> = (11..14).map(|d| Ipv4Addr::new(127, 0, 0, d)).collect();
        let mut addrs = Vec::new();
        for ip in &ips {
            let port = TcpListener::bind((*ip, 0))?.local_addr()?.port();
            addrs.push(format!("{ip}:{port}"));
        }
        let peers = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut children = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let data = dir.path().join(format!("nn{}", i + 1));
            let log = std::fs::File::create(dir.path().join(format!("nn{}.log", i + 1)))?;
            let child = Command::new(bin("dfs-namenode")?)
                .args(["--node-id", &(i + 1).to_string(), "--listen", addr])
                .args(["--peers", &peers, "--data-dir"])
                .arg(&data)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("start dfs-namenode")?;
            children.push(child);
        }
        Ok(Namenodes {
            children,
            addrs,
            ips,
            _dir: dir,
        })
    }

    fn logs(&self) -> String {
        (1..=3)
            .map(|i| {
                let text = std::fs::read_to_string(self._dir.path().join(format!("nn{i}.log")))
                    .unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "--- nn{i} ---\n{}\n",
                    lines[lines.len().saturating_sub(20)..].join("\n")
                )
            })
            .collect()
    }

    /// The index and status of a namenode that answers as leader, other than `not`.
    async fn leader(&self, not: Option<usize>) -> Result<(usize, HaStatusResponse)> {
        poll_until(ELECTION, || async {
            for (i, a) in self.addrs.iter().enumerate() {
                if Some(i) == not {
                    continue;
                }
                if let Some(s) = status_with(&reqwest::Client::new(), a).await
                    && s.role == NamenodeRole::Leader
                {
                    return Some((i, s));
                }
            }
            None
        })
        .await
        .with_context(|| format!("no leader\n{}", self.logs()))
    }
}

/// iptables DROP rules between two sets of addresses, removed on drop.
struct Partition {
    rules: Vec<(Ipv4Addr, Ipv4Addr)>,
}

fn iptables(op: &str, from: Ipv4Addr, to: Ipv4Addr) -> Result<()> {
    let out = Command::new("iptables")
        .args([op, "OUTPUT", "-s", &from.to_string(), "-d", &to.to_string()])
        .args(["-j", "DROP"])
        .output()
        .context("run iptables (apt package iptables; `make test-deps` installs it)")?;
    if !out.status.success() {
        bail!(
            "iptables {op} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Partition {
    fn cut(island: Ipv4Addr, rest: &[Ipv4Addr]) -> Result<Partition> {
        let mut p = Partition { rules: Vec::new() };
        for &other in rest {
            for (a, b) in [(island, other), (other, island)] {
                iptables("-I", a, b)?;
                p.rules.push((a, b));
            }
        }
        Ok(p)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        for &(a, b) in &self.rules {
            if let Err(e) = iptables("-D", a, b) {
                eprintln!("could not remove a partition rule {a} -> {b}: {e:#}");
            }
        }
    }
}

/// A direct mkdir at one namenode: its HTTP status and error body, if any.
async fn mkdir_at(
    http: &reqwest::Client,
    addr: &str,
    name: &str,
) -> Result<(u16, Option<ApiError>)> {
    let req = MkdirRequest {
        parent: InodeId::ROOT,
        name: name.to_string(),
        perm: 0o755,
        uid: 0,
        gid: 0,
    };
    let resp = http
        .post(format!("http://{addr}{}", rest::Mkdir::PATH))
        .json(&req)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.ok()))
}

/// A direct resolve at one namenode: its HTTP status and error body, if any.
async fn resolve_at(
    http: &reqwest::Client,
    addr: &str,
    path: &str,
) -> Result<(u16, Option<ApiError>)> {
    let resp = http
        .get(format!("http://{addr}{}", rest::Resolve::PATH))
        .query(&rest::ResolveRequest {
            path: path.to_string(),
        })
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.ok()))
}

pub async fn isolated_leader_cannot_commit() -> Result<()> {
    let nodes = Namenodes::start()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let client = dfs_client::Client::new(dfs_client::ClientConfig::new(nodes.addrs.clone()))?;
    let (old, before) = nodes.leader(None).await?;
    client.mkdir("/before", false).await?;

    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let partition = Partition::cut(
        nodes.ips[old],
        &others.iter().map(|&i| nodes.ips[i]).collect::<Vec<_>>(),
    )?;

    // The isolated leader cannot commit: its answer is an error, never success.
    let (status, body) = mkdir_at(&http, &nodes.addrs[old], "isolated").await?;
    ensure!(
        status != 200,
        "the isolated leader committed a change: {body:?}"
    );

    // The majority elects a new leader in a newer term and takes writes.
    let (new, after) = nodes.leader(Some(old)).await?;
    ensure!(others.contains(&new), "leader {new} is not in the majority");
    ensure!(
        after.term > before.term,
        "no new term: {} vs {}",
        after.term,
        before.term
    );
    client.mkdir("/after", false).await?;

    // The old leader never answers a read from its stale state.
    for path in ["/after", "/before"] {
        let (status, body) = resolve_at(&http, &nodes.addrs[old], path).await?;
        let code = body.map(|b| b.code);
        ensure!(
            status != 200 && matches!(code, Some(ErrorCode::Unavailable | ErrorCode::NotLeader)),
            "the isolated namenode answered {path} with {status} {code:?}"
        );
    }

    // Healed: the old leader follows the new term; the change it could not commit is gone.
    drop(partition);
    let addr = nodes.addrs[old].clone();
    poll_until(ELECTION, || async {
        let s = status_with(&reqwest::Client::new(), &addr).await?;
        (s.role == NamenodeRole::Follower && s.term >= after.term).then_some(())
    })
    .await
    .with_context(|| format!("old leader did not rejoin\n{}", nodes.logs()))?;
    client.resolve("/before").await?;
    client.resolve("/after").await?;
    let isolated = client.resolve("/isolated").await;
    ensure!(
        isolated.as_ref().err().and_then(|e| e.code()) == Some(ErrorCode::NotFound),
        "a change the isolated leader could not commit appeared: {isolated:?}"
    );
    Ok(())
}
