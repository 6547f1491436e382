//! The namespace: the deterministic state machine that the Raft log drives.
//!
//! Every mutation is a [`Command`] wrapped in a [`Proposal`] that carries the leader's clock, so
//! that every namenode applying the same log reaches the same state (times, inode ids, block ids
//! and generation stamps are all decided here, from the proposal and the counters in the state).
//! [`Namespace::apply`] validates and applies one command; a refused command changes nothing and
//! answers an [`ApiError`]. Reads are plain methods on the current state.
//!
//! Durable here (in the log and in snapshots): inodes, directory entries, each file's ordered
//! block list, leases with their pending blocks, the id counters. Not here: which datanodes hold
//! which replica (soft state in `blocks::BlockMap`).

use dfs_proto::rest::{
    Attr, BlockInfo, DatanodeAddr, DirEntry, FileKind, LocatedBlock, OpenWriteResponse,
    ReadDirResponse, SetTime, Timestamp, XattrMode,
};
use dfs_proto::{
    ApiError, BlockId, ClientId, DfsPath, ErrorCode, Generation, Identity, InodeId, Name,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

mod block_index;
mod dir;
mod file;
mod inode;
mod lease;
pub mod permissions;
mod reads;
mod rename;
#[cfg(test)]
mod tests;
mod xattr;

use block_index::BlockIndex;
use inode::{Body, DirBody, Inode};
use lease::Lease;

/// One log entry's payload: a command, the leader's clock when it was proposed, and who asked
/// (every namenode checks permissions against it when applying, so all decide alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub now: Timestamp,
    pub cmd: Command,
    /// The caller; absent (and so root) in entries written before permissions were checked,
    /// and for the leader's own housekeeping such as `ExpireLeases`.
    #[serde(default = "Identity::root", skip_serializing_if = "Identity::is_root")]
    pub caller: Identity,
}

/// Every change to the namespace. Names are already validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    Create {
        parent: InodeId,
        name: Name,
        kind: FileKind,
        perm: u32,
        uid: u32,
        gid: u32,
        lease: Option<ClientId>,
    },
    Mkdir {
        parent: InodeId,
        name: Name,
        perm: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        parent: InodeId,
        name: Name,
        target: String,
        uid: u32,
        gid: u32,
    },
    Link {
        ino: InodeId,
        new_parent: InodeId,
        new_name: Name,
    },
    Unlink {
        parent: InodeId,
        name: Name,
    },
    Rmdir {
        parent: InodeId,
        name: Name,
    },
    Rename {
        parent: InodeId,
        name: Name,
        new_parent: InodeId,
        new_name: Name,
        noreplace: bool,
        exchange: bool,
    },
    SetAttr {
        ino: InodeId,
        perm: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<SetTime>,
        mtime: Option<SetTime>,
        client: Option<ClientId>,
    },
    OpenWrite {
        ino: InodeId,
        client: ClientId,
    },
    RenewLease {
        client: ClientId,
    },
    ReleaseLease {
        ino: InodeId,
        client: ClientId,
    },
    /// `locations` were chosen by the leader's placement before proposing; they are echoed in
    /// the reply and not kept.
    AllocateBlock {
        ino: InodeId,
        client: ClientId,
        index: u64,
        locations: Vec<DatanodeAddr>,
    },
    Commit {
        ino: InodeId,
        client: ClientId,
        blocks: Vec<BlockInfo>,
        size: u64,
        release: bool,
    },
    /// Ends every lease whose expiry is at or before the proposal's clock: pending blocks are
    /// freed, the file keeps its last committed state.
    ExpireLeases,
    SetXattr {
        ino: InodeId,
        name: String,
        value: Vec<u8>,
        mode: XattrMode,
    },
    RemoveXattr {
        ino: InodeId,
        name: String,
    },
}

/// What an applied command answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Attr(Attr),
    Empty,
    Located(LocatedBlock),
    OpenWrite(OpenWriteResponse),
}

/// Settings fixed when the namespace is created (they travel in snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceConfig {
    /// Block size given to new files.
    pub block_size: u64,
    /// How long a lease lasts past its last renewal, in milliseconds.
    pub lease_ms: u64,
}

/// What the namespace knows of one replica (block id and generation) a datanode reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaStatus {
    /// Part of a file: committed, or allocated to a writer and not yet committed.
    Live,
    /// The id is in use but this generation is not: the replica is garbage.
    Stale,
    /// The id was allocated and is no longer part of any file: garbage.
    Orphan,
    /// The id is beyond what this namespace has allocated (a log entry not yet applied here):
    /// leave it alone.
    Unknown,
}

