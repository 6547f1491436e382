//! Commands on a regular file's attributes and contents: setattr (chmod, chown, utimens,
//! truncate), block allocation for the lease holder, and commit of a new block list.
//!
//! A write goes: `OpenWrite` (lease) -> `AllocateBlock` per block written (a fresh block, or a
//! fresh generation of the block already at that index) -> data to the datanodes -> `Commit` of
//! the whole new block list and size, which swaps the new blocks in atomically and frees the
//! replaced ones.

use super::Namespace;
use super::lease::PendingBlock;
use super::permissions::{self, MAY_WRITE};
use dfs_proto::rest::{Attr, BlockInfo, SetTime, Timestamp};
use dfs_proto::{ApiError, BlockId, ClientId, ErrorCode, Generation, Identity, InodeId};
use std::collections::{BTreeMap, BTreeSet};

/// Highest block index a file may have.
pub(super) const MAX_BLOCK_INDEX: u64 = 1 << 32;

/// The arguments of [`Command::SetAttr`](super::Command::SetAttr).
pub(super) struct SetAttrArgs<'a> {
    pub perm: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
    pub client: Option<&'a ClientId>,
}

fn efbig(what: String) -> ApiError {
    ApiError::new(ErrorCode::FileTooBig, what)
}

/// Largest size a file of this block size may have.
fn max_size(block_size: u64) -> u64 {
    block_size.saturating_mul(MAX_BLOCK_INDEX + 1)
}

impl Namespace {
    pub(super) fn setattr(
        &mut self,
        now: Timestamp,
        who: &Identity,
        ino: InodeId,
        a: SetAttrArgs<'_>,
    ) -> Result<Attr, ApiError> {
        let perm = self.check_setattr(who, ino, &a)?;
        let inode = self.inode(ino)?;
        if let Some(size) = a.size {
            let file = inode.require_file(ino)?;
            if let Some(lease) = self.state.leases.get(&ino)
                && lease.expiry > now
                && a.client != Some(&lease.client)
            {
                return Err(ApiError::new(
                    ErrorCode::Busy,
                    format!(
                        "cannot truncate inode {ino}: it is open for writing by client {}",
                        lease.client
                    ),
                ));
            }
            if size > max_size(file.block_size) {
                return Err(efbig(format!(
                    "size {size} is over the largest file size {}",
                    max_size(file.block_size)
                )));
            }
        }

        // Checked: from here on nothing fails.
        if let Some(size) = a.size {
            self.truncate(now, ino, size);
        }
        let inode = self.inode_mut(ino)?;
        let changed = a.perm.is_some()
            || a.uid.is_some()
            || a.gid.is_some()
            || a.size.is_some()
            || a.atime.is_some()
            || a.mtime.is_some();
        if let Some(perm) = perm {
            inode.perm = perm & super::inode::PERM_MASK;
        }
        if let Some(uid) = a.uid {
            inode.uid = uid;
        }
        if let Some(gid) = a.gid {
            inode.gid = gid;
        }
        let resolve = |t: SetTime| match t {
            SetTime::Now => now,
            SetTime::At(ts) => ts,
        };
        if let Some(t) = a.atime {
            inode.atime = resolve(t);
        }
        if let Some(t) = a.mtime {
            inode.mtime = resolve(t);
        }
        if changed {
            inode.ctime = now;
        }
        Ok(inode.attr(ino))
    }

    /// The permission rules of each change `a` asks for (see [`permissions`]); answers the
    /// permission bits to store, if they change (a chmod, or a chown dropping setuid/setgid).
    fn check_setattr(
        &self,
        who: &Identity,
        ino: InodeId,
        a: &SetAttrArgs<'_>,
    ) -> Result<Option<u32>, ApiError> {
        let owner = self.owner_of(ino)?;
        let what = format!("inode {ino}");
        if a.size.is_some() {
            // The lease holder truncates through the file it opened for writing (`ftruncate`).
            let holds_lease = a
                .client
                .is_some_and(|c| self.state.leases.get(&ino).is_some_and(|l| l.client == *c));
            if !holds_lease {
                permissions::check(who, &owner, MAY_WRITE, &what)?;
            }
        }
        if a.uid.is_some() || a.gid.is_some() {
            permissions::chown(who, &owner, a.uid, a.gid)?;
        }
        let explicit =
            matches!(a.atime, Some(SetTime::At(_))) || matches!(a.mtime, Some(SetTime::At(_)));
        if a.atime.is_some() || a.mtime.is_some() {
            permissions::set_times(who, &owner, explicit, &what)?;
        }
        match a.perm {
            Some(perm) => permissions::chmod(who, &owner, perm).map(Some),
            None if a.uid.is_some() || a.gid.is_some() => {
                Ok(Some(permissions::mode_after_chown(&owner)))
            }
            None => Ok(None),
        }
    }

    /// Sets a regular file's size. Down: blocks wholly past the new end are freed and the block
    /// holding the new end is shortened. Up: only the size grows (the rest reads as zeros).
    fn truncate(&mut self, now: Timestamp, ino: InodeId, size: u64) {
        let Some(inode) = self.state.inodes.get_mut(&ino) else {
            return;
        };
        let Some(file) = inode.as_file_mut() else {
            return;
        };
        let block_size = file.block_size.max(1);
        let keep = usize::try_from(size.div_ceil(block_size)).unwrap_or(usize::MAX);
        let dropped = if file.blocks.len() > keep {
            file.blocks.split_off(keep)
        } else {
            Vec::new()
        };
        if let Some(last) = keep.checked_sub(1).and_then(|i| file.blocks.get_mut(i))
            && !last.is_hole()
        {
            let end_in_block = size - (keep as u64 - 1) * block_size;
            last.len = last.len.min(end_in_block);
        }
        file.size = size;
        inode.data_version += 1;
        inode.mtime = now;
        inode.ctime = now;
        for block in dropped {
            self.free_block(block);
        }
    }

