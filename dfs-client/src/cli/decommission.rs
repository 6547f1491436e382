//! `dfs admin decommission NODE`: starts draining a datanode (by id or gRPC address). The
//! namenode copies every replica it holds to other datanodes; `dfs admin report` shows it as
//! `decommissioning` until that is done, then `decommissioned` (safe to remove). Reads keep
//! working throughout. With `--wait`, the command polls until the node is decommissioned.

use super::describe;
use crate::Client;
use dfs_proto::rest::{AdminReport, DatanodeState, Decommission, DecommissionRequest, Empty};
use std::time::Duration;

/// How often `--wait` polls the report.
const POLL: Duration = Duration::from_secs(1);

/// Answers whether the command succeeded.
pub async fn run(client: &Client, datanode: String, wait: bool) -> bool {
    let req = DecommissionRequest {
        datanode: datanode.clone(),
    };
    let node = match client.call::<Decommission>(&req).await {
        Ok(node) => node,
        Err(e) => {
            eprintln!("dfs: cannot decommission '{datanode}': {}", describe(&e));
            return false;
        }
    };
    println!(
        "Datanode {} ({}): {} replicas, {}",
        node.id,
        node.grpc_addr,
        node.blocks,
        state_text(node.state)
    );
    if !wait || node.state == DatanodeState::Decommissioned {
        return true;
    }
    loop {
        tokio::time::sleep(POLL).await;
        let report = match client.call::<AdminReport>(&Empty {}).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("dfs: cannot get the cluster report: {}", describe(&e));
                return false;
            }
        };
        match report.datanodes.iter().find(|d| d.id == node.id) {
            Some(d) if d.state == DatanodeState::Decommissioned => {
                println!("Datanode {} decommissioned: safe to remove", d.id);
                return true;
            }
            Some(d) if d.state == DatanodeState::Dead => {
                eprintln!(
                    "dfs: datanode {} died while decommissioning; its blocks are re-replicated \
                     as for any dead datanode",
                    d.id
                );
                return false;
            }
            Some(_) => {}
            None => {
                eprintln!("dfs: datanode {} is no longer known", node.id);
                return false;
            }
        }
    }
}

fn state_text(state: DatanodeState) -> &'static str {
    match state {
        DatanodeState::Live => "live",
        DatanodeState::Dead => "dead",
        DatanodeState::Decommissioning => "decommissioning",
        DatanodeState::Decommissioned => "decommissioned",
    }
}
