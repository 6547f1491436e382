//! `dfs admin ha`: the namenode group's status (asked of every configured namenode, so an
//! unreachable one shows as such), and adding or removing a namenode at run time.

use crate::Client;
use clap::Subcommand;
use dfs_proto::NamenodeId;
use dfs_proto::rest::{
    Endpoint, HaAddNode, HaRemoveNode, HaStatus, HaStatusResponse, NamenodeRole,
};
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum HaCommand {
    /// Members, roles, term, commit and applied index, and each follower's lag.
    Status {
        /// Print every namenode's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add namenode ID at ADDR (host:port): it catches up as a learner, then becomes a voter.
    /// Start it first with `--node-id ID` and an empty data directory.
    Add { id: u64, addr: String },
    /// Remove namenode ID from the voters (stop it afterwards).
    Remove { id: u64 },
}

/// Runs one `dfs admin ha` command; false if it failed.
pub async fn run(client: &Client, command: HaCommand) -> bool {
    match command {
        HaCommand::Status { json } => status(client, json).await,
        HaCommand::Add { id, addr } => {
            let req = dfs_proto::rest::HaAddNodeRequest {
                id: NamenodeId(id),
                addr,
            };
            report(client.call::<HaAddNode>(&req).await, "add namenode")
        }
        HaCommand::Remove { id } => {
            let req = dfs_proto::rest::HaRemoveNodeRequest { id: NamenodeId(id) };
            report(client.call::<HaRemoveNode>(&req).await, "remove namenode")
        }
    }
}

fn report(result: crate::Result<HaStatusResponse>, what: &str) -> bool {
    match result {
        Ok(s) => {
            print!("{}", status_text(&s));
            true
        }
        Err(e) => {
            eprintln!("dfs: cannot {what}: {}", super::describe(&e));
            false
        }
    }
}

/// One namenode's answer to `GET /v1/ha/status`, asked directly (not through the leader).
async fn ask(http: &reqwest::Client, addr: &str) -> Result<HaStatusResponse, String> {
    let resp = http
        .get(format!("http://{addr}{}", HaStatus::PATH))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("answered {}", resp.status()));
    }
    resp.json().await.map_err(|e| e.to_string())
}

async fn status(client: &Client, json: bool) -> bool {
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            eprintln!("dfs: cannot build an HTTP client: {e}");
            return false;
        }
    };
    let mut answers = Vec::new();
    for addr in &client.config().namenodes {
        answers.push((addr.clone(), ask(&http, addr).await));
    }
    if json {
        let list: Vec<serde_json::Value> = answers
            .iter()
            .map(|(addr, a)| match a {
                Ok(s) => serde_json::json!({ "addr": addr, "status": s }),
                Err(e) => serde_json::json!({ "addr": addr, "error": e }),
            })
            .collect();
        return match serde_json::to_string_pretty(&list) {
            Ok(text) => {
                println!("{text}");
                true
            }
            Err(e) => {
                eprintln!("dfs: cannot format the status: {e}");
                false
            }
        };
    }
    let leader = answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().ok())
        .find(|s| s.role == NamenodeRole::Leader);
    match leader {
        Some(s) => print!("{}", status_text(s)),
        None => println!("no namenode answers as leader"),
    }
    println!();
    for (addr, answer) in &answers {
        match answer {
            Ok(s) => println!(
                "{addr}: namenode {} {}, term {}, commit {}, applied {}, snapshot {}",
                s.namenode,
                role_name(Some(&s.role)),
                s.term,
                index(s.commit_index),
                index(s.applied_index),
                index(s.snapshot_index),
            ),
            Err(e) => println!("{addr}: unreachable ({e})"),
        }
    }
    leader.is_some()
}

fn index(i: Option<u64>) -> String {
    i.map_or_else(|| "-".to_string(), |i| i.to_string())
}

fn role_name(role: Option<&NamenodeRole>) -> &'static str {
    match role {
        Some(NamenodeRole::Leader) => "leader",
        Some(NamenodeRole::Follower) => "follower",
        Some(NamenodeRole::Candidate) => "candidate",
        Some(NamenodeRole::Learner) => "learner",
        None => "?",
    }
}

/// The group as one namenode sees it (the leader's view has each member's lag).
pub fn status_text(s: &HaStatusResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "namenode {} is {} in term {}; leader {}; last log {}, commit {}, applied {}, snapshot {}",
        s.namenode,
        role_name(Some(&s.role)),
        s.term,
        s.leader
            .map_or_else(|| "unknown".to_string(), |l| l.to_string()),
        index(s.last_log_index),
        index(s.commit_index),
        index(s.applied_index),
        index(s.snapshot_index),
    );
    let _ = writeln!(
        out,
        "{:<4} {:<24} {:<10} {:<6} {:>8} {:>6}",
        "ID", "ADDRESS", "ROLE", "VOTER", "MATCHED", "LAG"
    );
    for m in &s.members {
        let _ = writeln!(
            out,
            "{:<4} {:<24} {:<10} {:<6} {:>8} {:>6}",
            m.id,
            m.addr,
            role_name(m.role.as_ref()),
            if m.voter { "yes" } else { "no" },
            index(m.matched),
            index(m.lag),
        );
    }
    out
}
