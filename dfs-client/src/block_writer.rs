//! One block's `WriteBlock` call down its datanode pipeline: allocate the block at an index,
//! stream chunks (CRC32C per 64 KiB) in order, and finish once every datanode holds it durably.
//! Shared by the sequential [`FileWriter`](crate::FileWriter) and by random-access open files.

use crate::client::Client;
use crate::error::{Error, Result};
use bytes::Bytes;
use dfs_proto::InodeId;
use dfs_proto::checksum::checksums;
use dfs_proto::grpc::{
    BlockRef, DataChunk, WriteBlockHeader, WriteBlockRequest, WriteBlockResponse,
    write_block_request::Msg,
};
use dfs_proto::rest::{AllocateBlock, AllocateBlockRequest, LocatedBlock};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

/// Chunks queued to the gRPC stream of one block (each up to 1 MiB).
const CHUNKS_IN_FLIGHT: usize = 2;

/// One block's `WriteBlock` call in progress.
pub(crate) struct BlockStream {
    located: LocatedBlock,
    /// The first datanode of the pipeline (the one this client streams to).
    addr: String,
    tx: mpsc::Sender<WriteBlockRequest>,
    /// The call; taken when it is awaited (a failed stream cannot be finished).
    call: Option<AbortOnDrop<Result<WriteBlockResponse, tonic::Status>>>,
    /// Bytes of the block handed to the stream.
    sent: u64,
}

/// Cancels the gRPC call (resetting the stream) if the stream is dropped mid-block, so no
/// datanode stores a partial block as if it were complete.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl BlockStream {
    /// Allocates block `index` of `ino` (a new block, or a new generation of the block there)
    /// and starts its `WriteBlock` call with the pipeline header.
    pub(crate) async fn open(client: &Client, ino: InodeId, index: u64) -> Result<BlockStream> {
        let req = AllocateBlockRequest {
            ino,
            client: client.client_id().clone(),
            index,
            exclude: Vec::new(),
        };
        let located = client.call::<AllocateBlock>(&req).await?;
        let Some(first) = located.locations.first() else {
            return Err(Error::EmptyPipeline {
                block: located.block.id,
            });
        };
        let addr = first.grpc.clone();
        let mut datanode = client.datanode(&addr)?;
        let header = WriteBlockHeader {
            block: Some(BlockRef {
                block_id: located.block.id.0,
                generation: located.block.generation.0,
            }),
            downstream: located.locations[1..]
                .iter()
                .map(|d| d.grpc.clone())
                .collect(),
            expected_length: 0,
        };
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        // Cannot fail: the receiver is alive and the channel empty.
        let _ = tx.try_send(WriteBlockRequest {
            msg: Some(Msg::Header(header)),
        });
        let call = tokio::spawn(async move {
            datanode
                .write_block(ReceiverStream::new(rx))
                .await
                .map(|r| r.into_inner())
        });
        debug!(%ino, index, block = %located.block.id, generation = located.block.generation.0, pipeline = ?located.locations, "writing block");
        Ok(BlockStream {
            located,
            addr,
            tx,
            call: Some(AbortOnDrop(call)),
            sent: 0,
        })
    }

    /// Bytes of the block sent so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Sends the next `data` of the block. Every chunk but the block's last must be a multiple
    /// of 64 KiB long (the checksum grid).
    pub(crate) async fn send(&mut self, data: Bytes) -> Result<()> {
        let len = data.len() as u64;
        let chunk = DataChunk {
            offset: self.sent,
            crc32c: checksums(&data),
            data,
        };
        let msg = WriteBlockRequest {
            msg: Some(Msg::Chunk(chunk)),
        };
        if self.tx.send(msg).await.is_err() {
            // The call ended early: its status says why.
            return Err(self.failure().await);
        }
        self.sent += len;
        Ok(())
    }

    /// Ends the stream and waits until the pipeline holds the block durably. Answers the block
    /// (with its length) and the datanodes it was written to.
    pub(crate) async fn finish(self) -> Result<LocatedBlock> {
        let BlockStream {
            mut located,
            addr,
            tx,
            call,
            sent,
        } = self;
        drop(tx);
        let Some(mut call) = call else {
            return Err(Error::WriterPoisoned);
        };
        let resp = match (&mut call.0).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(status)) => return Err(Error::datanode(&addr, status)),
            Err(join) => {
                return Err(Error::datanode(
                    &addr,
                    tonic::Status::aborted(join.to_string()),
                ));
            }
        };
        if resp.length != sent {
            return Err(Error::Protocol {
                addr,
                block: located.block.id,
                what: "the pipeline stored a different length than was sent",
            });
        }
        if resp.stored_on.len() < located.locations.len() {
            warn!(block = %located.block.id, stored_on = ?resp.stored_on, wanted = located.locations.len(), "block stored on fewer datanodes than its pipeline");
            located
                .locations
                .retain(|d| resp.stored_on.contains(&d.grpc));
        }
        located.block.len = sent;
        Ok(located)
    }

    /// Why the call ended before the writer finished it.
    async fn failure(&mut self) -> Error {
        let block = self.located.block.id;
        let Some(mut call) = self.call.take() else {
            return Error::WriterPoisoned;
        };
        match (&mut call.0).await {
            Ok(Err(status)) => Error::datanode(&self.addr, status),
            Ok(Ok(_)) => Error::Protocol {
                addr: self.addr.clone(),
                block,
                what: "the datanode answered before the block was complete",
            },
            Err(join) => Error::datanode(&self.addr, tonic::Status::aborted(join.to_string())),
        }
    }
}
