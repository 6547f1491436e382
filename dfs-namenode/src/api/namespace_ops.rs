//! Handlers for the namespace endpoints: names and paths are validated here (so a bad name is
//! `EINVAL`/`ENAMETOOLONG`), mutations become Raft proposals (carrying the caller, see
//! [`super::caller`]), reads run on the local state machine after a linearizability check, with
//! the caller's permissions checked.

use super::AppState;
use super::caller;
use crate::namespace::{Command, Reply};
use crate::node::unexpected;
use dfs_proto::rest::{
    AccessRequest, AllocateBlockRequest, Attr, ClusterInfoResponse, CommitRequest, CreateRequest,
    Empty, EntryRequest, FileBlocks, GetBlocksRequest, InodeRequest, LeaseRequest, LinkRequest,
    LocatedBlock, LookupRequest, MkdirRequest, OpenWriteResponse, ReadDirRequest, ReadDirResponse,
    ReadLinkResponse, RenameRequest, RenewLeaseRequest, ResolveRequest, SetAttrRequest,
    SymlinkRequest,
};
use dfs_proto::{ApiError, ClientId, DfsPath, ErrorCode, InodeId, Name, NamenodeId};

/// Most directory entries one readdir page answers.
const READDIR_MAX: u32 = 1000;

fn attr(reply: Reply) -> Result<Attr, ApiError> {
    match reply {
        Reply::Attr(a) => Ok(a),
        other => Err(unexpected(other)),
    }
}

fn empty(reply: Reply) -> Result<Empty, ApiError> {
    match reply {
        Reply::Empty => Ok(Empty {}),
        other => Err(unexpected(other)),
    }
}

pub async fn cluster_info(node: AppState, _: Empty) -> Result<ClusterInfoResponse, ApiError> {
    Ok(ClusterInfoResponse {
        namenode: NamenodeId(node.id),
        role: node.role(),
        leader: node.leader_addr(),
        default_block_size: node.settings.block_size,
        replication: node.settings.replication,
        lease_ms: node.settings.lease_ms,
    })
}

pub async fn getattr(node: AppState, req: InodeRequest) -> Result<Attr, ApiError> {
    node.read(|ns| ns.getattr(req.ino)).await
}

pub async fn access(node: AppState, req: AccessRequest) -> Result<Attr, ApiError> {
    let who = caller::current();
    node.read(|ns| ns.access(&who, req.ino, req.mask)).await
}

pub async fn lookup(node: AppState, req: LookupRequest) -> Result<Attr, ApiError> {
    let name = Name::new(req.name)?;
    let who = caller::current();
    node.read(|ns| ns.lookup_as(&who, req.parent, &name)).await
}

pub async fn resolve(node: AppState, req: ResolveRequest) -> Result<Attr, ApiError> {
    let path = DfsPath::parse(&req.path)?;
    let who = caller::current();
    node.read(|ns| ns.resolve_as(&who, &path)).await
}

pub async fn readdir(node: AppState, req: ReadDirRequest) -> Result<ReadDirResponse, ApiError> {
    let limit = req.limit.unwrap_or(READDIR_MAX).min(READDIR_MAX) as usize;
    let who = caller::current();
    node.read(|ns| ns.readdir_as(&who, req.ino, req.after.as_deref(), limit))
        .await
}

pub async fn readlink(node: AppState, req: InodeRequest) -> Result<ReadLinkResponse, ApiError> {
    let target = node.read(|ns| ns.readlink(req.ino)).await?;
    Ok(ReadLinkResponse { target })
}

/// Refuses a new write lease to a client that holds `max_leases_per_client` already (`EMFILE`).
/// Checked against the applied state before proposing, so concurrent opens may overshoot the cap
/// by the few still in flight; it bounds what one client can hold, it is not an exact quota.
fn check_lease_cap(
    node: &AppState,
    client: &ClientId,
    ino: Option<InodeId>,
) -> Result<(), ApiError> {
    let cap = node.settings.max_leases_per_client as usize;
    let held = node.state.read(|ns| ns.leases_held(client, ino));
    if held >= cap {
        return Err(ApiError::new(
            ErrorCode::TooManyOpen,
            format!(
                "client {client} already holds {held} write leases (files open for writing), the \
                 most one client may hold (max_leases_per_client = {cap}); close some files first"
            ),
        ));
    }
    Ok(())
}

pub async fn create(node: AppState, req: CreateRequest) -> Result<Attr, ApiError> {
    if let Some(client) = &req.lease {
        check_lease_cap(&node, client, None)?;
    }
    let cmd = Command::Create {
        parent: req.parent,
        name: Name::new(req.name)?,
        kind: req.kind,
        perm: req.perm,
        uid: req.uid,
        gid: req.gid,
        lease: req.lease,
    };
    attr(node.propose(cmd).await?)
}

pub async fn mkdir(node: AppState, req: MkdirRequest) -> Result<Attr, ApiError> {
    let cmd = Command::Mkdir {
        parent: req.parent,
        name: Name::new(req.name)?,
        perm: req.perm,
        uid: req.uid,
        gid: req.gid,
    };
    attr(node.propose(cmd).await?)
}

