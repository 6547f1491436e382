//! Block access tokens at the datanode: every ReadBlock and WriteBlock (from a client, a
//! pipeline neighbour or a replication copy) names the replica it touches and carries a token
//! the namenode signed for that replica and operation ([`dfs_proto::token`]). With a cluster
//! secret, a transfer without a valid, unexpired token is refused before any disk is touched:
//! `UNAUTHENTICATED` when no token is given, `PERMISSION_DENIED` for a token that does not
//! grant it (forged, expired, another block or operation, another cluster's key).
//!
//! Without a secret (dev mode) every transfer is allowed.

use dfs_proto::grpc::BlockRef;
use dfs_proto::token::{BlockOp, BlockTokenKey};
use dfs_proto::{BlockId, ClusterSecret, Generation};
use std::time::SystemTime;
use tonic::Status;

/// Checks block access tokens (or, in dev mode, nothing).
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenCheck {
    key: Option<BlockTokenKey>,
}

impl TokenCheck {
    pub(crate) fn new(secret: Option<&ClusterSecret>) -> TokenCheck {
        TokenCheck {
            key: secret.map(ClusterSecret::block_token_key),
        }
    }

    /// Whether `token` allows `op` on `block` now; the refusal is logged and answered as a
    /// gRPC status.
    pub(crate) fn check(&self, token: &str, block: &BlockRef, op: BlockOp) -> Result<(), Status> {
        let (id, generation) = (BlockId(block.block_id), Generation(block.generation));
        self.verify(token, id, generation, op).map_err(|r| {
            if r.missing {
                Status::unauthenticated(r.message)
            } else {
                Status::permission_denied(r.message)
            }
        })
    }

    /// Whether `token` allows `op` on replica `id`/`generation` now; the refusal is logged.
    pub(crate) fn verify(
        &self,
        token: &str,
        id: BlockId,
        generation: Generation,
        op: BlockOp,
    ) -> Result<(), Refusal> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        key.verify(token, id, generation, op, SystemTime::now())
            .map_err(|e| {
                tracing::warn!(block = %id, generation = generation.0, %op, error = %e, "refused a block transfer");
                Refusal {
                    missing: e.is_missing(),
                    message: format!("{op} of block {id} refused: {e}"),
                }
            })
    }
}

/// Why a token was refused.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// No token was given at all (rather than one that does not grant the operation).
    pub(crate) missing: bool,
    pub(crate) message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dev_mode_allows_and_a_secret_requires_a_valid_token() {
        let block = BlockRef {
            block_id: 5,
            generation: 2,
        };
        assert!(
            TokenCheck::default()
                .check("", &block, BlockOp::Read)
                .is_ok()
        );

        let secret = ClusterSecret::from_file_bytes(&[3u8; 32]).expect("secret");
        let check = TokenCheck::new(Some(&secret));
        let missing = check
            .check("", &block, BlockOp::Read)
            .expect_err("no token");
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);

        let key = secret.block_token_key();
        let later = SystemTime::now() + Duration::from_secs(60);
        let token = key.sign(BlockId(5), Generation(2), &[BlockOp::Read], later);
        assert!(check.check(&token, &block, BlockOp::Read).is_ok());
        let wrong_op = check
            .check(&token, &block, BlockOp::Write)
            .expect_err("read only");
        assert_eq!(wrong_op.code(), tonic::Code::PermissionDenied);
    }
}
