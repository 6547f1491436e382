//! Sequential file writes: data is cut into 1 MiB chunks (CRC32C per 64 KiB) and streamed into
//! the current block's `WriteBlock` call down the datanode pipeline; at the block size the stream
//! is finished and the next block allocated. `close` commits the new block list and size.
//!
//! Memory per open writer stays a few MiB: one pending chunk plus a bounded channel of chunks in
//! flight to the gRPC task.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::lease::LeaseGuard;
use bytes::BytesMut;
use dfs_proto::checksum::checksums;
use dfs_proto::grpc::{
    BlockRef, DataChunk, WriteBlockHeader, WriteBlockRequest, WriteBlockResponse,
    write_block_request::Msg,
};
use dfs_proto::rest::{
    AllocateBlock, AllocateBlockRequest, Attr, BlockInfo, Commit, CommitRequest, LeaseRequest,
    LocatedBlock, ReleaseLease,
};
use dfs_proto::{InodeId, TRANSFER_CHUNK};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

/// Chunks queued to the gRPC stream of one block (each up to 1 MiB).
const CHUNKS_IN_FLIGHT: usize = 2;

/// Writes a file from its start, replacing its contents at `close`. Created by
/// [`Client::create_file`](crate::Client::create_file) or
/// [`Client::overwrite_file`](crate::Client::overwrite_file), which take the write lease.
pub struct FileWriter {
    client: Client,
    ino: InodeId,
    block_size: u64,
    /// Blocks this writer finished, in order: the file's block list at commit.
    blocks: Vec<BlockInfo>,
    /// Bytes not yet sent: less than a chunk, and never past the current block's end.
    pending: BytesMut,
    /// The block being streamed, once its first chunk is sent.
    current: Option<OpenBlock>,
    /// Bytes accepted by `write` so far: the file's size at close.
    size: u64,
    /// Set when a write failed: the data already accepted is lost, so later writes must fail too.
    poisoned: bool,
    /// Keeps the lease renewal task alive while this writer is open.
    _lease: LeaseGuard,
}

/// One block's `WriteBlock` call in progress.
struct OpenBlock {
    located: LocatedBlock,
    /// The first datanode of the pipeline (the one this client streams to).
    addr: String,
    tx: mpsc::Sender<WriteBlockRequest>,
    call: AbortOnDrop<Result<WriteBlockResponse, tonic::Status>>,
    /// Bytes of the block handed to the stream.
    sent: u64,
}