/// Counts for reports and `statfs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceStats {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub inodes: u64,
    /// Committed, non-hole blocks.
    pub blocks: u64,
}

/// The whole namespace state. Serialized as a snapshot.
///
/// Only [`State`] travels in a snapshot. The block index is derived from it and rebuilt when a
/// snapshot is deserialized (no call is needed after loading), and the freed-block list is the
/// leader's work queue, not state: a block freed but never deleted because of a leader change is
/// found as an orphan in the next block report.
#[derive(Debug, Clone)]
pub struct Namespace {
    state: State,
    /// Every live (block id, generation): committed in a file or pending in a lease.
    index: BlockIndex,
    /// Blocks dropped since the last [`Namespace::take_freed_blocks`].
    freed: Vec<BlockInfo>,
}

/// The durable part of the namespace: what snapshots hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    config: NamespaceConfig,
    inodes: BTreeMap<InodeId, Inode>,
    /// At most one writer per file, keyed by the file.
    leases: BTreeMap<InodeId, Lease>,
    /// Next inode id to hand out; ids are never reused.
    next_inode: u64,
    /// Next block id to hand out (0 is the hole marker).
    next_block: u64,
    /// Next generation stamp; every allocation takes a fresh one.
    next_generation: u64,
}

impl Serialize for Namespace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.state.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Namespace, D::Error> {
        State::deserialize(deserializer).map(Namespace::from_state)
    }
}

/// Shorthand for the error every unknown inode answers.
fn no_inode(ino: InodeId) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no inode {ino}"))
}

impl Namespace {
    /// A fresh namespace holding only the root directory (inode 1, mode 0755, owned by root).
    pub fn new(config: NamespaceConfig) -> Namespace {
        let root = Inode::new(
            Body::Dir(DirBody {
                parent: InodeId::ROOT,
                entries: BTreeMap::new(),
            }),
            0o755,
            0,
            0,
            2,
            Timestamp::default(),
        );
        let state = State {
            config,
            inodes: BTreeMap::from([(InodeId::ROOT, root)]),
            leases: BTreeMap::new(),
            next_inode: InodeId::ROOT.0 + 1,
            next_block: 1,
            next_generation: 1,
        };
        Namespace::from_state(state)
    }

    fn from_state(state: State) -> Namespace {
        let index = BlockIndex::build(&state.inodes, &state.leases);
        Namespace {
            state,
            index,
            freed: Vec::new(),
        }
    }

    pub fn config(&self) -> &NamespaceConfig {
        &self.state.config
    }

    /// Validates and applies one command. A refused command leaves the state unchanged.
    pub fn apply(&mut self, proposal: &Proposal) -> Result<Reply, ApiError> {
        let now = proposal.now;
        let who = &proposal.caller;
        match &proposal.cmd {
            Command::Create {
                parent,
                name,
                kind,
                perm,
                uid,
                gid,
                lease,
            } => self
                .create(
                    now,
                    who,
                    *parent,
                    name,
                    (*kind, (*perm, *uid, *gid)),
                    lease.as_ref(),
                )
                .map(Reply::Attr),
            Command::Mkdir {
                parent,
                name,
                perm,
                uid,
                gid,
            } => self
                .mkdir(now, who, *parent, name, (*perm, *uid, *gid))
                .map(Reply::Attr),
            Command::Symlink {
                parent,
                name,
                target,
                uid,
                gid,
            } => self
                .symlink(now, who, *parent, name, target, (*uid, *gid))
                .map(Reply::Attr),
            Command::Link {
                ino,
                new_parent,
                new_name,
            } => self
                .link(now, who, *ino, *new_parent, new_name)
                .map(Reply::Attr),
            Command::Unlink { parent, name } => {
                self.unlink(now, who, *parent, name).map(Reply::Attr)
            }
            Command::Rmdir { parent, name } => {
                self.rmdir(now, who, *parent, name).map(|()| Reply::Empty)
            }
            Command::Rename {
                parent,
                name,
                new_parent,
                new_name,
                noreplace,
                exchange,
            } => self
                .rename(
                    now,
                    who,
                    rename::RenameArgs {
                        parent: *parent,
                        name,
                        new_parent: *new_parent,
                        new_name,
                        noreplace: *noreplace,
                        exchange: *exchange,
                    },
                )
                .map(|()| Reply::Empty),
            Command::SetAttr {
                ino,
                perm,
                uid,
                gid,
                size,
                atime,
                mtime,
                client,
            } => self
                .setattr(
                    now,
                    who,
                    *ino,
                    file::SetAttrArgs {
                        perm: *perm,
                        uid: *uid,
                        gid: *gid,
                        size: *size,
                        atime: *atime,
                        mtime: *mtime,
                        client: client.as_ref(),
                    },
                )
                .map(Reply::Attr),
            Command::OpenWrite { ino, client } => self
                .open_write(now, who, *ino, client)
                .map(Reply::OpenWrite),
            Command::RenewLease { client } => {
                self.renew_leases(now, client);
                Ok(Reply::Empty)
            }
            Command::ReleaseLease { ino, client } => {
                self.release_lease(*ino, client).map(|()| Reply::Empty)
            }
            Command::AllocateBlock {
                ino,
                client,
                index,
                locations,
            } => self
                .allocate_block(now, *ino, client, *index)
                .map(|(index, block)| {
                    Reply::Located(LocatedBlock {
                        index,
                        block,
                        locations: locations.clone(),
                        token: None,
                    })
                }),
            Command::Commit {
                ino,
                client,
                blocks,
                size,
                release,
            } => self
                .commit(now, *ino, client, blocks, *size, *release)
                .map(Reply::Attr),
            Command::ExpireLeases => {
                self.expire_leases(now);
                Ok(Reply::Empty)
            }
            Command::SetXattr {
                ino,
                name,
                value,
                mode,
            } => self
                .set_xattr(now, who, *ino, name, value, *mode)
                .map(|()| Reply::Empty),
            Command::RemoveXattr { ino, name } => self
                .remove_xattr(now, who, *ino, name)
                .map(|()| Reply::Empty),
        }
    }

