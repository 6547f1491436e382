//! One block's `WriteBlock` call down its datanode pipeline: allocate the block at an index,
//! stream chunks (CRC32C per 64 KiB) in order, and finish once every datanode holds it durably.
//! Shared by the sequential [`FileWriter`](crate::FileWriter) and by random-access open files.
//!
//! Pipeline recovery: when a datanode of the pipeline fails mid-block (the first one's stream
//! breaks, or a datanode answers `UNAVAILABLE` naming the downstream one that failed), the
//! failed datanode is dropped: the namenode allocates a fresh generation of the block on a
//! pipeline without it (`RecoverBlock`), and the chunks sent so far are replayed to the new
//! pipeline before the write goes on. The old generation's partial replicas can never be read:
//! a commit names only the new one, and the old one is deleted when the lease ends. The write
//! fails only when the namenode cannot find the cluster's minimum of datanodes for the block.
//! The chunks of the block in flight are kept until the pipeline acknowledges the block: a few
//! MiB in memory, the rest in a temporary file ([`crate::replay`]).

use crate::client::Client;
use crate::error::{Error, Result};
use crate::replay::ReplayLog;
use bytes::Bytes;
use dfs_proto::checksum::checksums;
use dfs_proto::grpc::{
    BlockRef, DataChunk, WriteBlockHeader, WriteBlockRequest, WriteBlockResponse,
    write_block_request::Msg,
};
use dfs_proto::rest::{
    AllocateBlock, AllocateBlockRequest, LocatedBlock, RecoverBlock, RecoverBlockRequest,
};
use dfs_proto::{DatanodeId, ErrorCode, InodeId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

/// Chunks queued to the gRPC stream of one block (each up to 1 MiB).
const CHUNKS_IN_FLIGHT: usize = 2;
/// Metadata key a datanode sets on an `UNAVAILABLE` answer: the gRPC address of the datanode of
/// the pipeline that failed.
const FAILED_DATANODE: &str = "dfs-failed-datanode";
/// Pipelines rebuilt for one block before the write gives up.
const MAX_RECOVERIES: usize = 5;

/// One block's `WriteBlock` call in progress.
pub(crate) struct BlockStream {
    client: Client,
    ino: InodeId,
    located: LocatedBlock,
    /// The call to the first datanode of the current pipeline.
    pipe: Pipe,
    /// Bytes of the block handed to the stream.
    sent: u64,
    /// Every chunk of the block sent so far, for a replay to a rebuilt pipeline.
    kept: ReplayLog,
    /// Datanodes that failed while writing this block.
    failed: Vec<DatanodeId>,
}

/// The `WriteBlock` call to one pipeline.
struct Pipe {
    /// The first datanode of the pipeline (the one this client streams to).
    addr: String,
    tx: mpsc::Sender<WriteBlockRequest>,
    /// The call; taken when it is awaited (a failed stream cannot be finished).
    call: Option<AbortOnDrop<Result<WriteBlockResponse, tonic::Status>>>,
}

/// Cancels the gRPC call (resetting the stream) if the stream is dropped mid-block, so no
/// datanode stores a partial block as if it were complete.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Pipe {
    /// Starts the `WriteBlock` call with the pipeline header.
    fn start(client: &Client, located: &LocatedBlock) -> Result<Pipe> {
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
            access_token: located.token.clone().unwrap_or_default(),
            background_copy: false,
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
        Ok(Pipe {
            addr,
            tx,
            call: Some(AbortOnDrop(call)),
        })
    }

    /// Sends one chunk; on failure answers why the call ended.
    async fn send(&mut self, offset: u64, data: Bytes, block: &LocatedBlock) -> Result<()> {
        let chunk = DataChunk {
            offset,
            crc32c: checksums(&data),
            data,
        };
        let msg = WriteBlockRequest {
            msg: Some(Msg::Chunk(chunk)),
        };
        if self.tx.send(msg).await.is_err() {
            // The call ended early: its status says why.
            return Err(self.failure(block).await);
        }
        Ok(())
    }

    /// Ends the stream and waits for the pipeline's answer.
    async fn finish(self) -> Result<WriteBlockResponse> {
        let Pipe { addr, tx, call } = self;
        drop(tx);
        let Some(mut call) = call else {
            return Err(Error::WriterPoisoned);
        };
        match (&mut call.0).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(status)) => Err(Error::datanode(&addr, status)),
            Err(join) => Err(Error::datanode(
                &addr,
                tonic::Status::aborted(join.to_string()),
            )),
        }
    }

    /// Why the call ended before the writer finished it.
    async fn failure(&mut self, block: &LocatedBlock) -> Error {
        let Some(mut call) = self.call.take() else {
            return Error::WriterPoisoned;
        };
        match (&mut call.0).await {
            Ok(Err(status)) => Error::datanode(&self.addr, status),
            Ok(Ok(_)) => Error::Protocol {
                addr: self.addr.clone(),
                block: block.block.id,
                what: "the datanode answered before the block was complete",
            },
            Err(join) => Error::datanode(&self.addr, tonic::Status::aborted(join.to_string())),
        }
    }
}

