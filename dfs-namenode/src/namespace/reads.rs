//! Reads on behalf of a caller: the same answers as the plain reads, after the permission
//! checks Linux makes (search on every directory walked, read on a listed directory, read on a
//! file whose blocks are fetched or whose attribute is read). The plain reads stay for the
//! namenode's own use (fsck, reports).

use super::Namespace;
use super::permissions::{self, MAY_READ};
use dfs_proto::rest::{Attr, BlockInfo, ReadDirResponse};
use dfs_proto::{ApiError, DfsPath, Identity, InodeId, Name};

impl Namespace {
    /// `access(2)`: the inode's attributes if `who` may access it as `mask` asks.
    pub fn access(&self, who: &Identity, ino: InodeId, mask: u32) -> Result<Attr, ApiError> {
        let owner = self.owner_of(ino)?;
        permissions::check(who, &owner, mask, &format!("inode {ino}"))?;
        self.getattr(ino)
    }

    /// Looks `name` up in `parent`, which `who` must be able to search.
    pub fn lookup_as(
        &self,
        who: &Identity,
        parent: InodeId,
        name: &Name,
    ) -> Result<Attr, ApiError> {
        self.check_search(who, parent)?;
        self.lookup(parent, name)
    }

    /// Resolves `path`, searching every directory on the way.
    pub fn resolve_as(&self, who: &Identity, path: &DfsPath) -> Result<Attr, ApiError> {
        let mut ino = InodeId::ROOT;
        for name in path.components() {
            let step = self
                .check_search(who, ino)
                .and_then(|()| self.entry(ino, name.as_str()));
            ino = step.map_err(|e| {
                ApiError::new(e.code, format!("cannot resolve {path}: {}", e.message))
            })?;
        }
        self.getattr(ino)
    }

    /// A page of directory `ino`, which `who` must be able to read.
    pub fn readdir_as(
        &self,
        who: &Identity,
        ino: InodeId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ReadDirResponse, ApiError> {
        self.dir(ino)?;
        self.check_read(who, ino)?;
        self.readdir(ino, after, limit)
    }

    /// A file's blocks, for `who` who must be able to read it.
    pub fn file_blocks_as(
        &self,
        who: &Identity,
        ino: InodeId,
    ) -> Result<(Attr, Vec<BlockInfo>), ApiError> {
        let found = self.file_blocks(ino)?;
        self.check_read(who, ino)?;
        Ok(found)
    }

    /// An extended attribute's value, for `who` who must be able to read the inode.
    pub fn get_xattr_as(
        &self,
        who: &Identity,
        ino: InodeId,
        name: &str,
    ) -> Result<Vec<u8>, ApiError> {
        super::xattr::check_name(name)?;
        self.check_read(who, ino)?;
        self.get_xattr(ino, name)
    }

    fn check_read(&self, who: &Identity, ino: InodeId) -> Result<(), ApiError> {
        permissions::check(who, &self.owner_of(ino)?, MAY_READ, &format!("inode {ino}"))
    }
}
