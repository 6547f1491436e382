//! `dfs admin ha`: the namenode group's status (asked of every configured namenode, so an
//! unreachable one shows as such), adding or removing a namenode at run time, and promoting the
//! survivor of a two-namenode group.

use crate::Client;
use clap::Subcommand;
use dfs_proto::NamenodeId;
use dfs_proto::rest::{
    Empty, HaAddNode, HaPromote, HaRemoveNode, HaStatus, HaStatusResponse, NamenodeRole,
};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

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
    /// Make the namenode at ADDR (host:port) the only voter of a two-namenode group whose other
    /// namenode is down. Refused while the other still accepts connections. Risk: if the other
    /// is alive but cut off, both may take writes and diverge; never start it again on its old
    /// data directory (empty it and `dfs admin ha add` it back). See docs/OPERATIONS.md.
    Promote { addr: String },
}

/// How long `promote` waits for the promoted namenode to lead.
const PROMOTE_WAIT: Duration = Duration::from_secs(60);

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
        HaCommand::Promote { addr } => promote(client, &addr).await,
    }
}

/// Asks `addr` to promote itself, then waits until it answers as leader.
async fn promote(client: &Client, addr: &str) -> bool {
    if let Err(e) = client.call_at::<HaPromote>(addr, &Empty {}).await {
        // The namenode's own words say why (the other still runs, not two voters, ...).
        eprintln!("dfs: cannot promote {addr}: {e}");
        return false;
    }
    let deadline = Instant::now() + PROMOTE_WAIT;
    loop {
        match client.call_at::<HaStatus>(addr, &Empty {}).await {
            Ok(s) if s.role == NamenodeRole::Leader => {
                print!("{}", status_text(&s));
                return true;
            }
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(s) => {
                eprintln!(
                    "dfs: {addr} accepted the promotion but is {} after {PROMOTE_WAIT:?}",
                    role_name(Some(&s.role))
                );
                return false;
            }
            Err(e) => {
                eprintln!(
                    "dfs: {addr} accepted the promotion but does not answer: {}",
                    super::describe(&e)
                );
                return false;
            }
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

async fn status(client: &Client, json: bool) -> bool {
    let mut answers = Vec::new();
    // Each namenode is asked about itself (with the cluster credential), so one that is down
    // or cut off shows as such.
    for addr in &client.config().namenodes {
        let answer = client.call_at::<HaStatus>(addr, &Empty {}).await;
        answers.push((addr.clone(), answer.map_err(|e| super::describe(&e))));
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
