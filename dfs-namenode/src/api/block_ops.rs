//! Handlers for data-integrity traffic about single blocks: bad replicas reported by readers and
//! datanode scrubbers, and pipeline recovery for a writer whose datanode failed mid-block.

use super::AppState;
use crate::events::EventKind;
use crate::namespace::{Command, Reply};
use crate::node::unexpected;
use crate::placement::{PlacementError, choose_pipeline};
use dfs_proto::rest::{
    DatanodeAddr, Empty, LocatedBlock, RecoverBlockRequest, ReportBadReplicasRequest,
};
use dfs_proto::{ApiError, DatanodeId, ErrorCode};

/// Marks the reported replicas corrupt: readers no longer get them, and the replication monitor
/// copies each block from a good replica before deleting the bad one. Unknown replicas are
/// ignored (the report may race a deletion).
pub async fn report_bad_replicas(
    node: AppState,
    req: ReportBadReplicasRequest,
) -> Result<Empty, ApiError> {
    node.require_leader()?;
    let mut map = node.blocks();
    for bad in &req.replicas {
        let known = map.mark_corrupt(&bad.datanode, bad.block);
        tracing::warn!(
            block = %bad.block.id,
            generation = bad.block.generation.0,
            datanode = %bad.datanode,
            known,
            "replica reported corrupt"
        );
        if known {
            node.events.push(
                EventKind::CorruptReplica,
                format!(
                    "replica of block {} (generation {}) on datanode {} reported corrupt",
                    bad.block.id, bad.block.generation.0, bad.datanode
                ),
            );
        }
    }
    Ok(Empty {})
}

/// Allocates a fresh generation of block `index` on a pipeline without the failed datanodes.
/// The old generation stays pending in the lease until it ends, when its partial replicas are
/// deleted; a commit can only name the new one.
pub async fn recover_block(
    node: AppState,
    req: RecoverBlockRequest,
) -> Result<LocatedBlock, ApiError> {
    node.require_leader()?;
    let min = node.blocks().policy.min_replicas.max(1);
    let locations = pipeline(&node, &req.failed)?;
    if locations.len() < min as usize {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "only {} datanode(s) left to write block {} of inode {}; the minimum is {min}",
                locations.len(),
                req.index,
                req.ino
            ),
        ));
    }
    tracing::info!(
        ino = %req.ino,
        index = req.index,
        old_block = %req.block.id,
        old_generation = req.block.generation.0,
        failed = ?req.failed,
        pipeline = ?locations,
        "recovering a write pipeline"
    );
    let cmd = Command::AllocateBlock {
        ino: req.ino,
        client: req.client,
        index: req.index,
        locations,
    };
    match node.propose(cmd).await? {
        Reply::Located(l) => Ok(node.security.grant_write(l)),
        other => Err(unexpected(other)),
    }
}

/// A pipeline of distinct live datanodes with room for a block, none of them in `exclude`.
pub(super) fn pipeline(
    node: &AppState,
    exclude: &[DatanodeId],
) -> Result<Vec<DatanodeAddr>, ApiError> {
    let live = node.datanodes.live();
    choose_pipeline(
        &live,
        node.settings.block_size,
        node.settings.replication,
        exclude,
        &mut rand::rng(),
    )
    .map_err(|e| match e {
        PlacementError::NoLiveDatanodes => ApiError::new(ErrorCode::Unavailable, e.to_string()),
        PlacementError::NoSpace(_) => ApiError::new(ErrorCode::NoSpace, e.to_string()),
    })
}