pub async fn symlink(node: AppState, req: SymlinkRequest) -> Result<Attr, ApiError> {
    let cmd = Command::Symlink {
        parent: req.parent,
        name: Name::new(req.name)?,
        target: req.target,
        uid: req.uid,
        gid: req.gid,
    };
    attr(node.propose(cmd).await?)
}

pub async fn link(node: AppState, req: LinkRequest) -> Result<Attr, ApiError> {
    let cmd = Command::Link {
        ino: req.ino,
        new_parent: req.new_parent,
        new_name: Name::new(req.new_name)?,
    };
    attr(node.propose(cmd).await?)
}

pub async fn unlink(node: AppState, req: EntryRequest) -> Result<Attr, ApiError> {
    let cmd = Command::Unlink {
        parent: req.parent,
        name: Name::new(req.name)?,
    };
    attr(node.propose(cmd).await?)
}

pub async fn rmdir(node: AppState, req: EntryRequest) -> Result<Empty, ApiError> {
    let cmd = Command::Rmdir {
        parent: req.parent,
        name: Name::new(req.name)?,
    };
    empty(node.propose(cmd).await?)
}

pub async fn rename(node: AppState, req: RenameRequest) -> Result<Empty, ApiError> {
    let cmd = Command::Rename {
        parent: req.parent,
        name: Name::new(req.name)?,
        new_parent: req.new_parent,
        new_name: Name::new(req.new_name)?,
        noreplace: req.noreplace,
        exchange: req.exchange,
    };
    empty(node.propose(cmd).await?)
}

pub async fn setattr(node: AppState, req: SetAttrRequest) -> Result<Attr, ApiError> {
    let cmd = Command::SetAttr {
        ino: req.ino,
        perm: req.perm,
        uid: req.uid,
        gid: req.gid,
        size: req.size,
        atime: req.atime,
        mtime: req.mtime,
        client: req.client,
    };
    attr(node.propose(cmd).await?)
}

pub async fn open_write(node: AppState, req: LeaseRequest) -> Result<OpenWriteResponse, ApiError> {
    check_lease_cap(&node, &req.client, Some(req.ino))?;
    let cmd = Command::OpenWrite {
        ino: req.ino,
        client: req.client,
    };
    match node.propose(cmd).await? {
        Reply::OpenWrite(r) => Ok(r),
        other => Err(unexpected(other)),
    }
}

pub async fn renew_lease(node: AppState, req: RenewLeaseRequest) -> Result<Empty, ApiError> {
    empty(
        node.propose(Command::RenewLease { client: req.client })
            .await?,
    )
}

pub async fn release_lease(node: AppState, req: LeaseRequest) -> Result<Empty, ApiError> {
    let cmd = Command::ReleaseLease {
        ino: req.ino,
        client: req.client,
    };
    empty(node.propose(cmd).await?)
}

pub async fn allocate_block(
    node: AppState,
    req: AllocateBlockRequest,
) -> Result<LocatedBlock, ApiError> {
    node.require_leader()?;
    let locations = super::block_ops::pipeline(&node, &req.exclude)?;
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

pub async fn commit(node: AppState, req: CommitRequest) -> Result<Attr, ApiError> {
    let cmd = Command::Commit {
        ino: req.ino,
        client: req.client,
        blocks: req.blocks,
        size: req.size,
        release: req.release,
    };
    attr(node.propose(cmd).await?)
}

pub async fn get_blocks(node: AppState, req: GetBlocksRequest) -> Result<FileBlocks, ApiError> {
    let who = caller::current();
    let (attr, blocks) = node.read(|ns| ns.file_blocks_as(&who, req.ino)).await?;
    let block_size = attr.block_size.max(1);
    let end = if req.len == 0 {
        attr.size
    } else {
        req.offset.saturating_add(req.len).min(attr.size)
    };
    let live = node.datanodes.live_addrs();
    let map = node.blocks();
    let located = blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.is_hole())
        .filter_map(|(i, b)| {
            let index = i as u64;
            let start = index.saturating_mul(block_size);
            let stop = start.saturating_add(b.len);
            (start < end && stop > req.offset).then(|| LocatedBlock {
                index,
                block: *b,
                locations: map
                    .holders(b)
                    .iter()
                    .filter_map(|id| live.get(id).cloned())
                    .collect(),
                token: None,
            })
        })
        .map(|l| node.security.grant_read(l))
        .collect::<Vec<_>>();
    if let Some(left) = node.datanodes.still_learning()
        && located.iter().any(|l| l.locations.is_empty())
    {
        // Not missing yet: the datanodes holding it may not have reported to this namenode.
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "the namenode started recently and is still learning replica locations from \
                 block reports (for at most {:.0} s more); retry",
                left.as_secs_f64().ceil()
            ),
        ));
    }
    Ok(FileBlocks {
        size: attr.size,
        block_size: attr.block_size,
        data_version: attr.data_version,
        blocks: located,
        attr: Some(attr),
    })
}