    /// Blocks that applied commands dropped from files (deleted files, truncated or rewritten
    /// blocks, pending blocks of released or expired leases) since the last call. The leader
    /// turns them into delete commands for the datanodes holding them.
    pub fn take_freed_blocks(&mut self) -> Vec<BlockInfo> {
        std::mem::take(&mut self.freed)
    }

    pub fn getattr(&self, ino: InodeId) -> Result<Attr, ApiError> {
        Ok(self.inode(ino)?.attr(ino))
    }

    pub fn lookup(&self, parent: InodeId, name: &Name) -> Result<Attr, ApiError> {
        let ino = self.entry(parent, name.as_str())?;
        self.getattr(ino)
    }

    /// Resolves an absolute path without following symlinks (`ENOTDIR` when a non-final
    /// component is not a directory).
    pub fn resolve(&self, path: &DfsPath) -> Result<Attr, ApiError> {
        let mut ino = InodeId::ROOT;
        for name in path.components() {
            ino = self.entry(ino, name.as_str()).map_err(|e| {
                ApiError::new(e.code, format!("cannot resolve {path}: {}", e.message))
            })?;
        }
        self.getattr(ino)
    }

    /// Up to `limit` entries after `after`, in name order.
    pub fn readdir(
        &self,
        ino: InodeId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ReadDirResponse, ApiError> {
        use std::ops::Bound;
        let dir = self.dir(ino)?;
        let start = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut range = dir
            .entries
            .range::<str, _>((start, Bound::Unbounded))
            .peekable();
        let mut entries = Vec::new();
        while entries.len() < limit {
            let Some((name, child)) = range.next() else {
                break;
            };
            entries.push(DirEntry {
                name: name.clone(),
                attr: self.getattr(*child)?,
            });
        }
        let more = range.peek().is_some();
        Ok(ReadDirResponse { entries, more })
    }

    pub fn readlink(&self, ino: InodeId) -> Result<String, ApiError> {
        match &self.inode(ino)?.body {
            Body::Symlink { target } => Ok(target.clone()),
            _ => Err(ApiError::new(
                ErrorCode::Invalid,
                format!("inode {ino} is not a symlink"),
            )),
        }
    }

    /// A regular file's attributes and committed block list (`EISDIR`/`EINVAL` for others).
    pub fn file_blocks(&self, ino: InodeId) -> Result<(Attr, Vec<BlockInfo>), ApiError> {
        let inode = self.inode(ino)?;
        let file = inode.require_file(ino)?;
        Ok((inode.attr(ino), file.blocks.clone()))
    }

    /// Classifies a reported replica.
    pub fn replica_status(&self, id: BlockId, generation: Generation) -> ReplicaStatus {
        if id.0 >= self.state.next_block {
            return ReplicaStatus::Unknown;
        }
        self.index.status(id, generation)
    }

    /// Every committed, non-hole block of every file (for replication accounting).
    pub fn committed_blocks(&self) -> impl Iterator<Item = BlockInfo> + '_ {
        self.state
            .inodes
            .values()
            .filter_map(Inode::as_file)
            .flat_map(|f| f.blocks.iter().copied())
            .filter(|b| !b.is_hole())
    }

