//! CRC32C checksums over the fixed 64 KiB grid that every replica is stored and sent on, and
//! over the 4 KiB pages a replica's sidecar also covers, so that a small read of a replica's
//! file is checked without reading its whole piece.

use crate::grpc::DataChunk;
use std::fs::File;
use std::io;

/// Bytes covered by one checksum.
pub const CHECKSUM_CHUNK: usize = 64 * 1024;
/// Bytes covered by one page checksum.
pub const CHECKSUM_PAGE: usize = 4096;

/// The CRC32C of every 64 KiB piece of `data` (the last piece may be shorter).
pub fn checksums(data: &[u8]) -> Vec<u32> {
    data.chunks(CHECKSUM_CHUNK).map(crc32c::crc32c).collect()
}

/// Extends `pages`, the page checksums of a replica's first `length` bytes, with the next
/// bytes `data` (completing a last partial page first).
pub fn extend_page_checksums(pages: &mut Vec<u32>, length: u64, data: &[u8]) {
    let partial = (length % CHECKSUM_PAGE as u64) as usize;
    let mut rest = data;
    if partial != 0
        && let Some(last) = pages.last_mut()
    {
        let (head, tail) = rest.split_at((CHECKSUM_PAGE - partial).min(rest.len()));
        *last = crc32c::crc32c_append(*last, head);
        rest = tail;
    }
    pages.extend(rest.chunks(CHECKSUM_PAGE).map(crc32c::crc32c));
}

/// Checks `data`, read at `offset` (a multiple of 4 KiB) of a replica, against the checksums
/// of the pages it covers, `crcs`.
pub fn verify_pages(offset: u64, data: &[u8], crcs: &[u32]) -> Result<(), ChecksumError> {
    if !offset.is_multiple_of(CHECKSUM_PAGE as u64) {
        return Err(ChecksumError::Misaligned { offset });
    }
    let want = data.len().div_ceil(CHECKSUM_PAGE);
    if crcs.len() != want {
        return Err(ChecksumError::Count {
            offset,
            len: data.len(),
            got: crcs.len(),
            want,
        });
    }
    for (i, (page, expected)) in data.chunks(CHECKSUM_PAGE).zip(crcs).enumerate() {
        if crc32c::crc32c(page) != *expected {
            return Err(ChecksumError::PageMismatch {
                page_offset: offset + (i * CHECKSUM_PAGE) as u64,
            });
        }
    }
    Ok(())
}

/// Reads `count` page checksums, from the `first`, out of a sidecar file whose page checksums
/// (little-endian u32s) start at byte `at`.
pub fn read_page_checksums(
    sidecar: &File,
    at: u64,
    first: usize,
    count: usize,
) -> io::Result<Vec<u32>> {
    let bytes = crate::file_io::read_exact_at(sidecar, 4 * count, at + 4 * first as u64)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Why a chunk failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("chunk offset {offset} is not on the checksum grid")]
    Misaligned { offset: u64 },
    #[error("chunk at offset {offset} has {got} checksums for {len} bytes (want {want})")]
    Count {
        offset: u64,
        len: usize,
        got: usize,
        want: usize,
    },
    #[error("checksum mismatch in the 64 KiB piece at block offset {piece_offset}")]
    Mismatch { piece_offset: u64 },
    #[error("checksum mismatch in the 4 KiB page at block offset {page_offset}")]
    PageMismatch { page_offset: u64 },
}

/// Checks that `chunk` sits on the 64 KiB grid and that every piece matches its CRC32C.
pub fn verify(chunk: &DataChunk) -> Result<(), ChecksumError> {
    if !chunk.offset.is_multiple_of(CHECKSUM_CHUNK as u64) {
        return Err(ChecksumError::Misaligned {
            offset: chunk.offset,
        });
    }
    let want = chunk.data.len().div_ceil(CHECKSUM_CHUNK);
    if chunk.crc32c.len() != want {
        return Err(ChecksumError::Count {
            offset: chunk.offset,
            len: chunk.data.len(),
            got: chunk.crc32c.len(),
            want,
        });
    }
    for (i, (piece, expected)) in chunk
        .data
        .chunks(CHECKSUM_CHUNK)
        .zip(&chunk.crc32c)
        .enumerate()
    {
        if crc32c::crc32c(piece) != *expected {
            return Err(ChecksumError::Mismatch {
                piece_offset: chunk.offset + (i * CHECKSUM_CHUNK) as u64,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn chunk(offset: u64, data: Vec<u8>) -> DataChunk {
        DataChunk {
            offset,
            crc32c: checksums(&data),
            data: Bytes::from(data),
        }
    }

    #[test]
    fn good_chunk_verifies() {
        let c = chunk(0, vec![7u8; CHECKSUM_CHUNK * 2 + 10]);
        assert_eq!(c.crc32c.len(), 3);
        assert_eq!(verify(&c), Ok(()));
    }

    #[test]
    fn flipped_bit_is_found_in_its_piece() {
        let mut data = vec![1u8; CHECKSUM_CHUNK * 3];
        let mut c = chunk(CHECKSUM_CHUNK as u64, data.clone());
        data[CHECKSUM_CHUNK + 5] ^= 0x10;
        c.data = Bytes::from(data);
        assert_eq!(
            verify(&c),
            Err(ChecksumError::Mismatch {
                piece_offset: 2 * CHECKSUM_CHUNK as u64
            })
        );
    }

    #[test]
    fn page_checksums_grow_with_appends_of_any_size() {
        let data: Vec<u8> = (0..3 * CHECKSUM_PAGE + 100)
            .map(|i| (i % 251) as u8)
            .collect();
        let whole: Vec<u32> = data.chunks(CHECKSUM_PAGE).map(crc32c::crc32c).collect();
        for cut in [0, 1, 100, CHECKSUM_PAGE, CHECKSUM_PAGE + 7, data.len()] {
            let mut pages = Vec::new();
            extend_page_checksums(&mut pages, 0, &data[..cut]);
            extend_page_checksums(&mut pages, cut as u64, &data[cut..]);
            assert_eq!(pages, whole, "cut at {cut}");
        }
    }

    #[test]
    fn pages_verify_and_a_flip_is_found_in_its_page() {
        let mut data = vec![3u8; 2 * CHECKSUM_PAGE + 10];
        let crcs: Vec<u32> = data.chunks(CHECKSUM_PAGE).map(crc32c::crc32c).collect();
        let at = 5 * CHECKSUM_PAGE as u64;
        assert_eq!(verify_pages(at, &data, &crcs), Ok(()));
        data[CHECKSUM_PAGE + 1] ^= 1;
        assert_eq!(
            verify_pages(at, &data, &crcs),
            Err(ChecksumError::PageMismatch {
                page_offset: at + CHECKSUM_PAGE as u64
            })
        );
        assert!(matches!(
            verify_pages(at + 1, &data, &crcs),
            Err(ChecksumError::Misaligned { .. })
        ));
        assert!(matches!(
            verify_pages(at, &data, &crcs[..2]),
            Err(ChecksumError::Count { .. })
        ));
    }

    #[test]
    fn misaligned_and_miscounted_chunks_are_refused() {
        let mut c = chunk(0, vec![0u8; 100]);
        c.offset = 5;
        assert!(matches!(verify(&c), Err(ChecksumError::Misaligned { .. })));
        let mut c = chunk(0, vec![0u8; 100]);
        c.crc32c.push(0);
        assert!(matches!(verify(&c), Err(ChecksumError::Count { .. })));
    }
}
