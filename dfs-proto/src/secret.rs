//! The cluster secret and the credentials derived from it.
//!
//! Every daemon and client of one cluster reads the same secret file (at least 32 random bytes,
//! usually written as hex). Nothing sends the secret itself; each use gets its own key, derived
//! as `HMAC-SHA256(secret, label)`:
//!
//! - `dfs-rest-v1`: the bearer credential every REST call to a namenode carries
//!   (`Authorization: Bearer <hex>`), see [`ClusterSecret::authorization`];
//! - `dfs-block-token-v1`: the key namenodes sign block access tokens with and datanodes check
//!   them with, see [`crate::token`].
//!
//! See `docs/SECURITY.md` for why a static bearer credential rather than a per-request signature.

use crate::token::BlockTokenKey;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// Fewest secret bytes accepted.
pub const MIN_SECRET_BYTES: usize = 32;

/// The HTTP header scheme REST calls carry the credential in.
pub const BEARER: &str = "Bearer ";

const REST_LABEL: &[u8] = b"dfs-rest-v1";
const BLOCK_TOKEN_LABEL: &[u8] = b"dfs-block-token-v1";
const KEY_ID_LABEL: &[u8] = b"dfs-block-token-key-id-v1";

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("read secret file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {path} holds {len} bytes; at least {MIN_SECRET_BYTES} are needed")]
    TooShort { path: PathBuf, len: usize },
}

/// The cluster secret. Its `Debug` output never shows the bytes.
#[derive(Clone)]
pub struct ClusterSecret {
    bytes: Vec<u8>,
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

/// `HMAC-SHA256(key, data)`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl ClusterSecret {
    /// Reads a secret file: hex text (whitespace around it ignored) or, if it is not hex, the
    /// raw bytes. Either way at least [`MIN_SECRET_BYTES`] bytes of secret are required.
    pub fn load(path: &Path) -> Result<ClusterSecret, SecretError> {
        let raw = std::fs::read(path).map_err(|source| SecretError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ClusterSecret::from_file_bytes(&raw).ok_or_else(|| SecretError::TooShort {
            path: path.to_path_buf(),
            len: raw.len(),
        })
    }

    /// The secret in a file's contents (see [`ClusterSecret::load`]), `None` if too short.
    pub fn from_file_bytes(raw: &[u8]) -> Option<ClusterSecret> {
        let text = std::str::from_utf8(raw).map(str::trim).ok();
        let hex = text
            .and_then(|t| hex::decode(t).ok())
            .filter(|d| !d.is_empty());
        let bytes = match hex {
            Some(decoded) => decoded,
            None => raw.to_vec(),
        };
        (bytes.len() >= MIN_SECRET_BYTES).then_some(ClusterSecret { bytes })
    }

    /// A fresh secret as the text of a secret file: 32 random bytes in hex and a newline.
    pub fn generate_file_text() -> String {
        let bytes: [u8; 32] = rand::random();
        format!("{}\n", hex::encode(bytes))
    }

    fn derive(&self, label: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.bytes, label)
    }

    /// The REST credential, as the value of an `Authorization` header.
    pub fn authorization(&self) -> String {
        format!("{BEARER}{}", hex::encode(self.derive(REST_LABEL)))
    }

    /// Whether an `Authorization` header value carries this cluster's REST credential
    /// (compared in constant time).
    pub fn check_authorization(&self, header: &[u8]) -> bool {
        let want = self.authorization();
        want.as_bytes().ct_eq(header).into()
    }

    /// The key block access tokens are signed and checked with.
    pub fn block_token_key(&self) -> BlockTokenKey {
        let id = self.derive(KEY_ID_LABEL);
        BlockTokenKey::new(
            u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
            self.derive(BLOCK_TOKEN_LABEL),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_raw_files_are_read_and_short_ones_refused() {
        let text = ClusterSecret::generate_file_text();
        let a = ClusterSecret::from_file_bytes(text.as_bytes()).expect("hex secret");
        assert_eq!(a.bytes.len(), 32);
        let raw = [7u8; 40];
        assert!(ClusterSecret::from_file_bytes(&raw).is_some());
        // Raw bytes that happen to be all whitespace are still raw bytes.
        assert!(ClusterSecret::from_file_bytes(&[9u8; 32]).is_some());
        assert!(ClusterSecret::from_file_bytes(b"abcdef").is_none());
        assert!(ClusterSecret::from_file_bytes(&[1u8; 31]).is_none());
        assert_eq!(format!("{a:?}"), "ClusterSecret(..)");
    }

    #[test]
    fn credentials_depend_on_the_secret() {
        let a = ClusterSecret::from_file_bytes(&[1u8; 32]).expect("secret");
        let b = ClusterSecret::from_file_bytes(&[2u8; 32]).expect("secret");
        assert!(a.check_authorization(a.authorization().as_bytes()));
        assert!(!a.check_authorization(b.authorization().as_bytes()));
        assert!(!a.check_authorization(b"Bearer "));
        assert!(!a.check_authorization(b""));
        assert_ne!(a.authorization(), b.authorization());
        assert!(a.authorization().starts_with(BEARER));
    }
}
