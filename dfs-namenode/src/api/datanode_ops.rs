//! Handlers for datanode traffic (registration, heartbeats, block reports) and the cluster-wide
//! reports (`statfs`, `admin report`). Every namenode accepts datanode traffic so that a new
//! leader already knows the cluster; only the leader hands out commands.

use super::AppState;
use crate::events::EventKind;
use crate::namespace::ReplicaStatus;
use dfs_proto::rest::{
    BlockInfo, BlockReportRequest, ClusterReport, CommandPollRequest, CommandPollResponse,
    DatanodeCommand, DatanodeReport, Empty, HeartbeatRequest, HeartbeatResponse,
    IncrementalBlockReportRequest, RegisterDatanodeRequest, RegisterDatanodeResponse,
    StatFsResponse,
};
use dfs_proto::{ApiError, DatanodeId, NamenodeId};
use std::time::Duration;

pub async fn register(
    node: AppState,
    req: RegisterDatanodeRequest,
) -> Result<RegisterDatanodeResponse, ApiError> {
    node.datanodes.register(&req);
    tracing::info!(datanode = %req.id, grpc = %req.grpc_addr, "datanode registered");
    node.events.push(
        EventKind::DatanodeRegistered,
        format!("datanode {} registered (gRPC {})", req.id, req.grpc_addr),
    );
    Ok(RegisterDatanodeResponse {
        namenode: NamenodeId(node.id),
    })
}

pub async fn heartbeat(
    node: AppState,
    req: HeartbeatRequest,
) -> Result<HeartbeatResponse, ApiError> {
    // Read before deciding on commands: a term that moves on meanwhile only makes datanodes
    // ignore these commands, never accept a deposed leader's.
    let term = node.term();
    node.metrics.heartbeats.increment(1);
    if !node.datanodes.heartbeat(&req) {
        return Ok(HeartbeatResponse {
            reregister: true,
            commands: Vec::new(),
            term,
        });
    }
    let commands = take_commands(&node, &req.id);
    Ok(HeartbeatResponse {
        reregister: false,
        commands,
        term,
    })
}

/// The commands queued for datanode `id`, handed out once; none unless this namenode leads.
fn take_commands(node: &AppState, id: &DatanodeId) -> Vec<DatanodeCommand> {
    if !node.is_leader() {
        return Vec::new();
    }
    let (deletes, replications) = {
        let mut map = node.blocks();
        (map.take_deletes(id), map.take_replications(id))
    };
    let mut commands = Vec::new();
    if !deletes.is_empty() {
        tracing::debug!(datanode = %id, count = deletes.len(), "handing out deletes");
        commands.push(DatanodeCommand::Delete { blocks: deletes });
    }
    commands.extend(
        replications
            .into_iter()
            .map(|c| node.security.grant_command(c)),
    );
    commands
}

/// Answers as soon as the leader has commands for the datanode, or with none once the asked
/// wait (at most half the request timeout) runs out or the namenode stops. Heartbeat answers
/// hand out the same queue, so each command goes out once, to whichever asks first.
pub async fn command_poll(
    node: AppState,
    req: CommandPollRequest,
) -> Result<CommandPollResponse, ApiError> {
    let wait = Duration::from_millis(req.wait_ms).min(node.settings.request_timeout / 2);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Registered before looking, so commands queued in between still wake this poll.
        let ready = node.commands_ready.notified();
        tokio::pin!(ready);
        ready.as_mut().enable();
        // Read before taking commands, as in `heartbeat`.
        let term = node.term();
        let commands = take_commands(&node, &req.id);
        if !commands.is_empty()
            || tokio::time::Instant::now() >= deadline
            || node.restart.is_cancelled()
        {
            return Ok(CommandPollResponse { commands, term });
        }
        tokio::select! {
            _ = ready => {}
            _ = tokio::time::sleep_until(deadline) => {}
            // Stopping (or restarting the Raft node): answer now rather than hold the shutdown.
            _ = node.restart.cancelled() => {}
        }
    }
}

/// Classifies replicas against the local namespace (its lock is released before the block map
/// is touched).
fn classify(node: &AppState, blocks: Vec<BlockInfo>) -> Vec<(BlockInfo, ReplicaStatus)> {
    node.state.read(|ns| {
        blocks
            .into_iter()
            .map(|b| {
                let status = ns.replica_status(b.id, b.generation);
                (b, status)
            })
            .collect()
    })
}

pub async fn block_report(node: AppState, req: BlockReportRequest) -> Result<Empty, ApiError> {
    let count = req.blocks.len();
    node.metrics.full_reports.increment(1);
    let report = classify(&node, req.blocks);
    node.blocks().full_report(&req.id, &report);
    tracing::info!(datanode = %req.id, replicas = count, "full block report");
    Ok(Empty {})
}

pub async fn incremental_block_report(
    node: AppState,
    req: IncrementalBlockReportRequest,
) -> Result<Empty, ApiError> {
    node.metrics.incremental_reports.increment(1);
    let received = classify(&node, req.received);
    node.blocks()
        .incremental_report(&req.id, &received, &req.deleted);
    Ok(Empty {})
}

pub async fn statfs(node: AppState, _: Empty) -> Result<StatFsResponse, ApiError> {
    let inodes = node.read(|ns| Ok(ns.stats().inodes)).await?;
    let live = node.datanodes.live();
    Ok(StatFsResponse {
        capacity: live.iter().fold(0, |a, d| a.saturating_add(d.capacity)),
        used: live.iter().fold(0, |a, d| a.saturating_add(d.used)),
        remaining: live.iter().fold(0, |a, d| a.saturating_add(d.remaining)),
        inodes,
        default_block_size: node.settings.block_size,
        replication: node.settings.replication,
    })
}

pub async fn admin_report(node: AppState, _: Empty) -> Result<ClusterReport, ApiError> {
    let stats = node.read(|ns| Ok(ns.stats())).await?;
    let health = crate::metrics::BlockHealth::measure(&node);
    let all = node.datanodes.all();
    let map = node.blocks();
    let now = std::time::Instant::now();
    let datanodes: Vec<DatanodeReport> = all
        .iter()
        .map(|(d, is_live)| DatanodeReport {
            id: d.id.clone(),
            grpc_addr: d.grpc_addr.clone(),
            http_addr: d.http_addr.clone(),
            state: crate::metrics::datanode_state(*is_live, d.admin),
            capacity: d.capacity,
            used: d.used,
            remaining: d.remaining,
            blocks: map.replica_count(&d.id),
            active_transfers: d.active_transfers,
            last_heartbeat_ms: u64::try_from(
                now.saturating_duration_since(d.last_heartbeat).as_millis(),
            )
            .unwrap_or(u64::MAX),
        })
        .collect();
    let live_nodes = all.iter().filter(|(_, l)| *l).map(|(d, _)| d);
    let (mut capacity, mut used, mut remaining) = (0u64, 0u64, 0u64);
    for d in live_nodes {
        capacity = capacity.saturating_add(d.capacity);
        used = used.saturating_add(d.used);
        remaining = remaining.saturating_add(d.remaining);
    }
    Ok(ClusterReport {
        datanodes,
        capacity,
        used,
        remaining,
        blocks: health.blocks,
        under_replicated: health.under_replicated,
        missing: health.missing,
        files: stats.files,
        directories: stats.directories,
    })
}
