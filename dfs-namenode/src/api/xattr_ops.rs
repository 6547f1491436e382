//! Handlers for the extended attribute endpoints: sets and removes are Raft proposals, gets
//! and lists read the local state machine after a linearizability check.

use super::AppState;
use crate::namespace::{Command, Reply};
use crate::node::unexpected;
use dfs_proto::ApiError;
use dfs_proto::rest::{Empty, InodeRequest, SetXattrRequest, XattrNames, XattrRequest, XattrValue};

fn empty(reply: Reply) -> Result<Empty, ApiError> {
    match reply {
        Reply::Empty => Ok(Empty {}),
        other => Err(unexpected(other)),
    }
}

pub async fn get_xattr(node: AppState, req: XattrRequest) -> Result<XattrValue, ApiError> {
    let who = super::caller::current();
    let value = node
        .read(|ns| ns.get_xattr_as(&who, req.ino, &req.name))
        .await?;
    Ok(XattrValue { value })
}

pub async fn list_xattr(node: AppState, req: InodeRequest) -> Result<XattrNames, ApiError> {
    let names = node.read(|ns| ns.list_xattr(req.ino)).await?;
    Ok(XattrNames { names })
}

pub async fn set_xattr(node: AppState, req: SetXattrRequest) -> Result<Empty, ApiError> {
    let cmd = Command::SetXattr {
        ino: req.ino,
        name: req.name,
        value: req.value,
        mode: req.mode,
    };
    empty(node.propose(cmd).await?)
}

pub async fn remove_xattr(node: AppState, req: XattrRequest) -> Result<Empty, ApiError> {
    let cmd = Command::RemoveXattr {
        ino: req.ino,
        name: req.name,
    };
    empty(node.propose(cmd).await?)
}