    /// Allocates block `index` for the lease holder: a fresh generation of the committed block
    /// at that index, or a fresh block. It stays pending until committed or the lease ends.
    pub(super) fn allocate_block(
        &mut self,
        now: Timestamp,
        ino: InodeId,
        client: &ClientId,
        index: u64,
    ) -> Result<(u64, BlockInfo), ApiError> {
        self.check_lease(ino, client)?;
        let file = self.inode(ino)?.require_file(ino)?;
        if index > MAX_BLOCK_INDEX {
            return Err(efbig(format!(
                "block index {index} is over the limit of {MAX_BLOCK_INDEX}"
            )));
        }
        let existing = usize::try_from(index)
            .ok()
            .and_then(|i| file.blocks.get(i))
            .filter(|b| !b.is_hole())
            .map(|b| b.id);

        // Checked: from here on nothing fails.
        self.renew_held_lease(now, ino, client)?;
        let id = match existing {
            Some(id) => id,
            None => self.alloc_block_id(),
        };
        let block = BlockInfo {
            id,
            generation: self.alloc_generation(),
            len: 0,
        };
        self.index.insert(block.id, block.generation);
        if let Some(lease) = self.state.leases.get_mut(&ino) {
            lease.pending.push(PendingBlock { index, block });
        }
        Ok((index, block))
    }

    /// Makes `blocks` and `size` the file's contents, atomically, after checking every block is
    /// either kept as committed or was allocated to this client for that index.
    pub(super) fn commit(
        &mut self,
        now: Timestamp,
        ino: InodeId,
        client: &ClientId,
        blocks: &[BlockInfo],
        size: u64,
        release: bool,
    ) -> Result<Attr, ApiError> {
        let used = self.validate_commit(ino, client, blocks, size)?;

        // Checked: from here on nothing fails.
        self.renew_held_lease(now, ino, client)?;
        let mut new_blocks: Vec<BlockInfo> = blocks
            .iter()
            .map(|b| if b.is_hole() { BlockInfo::HOLE } else { *b })
            .collect();
        while new_blocks.last().is_some_and(BlockInfo::is_hole) {
            new_blocks.pop();
        }
        let inode = self.inode_mut(ino)?;
        let Some(file) = inode.as_file_mut() else {
            return Err(super::no_inode(ino));
        };
        let old = std::mem::replace(&mut file.blocks, new_blocks);
        file.size = size;
        inode.data_version += 1;
        inode.mtime = now;
        inode.ctime = now;
        let attr = inode.attr(ino);
        let kept: BTreeSet<(BlockId, Generation)> =
            blocks.iter().map(|b| (b.id, b.generation)).collect();
        for block in old {
            if !kept.contains(&(block.id, block.generation)) {
                self.free_block(block);
            }
        }
        if let Some(lease) = self.state.leases.get_mut(&ino) {
            lease
                .pending
                .retain(|p| !used.contains(&(p.block.id, p.block.generation)));
        }
        if release {
            self.end_lease(ino);
        }
        Ok(attr)
    }

    /// Checks a commit's block list; answers the pending blocks it uses.
    fn validate_commit(
        &self,
        ino: InodeId,
        client: &ClientId,
        blocks: &[BlockInfo],
        size: u64,
    ) -> Result<BTreeSet<(BlockId, Generation)>, ApiError> {
        let lease = self.check_lease(ino, client)?;
        let file = self.inode(ino)?.require_file(ino)?;
        let block_size = file.block_size.max(1);
        if size > max_size(block_size) {
            return Err(efbig(format!(
                "size {size} is over the largest file size {}",
                max_size(block_size)
            )));
        }
        let pending: BTreeMap<(BlockId, Generation), u64> = lease
            .pending
            .iter()
            .map(|p| ((p.block.id, p.block.generation), p.index))
            .collect();
        let invalid = |i: usize, why: String| {
            ApiError::new(
                ErrorCode::Invalid,
                format!("commit of inode {ino}: block {i}: {why}"),
            )
        };
        let mut used = BTreeSet::new();
        for (i, b) in blocks.iter().enumerate() {
            if b.is_hole() {
                if b.len != 0 || b.generation.0 != 0 {
                    return Err(invalid(
                        i,
                        "a hole must have generation 0 and length 0".into(),
                    ));
                }
                continue;
            }
            if b.len > block_size {
                return Err(invalid(
                    i,
                    format!("length {} is over the block size {block_size}", b.len),
                ));
            }
            let start = (i as u64).saturating_mul(block_size);
            if b.len > 0 && start >= size {
                return Err(invalid(
                    i,
                    format!("it starts at byte {start}, at or past the file size {size}"),
                ));
            }
            let key = (b.id, b.generation);
            match file.blocks.get(i) {
                Some(c) if (c.id, c.generation) == key => {
                    if b.len > c.len {
                        return Err(invalid(
                            i,
                            format!(
                                "committed block {} grew from {} to {} bytes without a new \
                                 generation",
                                b.id, c.len, b.len
                            ),
                        ));
                    }
                }
                _ if pending.get(&key) == Some(&(i as u64)) => {
                    used.insert(key);
                }
                _ => {
                    return Err(invalid(
                        i,
                        format!(
                            "block {} generation {} is neither the committed block nor one \
                             allocated to client {client} for this index",
                            b.id, b.generation
                        ),
                    ));
                }
            }
        }
        Ok(used)
    }
}
