//! Block access tokens, after HDFS's: the namenode grants a client the right to read or write
//! one replica (block id and generation) until an expiry time, and datanodes check that grant
//! on every transfer without asking the namenode.
//!
//! A token is text: `v1.<key id>.<block id>.<generation>.<r|w|rw>.<expiry, unix ms>.<mac>`, where
//! `mac` is the hex `HMAC-SHA256` of everything before it under the key derived from the
//! cluster secret ([`crate::secret::ClusterSecret::block_token_key`]). The key id names that key,
//! so a token from another cluster (or from before the secret was changed) is told apart from a
//! forged one in the logs.

use crate::ids::{BlockId, Generation};
use crate::secret::hmac_sha256;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// Largest token accepted for parsing (a real one is about 110 bytes).
pub const MAX_TOKEN_LEN: usize = 256;

/// How far a datanode's clock may be behind the namenode's before a valid token reads as
/// expired.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockOp {
    Read,
    Write,
}

/// The operations field of a token: `r`, `w` or `rw`.
fn ops_field(ops: &[BlockOp]) -> &'static str {
    match (ops.contains(&BlockOp::Read), ops.contains(&BlockOp::Write)) {
        (true, true) => "rw",
        (false, true) => "w",
        // Signing no operation is a caller bug; grant the lesser one.
        _ => "r",
    }
}

/// Whether an operations field grants `op`; `None` if it is not one of the valid fields.
fn grants(field: &str, op: BlockOp) -> Option<bool> {
    let (read, write) = match field {
        "r" => (true, false),
        "w" => (false, true),
        "rw" => (true, true),
        _ => return None,
    };
    Some(match op {
        BlockOp::Read => read,
        BlockOp::Write => write,
    })
}

impl fmt::Display for BlockOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockOp::Read => "read",
            BlockOp::Write => "write",
        })
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no block access token")]
    Missing,
    #[error("the block access token is malformed")]
    Malformed,
    #[error("the block access token is signed with another key (key id {0:08x})")]
    UnknownKey(u32),
    #[error("the block access token's signature is not valid")]
    BadSignature,
    #[error("the block access token expired at {0} ms since the epoch")]
    Expired(u64),
    #[error("the block access token is for another block, generation or operation")]
    WrongGrant,
}

impl TokenError {
    /// A missing token is a caller that does not authenticate; anything else is a credential
    /// that does not grant this (gRPC `UNAUTHENTICATED` vs `PERMISSION_DENIED`).
    pub fn is_missing(&self) -> bool {
        matches!(self, TokenError::Missing)
    }
}

/// The signing key for block tokens. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct BlockTokenKey {
    id: u32,
    key: [u8; 32],
}

