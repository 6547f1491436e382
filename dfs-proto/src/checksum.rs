//! CRC32C checksums over the fixed 64 KiB grid that every replica is stored and sent on.

use crate::grpc::DataChunk;

/// Bytes covered by one checksum.
pub const CHECKSUM_CHUNK: usize = 64 * 1024;

/// The CRC32C of every 64 KiB piece of `data` (the last piece may be shorter).
pub fn checksums(data: &[u8]) -> Vec<u32> {
    data.chunks(CHECKSUM_CHUNK).map(crc32c::crc32c).collect()
}

/// Why a chunk failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("chunk offset {offset} is not a multiple of {CHECKSUM_CHUNK}")]
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
    fn misaligned_and_miscounted_chunks_are_refused() {
        let mut c = chunk(0, vec![0u8; 100]);
        c.offset = 5;
        assert!(matches!(verify(&c), Err(ChecksumError::Misaligned { .. })));
        let mut c = chunk(0, vec![0u8; 100]);
        c.crc32c.push(0);
        assert!(matches!(verify(&c), Err(ChecksumError::Count { .. })));
    }
}