/// Cancels the gRPC call (resetting the stream) if the writer is dropped mid-block, so no
/// datanode stores a partial block as if it were complete.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl FileWriter {
    /// A writer for `ino`, whose lease this client already holds.
    pub(crate) async fn new(client: &Client, attr: &Attr) -> Result<FileWriter> {
        let lease = client.hold_leases().await?;
        let block_size = match attr.block_size {
            0 => client.cluster_info().await?.default_block_size,
            n => n,
        };
        if block_size == 0 {
            return Err(Error::api(
                dfs_proto::ErrorCode::Invalid,
                "the cluster reports a block size of 0",
            ));
        }
        Ok(FileWriter {
            client: client.clone(),
            ino: attr.ino,
            block_size,
            blocks: Vec::new(),
            pending: BytesMut::new(),
            current: None,
            size: 0,
            poisoned: false,
            _lease: lease,
        })
    }

    pub fn ino(&self) -> InodeId {
        self.ino
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `data`. Returns once it is buffered or handed to the pipeline; durability comes
    /// with `close`.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        if self.poisoned {
            return Err(Error::WriterPoisoned);
        }
        let result = self.write_inner(data).await;
        if result.is_err() {
            self.poison();
        }
        result
    }

    async fn write_inner(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let fill = self.size - self.blocks.len() as u64 * self.block_size;
            let room_in_block = self.block_size - fill;
            let room_in_chunk = (TRANSFER_CHUNK - self.pending.len()) as u64;
            let n = (data.len() as u64).min(room_in_block).min(room_in_chunk) as usize;
            self.pending.extend_from_slice(&data[..n]);
            self.size += n as u64;
            data = &data[n..];
            let block_full = fill + n as u64 == self.block_size;
            if block_full || self.pending.len() == TRANSFER_CHUNK {
                self.send_pending().await?;
            }
            if block_full {
                self.finish_block().await?;
            }
        }
        Ok(())
    }

    /// Finishes the last block, commits the block list and size, and releases the lease.
    pub async fn close(mut self) -> Result<Attr> {
        if self.poisoned {
            self.release().await;
            return Err(Error::WriterPoisoned);
        }
        let result = self.close_inner().await;
        if result.is_err() {
            self.poison();
            self.release().await;
        }
        result
    }

    async fn close_inner(&mut self) -> Result<Attr> {
        if !self.pending.is_empty() {
            self.send_pending().await?;
        }
        if self.current.is_some() {
            self.finish_block().await?;
        }
        let req = CommitRequest {
            ino: self.ino,
            client: self.client.client_id().clone(),
            blocks: self.blocks.clone(),
            size: self.size,
            release: true,
        };
        let attr = self.client.call::<Commit>(&req).await?;
        debug!(ino = %self.ino, size = self.size, blocks = self.blocks.len(), "committed file");
        Ok(attr)
    }

    /// Gives up: cancels the block in flight and releases the lease; the file keeps its last
    /// committed contents.
    pub async fn abort(mut self) {
        self.poison();
        self.release().await;
    }

    fn poison(&mut self) {
        self.poisoned = true;
        self.current = None;
        self.pending.clear();
    }

    async fn release(&self) {
        let req = LeaseRequest {
            ino: self.ino,
            client: self.client.client_id().clone(),
        };
        if let Err(error) = self.client.call::<ReleaseLease>(&req).await {
            warn!(ino = %self.ino, %error, "could not release the write lease; it will expire");
        }
    }

    /// Streams the pending bytes as one chunk of the current block, opening it if needed.
    async fn send_pending(&mut self) -> Result<()> {
        if self.current.is_none() {
            self.current = Some(self.open_block().await?);
        }
        let Some(block) = self.current.as_mut() else {
            return Ok(());
        };
        let data = self.pending.split().freeze();
        let len = data.len() as u64;
        let chunk = DataChunk {
            offset: block.sent,
            crc32c: checksums(&data),
            data,
        };
        let msg = WriteBlockRequest {
            msg: Some(Msg::Chunk(chunk)),
        };
        if block.tx.send(msg).await.is_err() {
            // The call ended early: its status says why.
            let Some(block) = self.current.take() else {
                return Err(Error::WriterPoisoned);
            };
            return Err(block.failure().await);
        }
        block.sent += len;
        Ok(())
    }

    /// Allocates the next block and starts its `WriteBlock` call with the pipeline header.
    async fn open_block(&self) -> Result<OpenBlock> {
        let index = self.blocks.len() as u64;
        let req = AllocateBlockRequest {
            ino: self.ino,
            client: self.client.client_id().clone(),
            index,
            exclude: Vec::new(),
        };
        let located = self.client.call::<AllocateBlock>(&req).await?;
        let Some(first) = located.locations.first() else {
            return Err(Error::EmptyPipeline {
                block: located.block.id,
            });
        };
        let addr = first.grpc.clone();
        let mut datanode = self.client.datanode(&addr)?;
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
        debug!(ino = %self.ino, index, block = %located.block.id, pipeline = ?located.locations, "writing block");
        Ok(OpenBlock {
            located,
            addr,
            tx,
            call: AbortOnDrop(call),
            sent: 0,
        })
    }

    /// Ends the current block's stream and waits until the pipeline holds it durably.
    async fn finish_block(&mut self) -> Result<()> {
        let Some(block) = self.current.take() else {
            return Ok(());
        };
        let OpenBlock {
            located,
            addr,
            tx,
            mut call,
            sent,
        } = block;
        drop(tx);
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
        }
        self.blocks.push(BlockInfo {
            id: located.block.id,
            generation: located.block.generation,
            len: sent,
        });
        Ok(())
    }
}

impl OpenBlock {
    /// Why the call ended before the writer finished it.
    async fn failure(mut self) -> Error {
        let block = self.located.block.id;
        match (&mut self.call.0).await {
            Ok(Err(status)) => Error::datanode(&self.addr, status),
            Ok(Ok(_)) => Error::Protocol {
                addr: self.addr,
                block,
                what: "the datanode answered before the block was complete",
            },
            Err(join) => Error::datanode(&self.addr, tonic::Status::aborted(join.to_string())),
        }
    }
}