impl fmt::Debug for BlockTokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockTokenKey({:08x})", self.id)
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl BlockTokenKey {
    pub fn new(id: u32, key: [u8; 32]) -> BlockTokenKey {
        BlockTokenKey { id, key }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// A token allowing `ops` on replica `block`/`generation` until `expires`. A writer gets
    /// read and write, so it can read back a block it wrote before the block is committed.
    pub fn sign(
        &self,
        block: BlockId,
        generation: Generation,
        ops: &[BlockOp],
        expires: SystemTime,
    ) -> String {
        let body = format!(
            "v1.{:08x}.{}.{}.{}.{}",
            self.id,
            block.0,
            generation.0,
            ops_field(ops),
            unix_ms(expires)
        );
        let mac = hmac_sha256(&self.key, body.as_bytes());
        format!("{body}.{}", hex::encode(mac))
    }

    /// Checks that `token` is signed with this key, grants `op` on `block`/`generation`, and has
    /// not expired at `now` (allowing [`CLOCK_SKEW`]).
    pub fn verify(
        &self,
        token: &str,
        block: BlockId,
        generation: Generation,
        op: BlockOp,
        now: SystemTime,
    ) -> Result<(), TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (body, mac_hex) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let fields: Vec<&str> = body.split('.').collect();
        let [version, key_id, id, generation_field, op_field, expires] = fields[..] else {
            return Err(TokenError::Malformed);
        };
        if version != "v1" {
            return Err(TokenError::Malformed);
        }
        let key_id = u32::from_str_radix(key_id, 16).map_err(|_| TokenError::Malformed)?;
        let mac = hex::decode(mac_hex).map_err(|_| TokenError::Malformed)?;
        if key_id != self.id {
            return Err(TokenError::UnknownKey(key_id));
        }
        let want = hmac_sha256(&self.key, body.as_bytes());
        if !bool::from(want.as_slice().ct_eq(&mac)) {
            return Err(TokenError::BadSignature);
        }
        // Signed by us: the fields are ours, but parse them strictly all the same.
        let number = |s: &str| s.parse::<u64>().map_err(|_| TokenError::Malformed);
        let granted = (
            number(id)?,
            number(generation_field)?,
            grants(op_field, op).ok_or(TokenError::Malformed)?,
        );
        if granted != (block.0, generation.0, true) {
            return Err(TokenError::WrongGrant);
        }
        let expires = number(expires)?;
        let skew = u64::try_from(CLOCK_SKEW.as_millis()).unwrap_or(u64::MAX);
        if unix_ms(now) > expires.saturating_add(skew) {
            return Err(TokenError::Expired(expires));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ClusterSecret;

    fn key(byte: u8) -> BlockTokenKey {
        ClusterSecret::from_file_bytes(&[byte; 32])
            .expect("secret")
            .block_token_key()
    }

    const B: BlockId = BlockId(42);
    const G: Generation = Generation(3);

    #[test]
    fn a_signed_token_verifies_for_its_grant_only() {
        let k = key(1);
        let now = SystemTime::now();
        let t = k.sign(B, G, &[BlockOp::Read], now + Duration::from_secs(600));
        assert_eq!(k.verify(&t, B, G, BlockOp::Read, now), Ok(()));
        let both = k.sign(B, G, &[BlockOp::Read, BlockOp::Write], now);
        assert_eq!(k.verify(&both, B, G, BlockOp::Read, now), Ok(()));
        assert_eq!(k.verify(&both, B, G, BlockOp::Write, now), Ok(()));
        let wrong = TokenError::WrongGrant;
        assert_eq!(k.verify(&t, B, G, BlockOp::Write, now), Err(wrong.clone()));
        assert_eq!(
            k.verify(&t, BlockId(43), G, BlockOp::Read, now),
            Err(wrong.clone())
        );
        assert_eq!(
            k.verify(&t, B, Generation(4), BlockOp::Read, now),
            Err(wrong)
        );
    }

    #[test]
    fn expiry_allows_the_clock_skew_and_no_more() {
        let k = key(1);
        let expires = SystemTime::now();
        let t = k.sign(B, G, &[BlockOp::Write], expires);
        let within = expires + CLOCK_SKEW - Duration::from_secs(1);
        assert_eq!(k.verify(&t, B, G, BlockOp::Write, within), Ok(()));
        let past = expires + CLOCK_SKEW + Duration::from_secs(1);
        assert!(matches!(
            k.verify(&t, B, G, BlockOp::Write, past),
            Err(TokenError::Expired(_))
        ));
    }

    #[test]
    fn forged_tampered_and_foreign_tokens_are_refused() {
        let k = key(1);
        let now = SystemTime::now();
        let later = now + Duration::from_secs(600);
        let t = k.sign(B, G, &[BlockOp::Read], later);

        // Another cluster's key: a different key id.
        let foreign = key(2).sign(B, G, &[BlockOp::Read], later);
        assert!(matches!(
            k.verify(&foreign, B, G, BlockOp::Read, now),
            Err(TokenError::UnknownKey(_))
        ));
        // The right key id but a made-up signature.
        let (body, _) = t.rsplit_once('.').expect("mac");
        let forged = format!("{body}.{}", "00".repeat(32));
        assert_eq!(
            k.verify(&forged, B, G, BlockOp::Read, now),
            Err(TokenError::BadSignature)
        );
        // A signed token with its expiry pushed out.
        let stretched = t.replacen(
            &format!(".{}.", unix_ms(later)),
            &format!(".{}.", unix_ms(later) + 1_000_000),
            1,
        );
        assert_ne!(stretched, t);
        assert_eq!(
            k.verify(&stretched, B, G, BlockOp::Read, now),
            Err(TokenError::BadSignature)
        );
        for junk in ["x", "v1.zz", "....", &"a".repeat(300), "v2.0.0.0.r.0.00"] {
            assert!(k.verify(junk, B, G, BlockOp::Read, now).is_err(), "{junk}");
        }
        assert_eq!(
            k.verify("", B, G, BlockOp::Read, now),
            Err(TokenError::Missing)
        );
    }
}
