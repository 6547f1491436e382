//! ReadBlock: stream a byte range of a replica, on the 64 KiB grid, with its stored checksums.
//!
//! The replica is opened and its first chunk (up to `TRANSFER_CHUNK` bytes) read on one trip to
//! a blocking thread; a longer range is then read by a blocking thread into a bounded channel,
//! with the kernel asked to bring the next [`DISK_AHEAD`] bytes in from disk meanwhile.
//! The reader on the other end verifies the checksums. A range that ends inside a
//! piece is widened to the end of that piece, so every chunk carries whole pieces.

use super::{blocking, store_status};
use crate::Node;
use crate::block_store::{Replica, StoreError};
use dfs_proto::checksum::CHECKSUM_CHUNK;
use dfs_proto::grpc::{DataChunk, ReadBlockRequest, ReadBlockResponse};
use dfs_proto::token::BlockOp;
use dfs_proto::{BlockId, Generation, TRANSFER_CHUNK};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// Chunks read ahead of the network.
const READ_AHEAD: usize = 4;
/// How far ahead of a long read the kernel is asked to bring the replica in from disk.
const DISK_AHEAD: u64 = 16 * 1024 * 1024;

pub(super) async fn read_block(
    node: &Arc<Node>,
    request: ReadBlockRequest,
    started: Instant,
) -> Result<ReceiverStream<Result<ReadBlockResponse, Status>>, Status> {
    let block = request
        .block
        .ok_or_else(|| Status::invalid_argument("the ReadBlock request names no block"))?;
    node.tokens
        .check(&request.access_token, &block, BlockOp::Read)?;
    let replica = Replica {
        id: BlockId(block.block_id),
        generation: Generation(block.generation),
    };
    let store = Arc::clone(&node.store);
    let (offset, length_wanted) = (request.offset, request.length);
    // Opening the replica and reading its first chunk is one trip to a blocking thread: a
    // short read (most random reads) needs no other.
    let (reader, range, first) = blocking(move || {
        let reader = store.open_reader(replica)?;
        let length = reader.length();
        if offset > length {
            return Ok((reader, None, None));
        }
        let (start, end) = aligned_range(offset, length_wanted, length);
        let want = (end - start).min(TRANSFER_CHUNK as u64) as usize;
        let first = reader.read_chunk(start, want);
        Ok((reader, Some((start, end)), Some(first)))
    })
    .await?;
    let length = reader.length();
    let (Some((start, end)), Some(first)) = (range, first) else {
        return Err(Status::out_of_range(format!(
            "offset {offset} is beyond the end of {replica} ({length} bytes)"
        )));
    };
    tracing::debug!(%replica, start, end, "read started");

    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let transfer = node.transfers.start();
    let first_len = first.as_ref().map_or(0, |c| c.data.len() as u64);
    let first_failed = first.is_err();
    let item = response(first, length);
    // The channel is empty and holds READ_AHEAD items: this cannot fail.
    let _ = tx.try_send(item);
    if !first_failed {
        node.metrics.bytes_read.increment(first_len);
    }
    let pos = start + first_len;
    if first_failed || pos >= end {
        node.metrics.reads.finished(!first_failed, started);
        drop(transfer);
        return Ok(ReceiverStream::new(rx));
    }
    let node = Arc::clone(node);
    tokio::task::spawn_blocking(move || {
        let _transfer = transfer;
        let mut pos = pos;
        let mut ok = true;
        // Up to where the kernel was asked to read ahead: the disk works on the next
        // `DISK_AHEAD` bytes (in large requests, several at once) while this thread sends.
        let mut advised = pos;
        loop {
            if advised < end && advised < pos + DISK_AHEAD / 2 {
                let to = (pos + DISK_AHEAD).min(end);
                reader.will_need(advised, to - advised);
                advised = to;
            }
            let want = (end - pos).min(TRANSFER_CHUNK as u64) as usize;
            let item = response(reader.read_chunk(pos, want), length);
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() {
                ok = false;
                break; // the reader went away
            }
            pos += want as u64;
            if failed {
                ok = false;
                break;
            }
            node.metrics.bytes_read.increment(want as u64);
            if pos >= end {
                break;
            }
        }
        node.metrics.reads.finished(ok, started);
    });
    Ok(ReceiverStream::new(rx))
}

/// One message of the stream: a chunk read from a replica of `block_length` bytes, or why not.
fn response(
    chunk: Result<DataChunk, StoreError>,
    block_length: u64,
) -> Result<ReadBlockResponse, Status> {
    chunk
        .map(|chunk| ReadBlockResponse {
            chunk: Some(chunk),
            block_length,
        })
        .map_err(store_status)
}

/// The bytes to send for `offset`/`length` (0 = to the end) of a replica of `block_len` bytes:
/// from the piece holding `offset` to the end of the piece holding the last byte wanted.
fn aligned_range(offset: u64, length: u64, block_len: u64) -> (u64, u64) {
    let piece = CHECKSUM_CHUNK as u64;
    let end = if length == 0 {
        block_len
    } else {
        offset.saturating_add(length).min(block_len)
    };
    let start = offset / piece * piece;
    let end = end.div_ceil(piece).saturating_mul(piece).min(block_len);
    (start, end.max(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = CHECKSUM_CHUNK as u64;

    #[test]
    fn ranges_widen_to_whole_pieces() {
        assert_eq!(aligned_range(0, 0, 10), (0, 10));
        assert_eq!(aligned_range(P + 5, 10, 4 * P), (P, 2 * P));
        assert_eq!(aligned_range(P + 5, P, 4 * P), (P, 3 * P));
        assert_eq!(aligned_range(P + 5, 0, 2 * P + 7), (P, 2 * P + 7));
        assert_eq!(aligned_range(0, 0, 0), (0, 0));
        assert_eq!(aligned_range(2 * P, 0, 2 * P), (2 * P, 2 * P));
        assert_eq!(aligned_range(5, u64::MAX, 100), (0, 100));
    }
}
