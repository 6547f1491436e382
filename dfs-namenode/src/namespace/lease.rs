//! Write leases: one writer per file across the cluster. A lease lasts `lease_ms` past its last
//! renewal (an explicit renew, or any allocate/commit by its holder) and carries the blocks its
//! holder allocated but has not committed yet. Ending a lease (release, expiry, takeover) frees
//! those pending blocks and removes a file whose last link went while it was open.

use super::inode::add_ms;
use super::permissions;
use super::{Namespace, no_inode};
use dfs_proto::rest::{BlockInfo, OpenWriteResponse, Timestamp};
use dfs_proto::{ApiError, ClientId, ErrorCode, Identity, InodeId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Lease {
    pub client: ClientId,
    /// The lease is over once a proposal's clock reaches this.
    pub expiry: Timestamp,
    /// Allocated and not yet committed, in allocation order.
    pub pending: Vec<PendingBlock>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PendingBlock {
    /// The position in the file it was allocated for; a commit may only put it there.
    pub index: u64,
    pub block: BlockInfo,
}

impl Namespace {
    fn lease_expiry(&self, now: Timestamp) -> Timestamp {
        add_ms(now, self.state.config.lease_ms)
    }

    /// Takes or renews the write lease on a regular file.
    pub(super) fn open_write(
        &mut self,
        now: Timestamp,
        who: &Identity,
        ino: InodeId,
        client: &ClientId,
    ) -> Result<OpenWriteResponse, ApiError> {
        let inode = self.inode(ino)?;
        let file = inode.require_file(ino)?;
        permissions::check(
            who,
            &self.owner_of(ino)?,
            permissions::MAY_WRITE,
            &format!("inode {ino}"),
        )?;
        let response = OpenWriteResponse {
            attr: inode.attr(ino),
            blocks: file.blocks.clone(),
        };
        let expiry = self.lease_expiry(now);
        match self.state.leases.get_mut(&ino) {
            Some(lease) if lease.client == *client => lease.expiry = expiry,
            Some(lease) if lease.expiry > now => {
                return Err(ApiError::new(
                    ErrorCode::Busy,
                    format!("inode {ino} is open for writing by client {}", lease.client),
                ));
            }
            Some(_) => {
                // Expired: the old holder's uncommitted blocks go, the file keeps its last
                // committed state.
                if let Some(old) = self.state.leases.remove(&ino) {
                    tracing::info!(ino = %ino, old = %old.client, new = %client, "lease taken over");
                    for p in old.pending {
                        self.free_block(p.block);
                    }
                }
                self.grant_lease(ino, client, expiry);
            }
            None => self.grant_lease(ino, client, expiry),
        }
        Ok(response)
    }

    /// How many write leases `client` holds, not counting one on `except` (an open of a file
    /// it already holds renews rather than adds).
    pub fn leases_held(&self, client: &ClientId, except: Option<InodeId>) -> usize {
        self.state
            .leases
            .iter()
            .filter(|(ino, l)| l.client == *client && Some(**ino) != except)
            .count()
    }

    pub(super) fn grant_lease(&mut self, ino: InodeId, client: &ClientId, expiry: Timestamp) {
        self.state.leases.insert(
            ino,
            Lease {
                client: client.clone(),
                expiry,
                pending: Vec::new(),
            },
        );
    }

    /// Renews every lease `client` holds (holding none is not an error: a client renews on a
    /// timer and may just have closed its last file).
    pub(super) fn renew_leases(&mut self, now: Timestamp, client: &ClientId) {
        let expiry = self.lease_expiry(now);
        for lease in self.state.leases.values_mut() {
            if lease.client == *client {
                lease.expiry = expiry;
            }
        }
    }

    /// Checks that `client` holds the lease on `ino` and renews it. `ESTALE` if nobody holds
    /// it (it expired or was released), `EBUSY` if another client does.
    pub(super) fn renew_held_lease(
        &mut self,
        now: Timestamp,
        ino: InodeId,
        client: &ClientId,
    ) -> Result<(), ApiError> {
        self.check_lease(ino, client)?;
        let expiry = self.lease_expiry(now);
        if let Some(lease) = self.state.leases.get_mut(&ino) {
            lease.expiry = expiry;
        }
        Ok(())
    }

    /// The lease on `ino` if `client` holds it (see [`Namespace::renew_held_lease`]).
    pub(super) fn check_lease(&self, ino: InodeId, client: &ClientId) -> Result<&Lease, ApiError> {
        if !self.state.inodes.contains_key(&ino) {
            return Err(no_inode(ino));
        }
        match self.state.leases.get(&ino) {
            Some(lease) if lease.client == *client => Ok(lease),
            Some(lease) => Err(ApiError::new(
                ErrorCode::Busy,
                format!(
                    "inode {ino} is open for writing by client {}, not {client}",
                    lease.client
                ),
            )),
            None => Err(ApiError::new(
                ErrorCode::Stale,
                format!(
                    "client {client} holds no write lease on inode {ino} (it expired or was \
                     released); open the file for writing again"
                ),
            )),
        }
    }

    pub(super) fn release_lease(
        &mut self,
        ino: InodeId,
        client: &ClientId,
    ) -> Result<(), ApiError> {
        self.check_lease(ino, client)?;
        self.end_lease(ino);
        Ok(())
    }

    /// Ends every lease whose expiry is at or before `now`.
    pub(super) fn expire_leases(&mut self, now: Timestamp) {
        let expired: Vec<InodeId> = self
            .state
            .leases
            .iter()
            .filter(|(_, l)| l.expiry <= now)
            .map(|(ino, _)| *ino)
            .collect();
        for ino in expired {
            tracing::info!(ino = %ino, "write lease expired");
            self.end_lease(ino);
        }
    }

    /// Drops the lease on `ino`: pending blocks are freed, and a file with no links left is
    /// removed.
    pub(super) fn end_lease(&mut self, ino: InodeId) {
        let Some(lease) = self.state.leases.remove(&ino) else {
            return;
        };
        for p in lease.pending {
            self.free_block(p.block);
        }
        if self.state.inodes.get(&ino).is_some_and(|i| i.nlink == 0) {
            self.remove_inode(ino);
        }
    }
}
