//! Sequential file writes: data is cut into 1 MiB chunks (CRC32C per 64 KiB) and streamed into
//! the current block's `WriteBlock` call down the datanode pipeline; at the block size the stream
//! is finished and the next block allocated. A finished block's replicas are made durable while
//! the next block streams (one block at a time finishes behind the current one). `close` commits
//! the new block list and size.
//!
//! Memory per open writer stays a few MiB: one pending chunk plus a bounded channel of chunks in
//! flight to the gRPC task.

use crate::block_writer::{BlockStream, Finishing};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::lease::LeaseGuard;
use bytes::BytesMut;
use dfs_proto::rest::{Attr, BlockInfo, Commit, CommitRequest, LeaseRequest, ReleaseLease};
use dfs_proto::{InodeId, TRANSFER_CHUNK};
use tracing::{debug, warn};

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
    current: Option<BlockStream>,
    /// The block before it, finishing (its pipeline syncing it) while `current` streams.
    finishing: Option<Finishing>,
    /// Bytes accepted by `write` so far: the file's size at close.
    size: u64,
    /// Set when a write failed: the data already accepted is lost, so later writes must fail too.
    poisoned: bool,
    /// Keeps the lease renewal task alive while this writer is open.
    _lease: LeaseGuard,
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
            finishing: None,
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
            let fill = self.size - self.blocks_done() * self.block_size;
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
        self.await_finishing().await?;
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
        if let Some(task) = self.finishing.take() {
            task.abort();
        }
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
            let index = self.blocks_done();
            self.current = Some(BlockStream::open(&self.client, self.ino, index).await?);
        }
        let Some(block) = self.current.as_mut() else {
            return Ok(());
        };
        let data = self.pending.split().freeze();
        if let Err(e) = block.send(data).await {
            self.current = None;
            return Err(e);
        }
        Ok(())
    }

    /// Blocks no longer streamed: finished, or finishing.
    fn blocks_done(&self) -> u64 {
        (self.blocks.len() + usize::from(self.finishing.is_some())) as u64
    }

    /// Ends the current block's stream; its pipeline makes it durable in the background while
    /// the next block streams (after the block before it has finished).
    async fn finish_block(&mut self) -> Result<()> {
        let Some(block) = self.current.take() else {
            return Ok(());
        };
        self.await_finishing().await?;
        self.finishing = Some(block.finish_behind());
        Ok(())
    }

    /// Waits until the finishing block is durable on its pipeline; it joins the block list.
    async fn await_finishing(&mut self) -> Result<()> {
        let Some(task) = self.finishing.take() else {
            return Ok(());
        };
        let located = task.wait().await?;
        self.blocks.push(located.block);
        Ok(())
    }
}
