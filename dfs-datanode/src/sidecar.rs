//! The checksum sidecar stored next to every replica (`blk_<id>_<gen>.meta`).
//!
//! Layout, all little-endian:
//!
//! ```text
//! magic  b"DFSM"   4 bytes
//! version u32      2 (1: without the page checksums)
//! length  u64      bytes in the data file
//! crc32c  u32 * n  one per 64 KiB piece of the data, n = ceil(length / 64 KiB)
//! crc32c  u32 * m  one per 4 KiB page of the data, m = ceil(length / 4 KiB) (version 2)
//! ```
//!
//! The piece checksums travel with every chunk a datanode sends; the page checksums let a
//! small read of the file (a client's local read) check only the pages it reads. A sidecar that
//! does not parse, or whose size disagrees with its length, is corrupt.

use dfs_proto::checksum::{CHECKSUM_CHUNK, CHECKSUM_PAGE};
use dfs_proto::file_io::read_exact_at;
use std::fs::File;
use std::io;

const MAGIC: [u8; 4] = *b"DFSM";
/// The version written; version 1 sidecars (no page checksums) are still read.
const VERSION: u32 = 2;
const HEADER_LEN: usize = 16;

/// Why a sidecar was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SidecarError {
    #[error("sidecar is {0} bytes, shorter than its header")]
    Short(u64),
    #[error("sidecar has a bad magic number")]
    Magic,
    #[error("sidecar version {0} is not supported")]
    Version(u32),
    #[error("sidecar for {length} bytes holds {got} checksum bytes (want {want})")]
    Size { length: u64, got: u64, want: u64 },
    #[error("cannot read the sidecar: {0}")]
    Read(String),
}

/// A parsed sidecar: the replica's length, the CRC32C of each 64 KiB piece, and where the
/// page checksums are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    pub length: u64,
    pub crcs: Vec<u32>,
    /// Byte offset of the page checksums in the sidecar file (none in a version 1 sidecar).
    pub pages_at: Option<u64>,
}

/// Number of 64 KiB pieces in `length` bytes.
pub fn pieces(length: u64) -> u64 {
    length.div_ceil(CHECKSUM_CHUNK as u64)
}

/// Number of 4 KiB pages in `length` bytes.
pub fn pages(length: u64) -> u64 {
    length.div_ceil(CHECKSUM_PAGE as u64)
}

/// A sidecar's bytes, in the current version.
pub fn encode(length: u64, crcs: &[u32], page_crcs: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 4 * (crcs.len() + page_crcs.len()));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&length.to_le_bytes());
    for crc in crcs.iter().chain(page_crcs) {
        out.extend_from_slice(&crc.to_le_bytes());
    }
    out
}

/// The header's length and version, checked against the file's size.
fn header(bytes: &[u8], size: u64) -> Result<(u64, u32), SidecarError> {
    let header = bytes.get(..HEADER_LEN).ok_or(SidecarError::Short(size))?;
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if header[..4] != MAGIC {
        return Err(SidecarError::Magic);
    }
    let version = word(4);
    if version != 1 && version != VERSION {
        return Err(SidecarError::Version(version));
    }
    let length = u64::from(word(8)) | (u64::from(word(12)) << 32);
    let mut want = pieces(length).saturating_mul(4);
    if version == VERSION {
        want = want.saturating_add(pages(length).saturating_mul(4));
    }
    let got = size.saturating_sub(HEADER_LEN as u64);
    if got != want {
        return Err(SidecarError::Size { length, got, want });
    }
    Ok((length, version))
}

fn parse_crcs(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Sidecar {
    /// Parses a whole sidecar file's bytes.
    #[cfg(test)]
    pub fn decode(bytes: &[u8]) -> Result<Sidecar, SidecarError> {
        let (length, version) = header(bytes, bytes.len() as u64)?;
        let end = HEADER_LEN + 4 * pieces(length) as usize;
        Ok(Sidecar {
            length,
            crcs: parse_crcs(&bytes[HEADER_LEN..end]),
            pages_at: (version == VERSION).then_some(end as u64),
        })
    }

    /// Reads the header and piece checksums of the sidecar `file` (the page checksums stay on
    /// disk until a reader asks for them).
    pub fn read(file: &File) -> Result<Sidecar, SidecarError> {
        let read = |e: io::Error| SidecarError::Read(e.to_string());
        let size = file.metadata().map_err(read)?.len();
        if size < HEADER_LEN as u64 {
            return Err(SidecarError::Short(size));
        }
        let head = read_exact_at(file, HEADER_LEN, 0).map_err(read)?;
        let (length, version) = header(&head, size)?;
        let count = pieces(length) as usize;
        let body = read_exact_at(file, 4 * count, HEADER_LEN as u64).map_err(read)?;
        Ok(Sidecar {
            length,
            crcs: parse_crcs(&body),
            pages_at: (version == VERSION).then_some((HEADER_LEN + 4 * count) as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write;

    #[test]
    fn round_trips() {
        let length = CHECKSUM_CHUNK as u64 * 2 + 1;
        let page_crcs: Vec<u32> = (0..pages(length) as u32).collect();
        let bytes = encode(length, &[1, 2, 3], &page_crcs);
        let s = Sidecar::decode(&bytes).expect("decode");
        assert_eq!((s.length, &s.crcs[..]), (length, &[1, 2, 3][..]));
        let at = s.pages_at.expect("version 2 has pages");
        assert_eq!(at, 16 + 12);
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(&bytes).expect("write");
        assert_eq!(Sidecar::read(&file), Ok(s));
        let read = dfs_proto::checksum::read_page_checksums(&file, at, 30, 3).expect("pages");
        assert_eq!(read, vec![30, 31, 32]);
        let empty = Sidecar::decode(&encode(0, &[], &[])).expect("empty");
        assert_eq!((empty.length, empty.crcs.len()), (0, 0));
    }

    #[test]
    fn version_1_is_read_without_pages() {
        let mut v1 = encode(10, &[7], &[]);
        v1[4..8].copy_from_slice(&1u32.to_le_bytes());
        let s = Sidecar::decode(&v1).expect("version 1");
        assert_eq!(
            s,
            Sidecar {
                length: 10,
                crcs: vec![7],
                pages_at: None
            }
        );
        // A version 2 sidecar without its page checksums is damaged.
        let mut short = v1.clone();
        short[4..8].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            Sidecar::decode(&short),
            Err(SidecarError::Size { .. })
        ));
    }

    #[test]
    fn damage_is_refused() {
        let bytes = encode(10, &[7], &[8]);
        assert!(matches!(
            Sidecar::decode(&bytes[..bytes.len() - 1]),
            Err(SidecarError::Size { .. })
        ));
        assert_eq!(Sidecar::decode(&bytes[..3]), Err(SidecarError::Short(3)));
        let mut huge = bytes.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            Sidecar::decode(&huge),
            Err(SidecarError::Size { .. })
        ));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(Sidecar::decode(&bad), Err(SidecarError::Magic));
    }
}
