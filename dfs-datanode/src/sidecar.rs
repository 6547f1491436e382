//! The checksum sidecar stored next to every replica (`blk_<id>_<gen>.meta`).
//!
//! Layout, all little-endian:
//!
//! ```text
//! magic  b"DFSM"   4 bytes
//! version u32      currently 1
//! length  u64      bytes in the data file
//! crc32c  u32 * n  one per 64 KiB piece of the data, n = ceil(length / 64 KiB)
//! ```
//!
//! A sidecar that does not parse, or whose piece count disagrees with its length, is corrupt.

use dfs_proto::checksum::CHECKSUM_CHUNK;

const MAGIC: [u8; 4] = *b"DFSM";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 16;

/// Why a sidecar was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SidecarError {
    #[error("sidecar is {0} bytes, shorter than its header")]
    Short(usize),
    #[error("sidecar has a bad magic number")]
    Magic,
    #[error("sidecar version {0} is not supported")]
    Version(u32),
    #[error("sidecar for {length} bytes holds {got} checksum bytes (want {want})")]
    Size { length: u64, got: usize, want: u64 },
}

/// A parsed sidecar: the replica's length and the CRC32C of each 64 KiB piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    pub length: u64,
    pub crcs: Vec<u32>,
}

/// Number of 64 KiB pieces in `length` bytes.
pub fn pieces(length: u64) -> u64 {
    length.div_ceil(CHECKSUM_CHUNK as u64)
}

impl Sidecar {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 4 * self.crcs.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        for crc in &self.crcs {
            out.extend_from_slice(&crc.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Sidecar, SidecarError> {
        let (header, body) = bytes
            .split_at_checked(HEADER_LEN)
            .ok_or(SidecarError::Short(bytes.len()))?;
        let (magic, rest) = header.split_at(4);
        let (version, length) = rest.split_at(4);
        if magic != MAGIC {
            return Err(SidecarError::Magic);
        }
        let version = u32::from_le_bytes(version.try_into().map_err(|_| SidecarError::Magic)?);
        if version != VERSION {
            return Err(SidecarError::Version(version));
        }
        let length = u64::from_le_bytes(length.try_into().map_err(|_| SidecarError::Magic)?);
        let want = pieces(length).saturating_mul(4);
        if body.len() as u64 != want {
            return Err(SidecarError::Size {
                length,
                got: body.len(),
                want,
            });
        }
        let crcs = body
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Sidecar { length, crcs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = Sidecar {
            length: CHECKSUM_CHUNK as u64 * 2 + 1,
            crcs: vec![1, 2, 3],
        };
        assert_eq!(Sidecar::decode(&s.encode()), Ok(s));
        let empty = Sidecar {
            length: 0,
            crcs: vec![],
        };
        assert_eq!(Sidecar::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn damage_is_refused() {
        let s = Sidecar {
            length: 10,
            crcs: vec![7],
        };
        let bytes = s.encode();
        assert!(matches!(
            Sidecar::decode(&bytes[..bytes.len() - 1]),
            Err(SidecarError::Size { .. })
        ));
        assert_eq!(Sidecar::decode(&bytes[..3]), Err(SidecarError::Short(3)));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(Sidecar::decode(&bad), Err(SidecarError::Magic));
    }
}