/// The datanode of `located`'s pipeline that `err` blames, if the error is a datanode's at all
/// (namenode and local errors are not recovered from).
fn blamed(err: &Error, located: &LocatedBlock) -> Option<DatanodeId> {
    let (addr, status) = match err {
        Error::Datanode { addr, status } => (addr.as_str(), Some(status)),
        Error::Protocol { addr, .. } => (addr.as_str(), None),
        _ => return None,
    };
    let named = status
        .and_then(|s| s.metadata().get(FAILED_DATANODE))
        .and_then(|v| v.to_str().ok())
        .unwrap_or(addr);
    located
        .locations
        .iter()
        .find(|d| d.grpc == named)
        .or_else(|| located.locations.first())
        .map(|d| d.id.clone())
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
        let pipe = Pipe::start(client, &located)?;
        debug!(%ino, index, block = %located.block.id, generation = located.block.generation.0, pipeline = ?located.locations, "writing block");
        Ok(BlockStream {
            client: client.clone(),
            ino,
            located,
            pipe,
            sent: 0,
            kept: ReplayLog::default(),
            failed: Vec::new(),
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
        let (_, sent) = tokio::join!(
            self.kept.push(data.clone()),
            self.pipe.send(self.sent, data, &self.located)
        );
        if let Err(err) = sent {
            // The replay to the rebuilt pipeline sends this chunk too.
            self.recover(err).await?;
        }
        self.sent += len;
        Ok(())
    }

    /// Ends the stream and lets the pipeline make the block durable in a task, while the
    /// caller goes on (with the next block); [`Finishing::wait`] answers what `finish` would.
    pub(crate) fn finish_behind(self) -> Finishing {
        Finishing {
            index: self.located.index,
            task: tokio::spawn(self.finish()),
        }
    }

    /// Ends the stream and waits until the pipeline holds the block durably. Answers the block
    /// (with its length) and the datanodes it was written to.
    pub(crate) async fn finish(mut self) -> Result<LocatedBlock> {
        loop {
            let pipe = std::mem::replace(&mut self.pipe, Pipe::closed());
            let addr = pipe.addr.clone();
            match pipe.finish().await {
                Ok(resp) => return self.accept(resp, addr),
                Err(err) => self.recover(err).await?,
            }
        }
    }

    fn accept(self, resp: WriteBlockResponse, addr: String) -> Result<LocatedBlock> {
        let mut located = self.located;
        let sent = self.sent;
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

    /// Drops the datanode `err` blames, has the namenode allocate a fresh generation on a
    /// pipeline without it, and replays every chunk sent so far; retried while datanodes keep
    /// failing, up to [`MAX_RECOVERIES`] times. Fails with `err` if no datanode is to blame.
    async fn recover(&mut self, mut err: Error) -> Result<()> {
        for _ in 0..MAX_RECOVERIES {
            let Some(bad) = blamed(&err, &self.located) else {
                return Err(err);
            };
            warn!(ino = %self.ino, index = self.located.index, block = %self.located.block.id, datanode = %bad, error = %err, "datanode failed mid-block; rebuilding the pipeline without it");
            if !self.failed.contains(&bad) {
                self.failed.push(bad);
            }
            let req = RecoverBlockRequest {
                ino: self.ino,
                client: self.client.client_id().clone(),
                index: self.located.index,
                block: self.located.block,
                failed: self.failed.clone(),
            };
            // Refused when too few datanodes are left: the write fails with the datanode's
            // error, or ENOSPC when no datanode has room.
            let located = match self.client.call::<RecoverBlock>(&req).await {
                Ok(located) => located,
                Err(e) if e.code() == Some(ErrorCode::NoSpace) => return Err(e),
                Err(e) => {
                    warn!(ino = %self.ino, error = %e, "pipeline recovery refused");
                    return Err(err);
                }
            };
            debug!(ino = %self.ino, index = located.index, block = %located.block.id, generation = located.block.generation.0, pipeline = ?located.locations, "pipeline rebuilt");
            self.located = located;
            self.pipe = Pipe::start(&self.client, &self.located)?;
            match self.replay().await {
                Ok(()) => return Ok(()),
                Err(e) => err = e,
            }
        }
        Err(err)
    }

    /// Sends every chunk of the block again, to the current pipeline.
    async fn replay(&mut self) -> Result<()> {
        let mut offset = 0u64;
        for i in 0..self.kept.len() {
            let data = self.kept.get(i).await?;
            let len = data.len() as u64;
            self.pipe.send(offset, data, &self.located).await?;
            offset += len;
        }
        Ok(())
    }
}

/// A block being made durable by its pipeline in the background ([`BlockStream::finish_behind`]).
pub(crate) struct Finishing {
    index: u64,
    task: JoinHandle<Result<LocatedBlock>>,
}

impl Finishing {
    /// The block's position in its file.
    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    /// Waits until the pipeline holds the block durably (or failed).
    pub(crate) async fn wait(self) -> Result<LocatedBlock> {
        self.task.await.map_err(|e| {
            Error::api(
                ErrorCode::Io,
                format!("finishing block {} failed: {e}", self.index),
            )
        })?
    }

    /// Gives the block up: its pipeline is reset and keeps nothing.
    pub(crate) fn abort(self) {
        self.task.abort();
    }
}

impl Pipe {
    /// A pipe whose call is gone (stands in while the real one is being finished).
    fn closed() -> Pipe {
        let (tx, _) = mpsc::channel(1);
        Pipe {
            addr: String::new(),
            tx,
            call: None,
        }
    }
}