    /// Whether some lease has expired at `now` (the leader then proposes `ExpireLeases`).
    pub fn has_expired_leases(&self, now: Timestamp) -> bool {
        self.state.leases.values().any(|l| l.expiry <= now)
    }

    pub fn stats(&self) -> NamespaceStats {
        let mut stats = NamespaceStats::default();
        for inode in self.state.inodes.values() {
            stats.inodes += 1;
            match &inode.body {
                Body::File(f) => {
                    stats.files += 1;
                    stats.blocks += f.blocks.iter().filter(|b| !b.is_hole()).count() as u64;
                }
                Body::Fifo => stats.files += 1,
                Body::Dir(_) => stats.directories += 1,
                Body::Symlink { .. } => stats.symlinks += 1,
            }
        }
        stats
    }

    // ---- helpers shared by the command modules ----

    fn inode(&self, ino: InodeId) -> Result<&Inode, ApiError> {
        self.state.inodes.get(&ino).ok_or_else(|| no_inode(ino))
    }

    fn inode_mut(&mut self, ino: InodeId) -> Result<&mut Inode, ApiError> {
        self.state.inodes.get_mut(&ino).ok_or_else(|| no_inode(ino))
    }

    /// What permission checks look at of an inode.
    fn owner_of(&self, ino: InodeId) -> Result<permissions::Owner, ApiError> {
        let inode = self.inode(ino)?;
        Ok(permissions::Owner {
            perm: inode.perm,
            uid: inode.uid,
            gid: inode.gid,
            is_dir: inode.is_dir(),
        })
    }

    /// Search permission on directory `dir` (`ENOENT`/`ENOTDIR` for a bad one, `EACCES`).
    fn check_search(&self, who: &Identity, dir: InodeId) -> Result<(), ApiError> {
        self.dir(dir)?;
        permissions::check(
            who,
            &self.owner_of(dir)?,
            permissions::MAY_EXEC,
            &format!("directory {dir}"),
        )
    }

    /// A directory's body: `ENOENT` if unknown, `ENOTDIR` if not a directory.
    fn dir(&self, ino: InodeId) -> Result<&DirBody, ApiError> {
        self.inode(ino)?.as_dir().ok_or_else(|| {
            ApiError::new(ErrorCode::NotDir, format!("inode {ino} is not a directory"))
        })
    }

    /// The inode a directory entry names (`ENOENT` if there is no such entry).
    fn entry(&self, parent: InodeId, name: &str) -> Result<InodeId, ApiError> {
        self.dir(parent)?.entries.get(name).copied().ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("no entry '{name}' in directory {parent}"),
            )
        })
    }

    fn alloc_inode_id(&mut self) -> InodeId {
        let ino = InodeId(self.state.next_inode);
        self.state.next_inode += 1;
        ino
    }

    fn alloc_generation(&mut self) -> Generation {
        let generation = Generation(self.state.next_generation);
        self.state.next_generation += 1;
        generation
    }

    fn alloc_block_id(&mut self) -> BlockId {
        let id = BlockId(self.state.next_block);
        self.state.next_block += 1;
        id
    }

    /// A block leaves the namespace: out of the index, onto the freed list.
    fn free_block(&mut self, block: BlockInfo) {
        if block.is_hole() {
            return;
        }
        self.index.remove(block.id, block.generation);
        self.freed.push(block);
    }

    /// Removes an inode and frees its blocks (its last link is gone and no lease keeps it).
    fn remove_inode(&mut self, ino: InodeId) {
        if let Some(lease) = self.state.leases.remove(&ino) {
            for p in lease.pending {
                self.free_block(p.block);
            }
        }
        if let Some(inode) = self.state.inodes.remove(&ino)
            && let Body::File(file) = inode.body
        {
            for block in file.blocks {
                self.free_block(block);
            }
        }
    }

    /// A non-directory inode loses one link; it is removed at 0 unless a lease holds it.
    fn drop_link(&mut self, now: Timestamp, ino: InodeId) {
        let Some(inode) = self.state.inodes.get_mut(&ino) else {
            return;
        };
        inode.nlink = inode.nlink.saturating_sub(1);
        inode.ctime = now;
        if inode.nlink == 0 && !self.state.leases.contains_key(&ino) {
            self.remove_inode(ino);
        }
    }

    /// Whether the derived index matches the state (for tests).
    #[cfg(test)]
    fn index_is_consistent(&self) -> bool {
        self.index == BlockIndex::build(&self.state.inodes, &self.state.leases)
    }
}
