//! `dfs fsck` and `dfs admin decommission`: the health of the files under a path, block by
//! block, and the start of a datanode's drain.

use super::AppState;
use crate::datanodes::{AdminState, DatanodeInfo};
use crate::namespace::Namespace;
use dfs_proto::rest::{
    BlockHealth, BlockInfo, DatanodeReport, DatanodeState, DecommissionRequest, FileKind,
    FsckProblem, FsckReport, FsckRequest,
};
use dfs_proto::{ApiError, DfsPath, ErrorCode, InodeId};
use std::collections::HashMap;
use std::time::Instant;

/// Most problem blocks one fsck answer lists.
const PROBLEMS_MAX: u32 = 10_000;
/// Directory entries read per page while walking.
const PAGE: usize = 1000;

/// One committed block of a file under the path.
struct FileBlock {
    path: String,
    index: u64,
    block: BlockInfo,
}

/// What the walk of the namespace found.
#[derive(Default)]
struct Walk {
    files: u64,
    directories: u64,
    bytes: u64,
    blocks: Vec<FileBlock>,
}

/// Walks the subtree at `root` (a file or a directory), depth first.
fn walk(ns: &Namespace, root: &DfsPath) -> Result<Walk, ApiError> {
    let attr = ns.resolve(root)?;
    let mut out = Walk::default();
    let mut stack = vec![(root.to_string(), attr.ino, attr.kind)];
    while let Some((path, ino, kind)) = stack.pop() {
        match kind {
            FileKind::File => {
                let (attr, blocks) = ns.file_blocks(ino)?;
                out.files += 1;
                out.bytes += attr.size;
                for (i, block) in blocks.into_iter().enumerate() {
                    if !block.is_hole() {
                        out.blocks.push(FileBlock {
                            path: path.clone(),
                            index: i as u64,
                            block,
                        });
                    }
                }
            }
            FileKind::Dir => {
                out.directories += 1;
                push_children(ns, &path, ino, &mut stack)?;
            }
            FileKind::Symlink | FileKind::Fifo => {}
        }
    }
    Ok(out)
}

fn push_children(
    ns: &Namespace,
    path: &str,
    ino: InodeId,
    stack: &mut Vec<(String, InodeId, FileKind)>,
) -> Result<(), ApiError> {
    let mut after: Option<String> = None;
    loop {
        let page = ns.readdir(ino, after.as_deref(), PAGE)?;
        for e in &page.entries {
            let child = if path == "/" {
                format!("/{}", e.name)
            } else {
                format!("{path}/{}", e.name)
            };
            stack.push((child, e.attr.ino, e.attr.kind));
        }
        if !page.more {
            return Ok(());
        }
        after = page.entries.last().map(|e| e.name.clone());
    }
}

pub async fn fsck(node: AppState, req: FsckRequest) -> Result<FsckReport, ApiError> {
    let path = DfsPath::parse(req.path.as_deref().unwrap_or("/"))?;
    let limit = req.limit.unwrap_or(PROBLEMS_MAX).min(PROBLEMS_MAX) as usize;
    let found = node.read(|ns| walk(ns, &path)).await?;
    let nodes: HashMap<_, _> = node
        .datanodes
        .all()
        .into_iter()
        .map(|(i, live)| (i.id.clone(), (i, live)))
        .collect();
    let live = |id: &dfs_proto::DatanodeId| nodes.get(id).is_some_and(|(_, l)| *l);
    let counts = |id: &dfs_proto::DatanodeId| {
        nodes
            .get(id)
            .is_some_and(|(i, l)| *l && i.admin == AdminState::Normal)
    };
    let wanted = node.settings.replication;
    let mut report = FsckReport {
        path: path.to_string(),
        files: found.files,
        directories: found.directories,
        blocks: found.blocks.len() as u64,
        bytes: found.bytes,
        replicas: 0,
        replication: wanted,
        missing: 0,
        corrupt: 0,
        under_replicated: 0,
        over_replicated: 0,
        pending_replications: 0,
        problems: Vec::new(),
        problems_omitted: 0,
    };
    let mut map = node.blocks();
    let now = Instant::now();
    for fb in &found.blocks {
        let good: Vec<_> = map
            .holders(&fb.block)
            .into_iter()
            .filter(|n| live(n))
            .collect();
        let counting = good.iter().filter(|n| counts(n)).count() as u32;
        let corrupt = map
            .corrupt_holders(&fb.block)
            .iter()
            .filter(|n| live(n))
            .count() as u32;
        report.pending_replications += map.pending_targets(&fb.block, now).len() as u64;
        report.replicas += good.len() as u64;
        let health = if good.is_empty() && corrupt > 0 {
            report.corrupt += 1;
            Some(BlockHealth::Corrupt)
        } else if good.is_empty() {
            report.missing += 1;
            Some(BlockHealth::Missing)
        } else if counting < wanted {
            report.under_replicated += 1;
            Some(BlockHealth::UnderReplicated)
        } else {
            if counting > wanted {
                report.over_replicated += 1;
            }
            None
        };
        if let Some(health) = health {
            if report.problems.len() < limit {
                report.problems.push(FsckProblem {
                    path: fb.path.clone(),
                    index: fb.index,
                    block: fb.block,
                    health,
                    live: good.len() as u32,
                    corrupt,
                    wanted,
                });
            } else {
                report.problems_omitted += 1;
            }
        }
    }
    Ok(report)
}

/// Starts decommissioning a datanode (by id or gRPC address). Idempotent: a node already
/// draining or drained is answered as it is.
pub async fn decommission(
    node: AppState,
    req: DecommissionRequest,
) -> Result<DatanodeReport, ApiError> {
    node.require_leader()?;
    let all = node.datanodes.all();
    let Some((info, live)) = all
        .iter()
        .find(|(i, _)| i.id.0 == req.datanode || i.grpc_addr == req.datanode)
        .cloned()
    else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no datanode {} is known", req.datanode),
        ));
    };
    let mut admin = info.admin;
    if admin == AdminState::Normal {
        admin = AdminState::Decommissioning;
        node.datanodes.set_admin(&info.id, admin);
        tracing::info!(datanode = %info.id, "decommission started");
    }
    let blocks = node.blocks().replica_count(&info.id);
    Ok(report_of(&info, live, admin, blocks))
}

fn report_of(info: &DatanodeInfo, live: bool, admin: AdminState, blocks: u64) -> DatanodeReport {
    DatanodeReport {
        id: info.id.clone(),
        grpc_addr: info.grpc_addr.clone(),
        http_addr: info.http_addr.clone(),
        state: match (live, admin) {
            (false, _) => DatanodeState::Dead,
            (true, AdminState::Normal) => DatanodeState::Live,
            (true, AdminState::Decommissioning) => DatanodeState::Decommissioning,
            (true, AdminState::Decommissioned) => DatanodeState::Decommissioned,
        },
        capacity: info.capacity,
        used: info.used,
        remaining: info.remaining,
        blocks,
        active_transfers: info.active_transfers,
        last_heartbeat_ms: u64::try_from(info.last_heartbeat.elapsed().as_millis())
            .unwrap_or(u64::MAX),
    }
}
