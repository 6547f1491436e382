//! WriteBlock: receive a block, write it locally and forward it down the pipeline at once.
//!
//! Each verified chunk goes both to a blocking writer thread (through a bounded channel) and
//! to the next datanode's WriteBlock stream (also bounded), so disk and network overlap and a
//! slow stage slows the writer instead of filling memory. When the writer's stream ends the
//! local replica is made durable, the downstream answer is awaited, and the block is reported
//! to the namenodes. Dropping the handler (a broken stream) leaves nothing behind locally and
//! resets the downstream stream, so nothing is kept there either.

use super::{blocking, checksum_status, store_status};
use crate::Node;
use crate::block_store::{BlockWriter, Replica, StoreError};
use crate::peers::{OutboundSender, outbound};
use dfs_proto::grpc::write_block_request::Msg;
use dfs_proto::grpc::{DataChunk, WriteBlockHeader, WriteBlockRequest, WriteBlockResponse};
use dfs_proto::rest::BlockInfo;
use dfs_proto::token::BlockOp;
use dfs_proto::{BlockId, Generation, checksum};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status, Streaming};

/// Metadata key of an `UNAVAILABLE` WriteBlock answer: the gRPC address of the datanode that
/// failed, so the writer can exclude it.
pub const FAILED_DATANODE: &str = "dfs-failed-datanode";

/// Messages in flight to each pipeline stage.
const STAGE_DEPTH: usize = 4;

pub(super) async fn write_block(
    node: &Arc<Node>,
    mut inbound: Streaming<WriteBlockRequest>,
) -> Result<WriteBlockResponse, Status> {
    let _transfer = node.transfers.start();
    let first = tokio::time::timeout(node.idle_timeout, inbound.message())
        .await
        .map_err(|_| Status::deadline_exceeded("no WriteBlock header within the idle timeout"))?;
    let header = match first? {
        Some(WriteBlockRequest {
            msg: Some(Msg::Header(header)),
        }) => header,
        _ => {
            return Err(Status::invalid_argument(
                "the first WriteBlock message must be a header",
            ));
        }
    };
    let block = header
        .block
        .ok_or_else(|| Status::invalid_argument("the WriteBlock header names no block"))?;
    let replica = Replica {
        id: BlockId(block.block_id),
        generation: Generation(block.generation),
    };
    if replica.id.0 == 0 {
        return Err(Status::invalid_argument("block id 0 stands for a hole"));
    }
    node.tokens
        .check(&header.access_token, &block, BlockOp::Write)?;
    tracing::debug!(%replica, downstream = ?header.downstream, "write started");

    let expected = header.expected_length;
    if expected > dfs_proto::MAX_BLOCK_SIZE {
        return Err(Status::invalid_argument(format!(
            "expected length {expected} is beyond the largest block ({} bytes)",
            dfs_proto::MAX_BLOCK_SIZE
        )));
    }
    let store = Arc::clone(&node.store);
    let background = header.background_copy;
    let writer = blocking(move || {
        let mut writer = store.create(replica, expected)?;
        if background {
            writer.bypass_cache();
        }
        Ok(writer)
    })
    .await?;
    let local = LocalWrite::start(writer);
    let mut downstream = match header.downstream.split_first() {
        Some((next, rest)) => {
            // The same header for the rest of the pipeline.
            let forward = WriteBlockHeader {
                downstream: rest.to_vec(),
                ..header.clone()
            };
            Some(Downstream::start(node, next, forward).await?)
        }
        None => None,
    };

    match receive(
        &mut inbound,
        &local,
        downstream.as_mut(),
        expected,
        node.idle_timeout,
    )
    .await
    {
        Ok(()) => {}
        Err(Stop::Refused(status)) => {
            local.abort().await;
            tracing::info!(%replica, error = %status, "write refused; nothing kept");
            return Err(status);
        }
        Err(Stop::WriterFailed) => return Err(local.fail().await),
        Err(Stop::DownstreamFailed) => {
            // Fail fast so the writer can rebuild its pipeline without the failed datanode
            // (under a new generation) instead of streaming the rest of the block for nothing.
            local.abort().await;
            let status = match downstream.take() {
                Some(d) => d.failure().await,
                None => Status::internal("the downstream datanode failed"),
            };
            tracing::info!(%replica, error = %status, "downstream failed; nothing kept");
            return Err(status);
        }
    }
    let finish_downstream = async {
        match downstream.take() {
            Some(d) => Some(d.finish().await),
            None => None,
        }
    };
    let (info, downstream_result) = tokio::join!(local.finish(), finish_downstream);
    let info = info?;
    node.reports.received(info);
    tracing::info!(%replica, length = info.len, "replica stored");
    let mut stored_on = vec![node.grpc_addr.clone()];
    match downstream_result {
        None => {}
        Some(Ok(response)) => stored_on.extend(response.stored_on),
        Some(Err(status)) => return Err(status),
    }
    Ok(WriteBlockResponse {
        length: info.len,
        stored_on,
    })
}

/// Why receiving stopped early.
enum Stop {
    /// The writer's stream was bad or broke off.
    Refused(Status),
    /// The local writer thread stopped (its result says why).
    WriterFailed,
    /// The next datanode stopped taking the stream (its answer says why).
    DownstreamFailed,
}

/// Receives every chunk after the header, checks it, and hands it to the local writer and the
/// next datanode at once. Answers once the writer's stream ended with the whole block.
async fn receive(
    inbound: &mut Streaming<WriteBlockRequest>,
    local: &LocalWrite,
    mut downstream: Option<&mut Downstream>,
    expected: u64,
    idle_timeout: std::time::Duration,
) -> Result<(), Stop> {
    let refuse = |msg: String| Err(Stop::Refused(Status::invalid_argument(msg)));
    let mut next_offset = 0u64;
    loop {
        let Ok(next) = tokio::time::timeout(idle_timeout, inbound.message()).await else {
            return Err(Stop::Refused(Status::deadline_exceeded(format!(
                "no WriteBlock message for {idle_timeout:?} at offset {next_offset}; nothing kept"
            ))));
        };
        let chunk = match next {
            Ok(Some(WriteBlockRequest {
                msg: Some(Msg::Chunk(chunk)),
            })) => chunk,
            Ok(None) => break,
            Ok(Some(_)) => {
                return refuse("only data chunks may follow the WriteBlock header".into());
            }
            Err(status) => {
                return Err(Stop::Refused(Status::cancelled(format!(
                    "the write stream broke off: {}",
                    status.message()
                ))));
            }
        };
        if chunk.offset != next_offset {
            return refuse(format!(
                "chunk at offset {} does not continue the block at {next_offset}",
                chunk.offset
            ));
        }
        checksum::verify(&chunk).map_err(|e| Stop::Refused(checksum_status(e)))?;
        next_offset += chunk.data.len() as u64;
        if next_offset > dfs_proto::MAX_BLOCK_SIZE {
            return refuse(format!(
                "the block grew past the largest block ({} bytes)",
                dfs_proto::MAX_BLOCK_SIZE
            ));
        }
        if expected != 0 && next_offset > expected {
            return refuse(format!(
                "the block grew past the {expected} bytes its header announced"
            ));
        }
        let copy = downstream.as_ref().map(|_| chunk.clone());
        let forward = async {
            if let (Some(d), Some(copy)) = (downstream.as_deref_mut(), copy) {
                d.send(Msg::Chunk(copy)).await;
            }
        };
        let (_, written) = tokio::join!(forward, local.send(chunk));
        if !written {
            return Err(Stop::WriterFailed);
        }
        if downstream.as_ref().is_some_and(|d| d.tx.is_none()) {
            return Err(Stop::DownstreamFailed);
        }
    }
    if expected != 0 && next_offset != expected {
        return refuse(format!(
            "the stream ended after {next_offset} of the {expected} bytes its header announced"
        ));
    }
    Ok(())
}

/// What the writer thread is told.
enum WriterMsg {
    Chunk(DataChunk),
    Finish,
}

/// The local replica, written by a blocking thread fed through a bounded channel. Dropped
/// without `finish`, the thread drops its writer and the temporary files go away.
struct LocalWrite {
    tx: mpsc::Sender<WriterMsg>,
    task: JoinHandle<Result<Option<BlockInfo>, StoreError>>,
}

impl LocalWrite {
    fn start(mut writer: BlockWriter) -> LocalWrite {
        let (tx, mut rx) = mpsc::channel(STAGE_DEPTH);
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || {
            let _span = span.enter();
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    WriterMsg::Chunk(c) => writer.append(&c.data, &c.crc32c)?,
                    WriterMsg::Finish => return writer.finish().map(Some),
                }
            }
            Ok(None)
        });
        LocalWrite { tx, task }
    }

    /// Queues a chunk; false if the writer thread has stopped (see [`LocalWrite::fail`]).
    async fn send(&self, chunk: DataChunk) -> bool {
        self.tx.send(WriterMsg::Chunk(chunk)).await.is_ok()
    }

    /// The error that stopped the writer thread.
    async fn fail(self) -> Status {
        match self.finish().await {
            Err(status) => status,
            Ok(_) => Status::internal("the block writer stopped early"),
        }
    }

    async fn finish(self) -> Result<BlockInfo, Status> {
        // A send error means the thread already stopped; its result says why.
        let _ = self.tx.send(WriterMsg::Finish).await;
        drop(self.tx);
        match self.task.await {
            Ok(Ok(Some(info))) => Ok(info),
            Ok(Ok(None)) => Err(Status::internal("the block writer stopped early")),
            Ok(Err(e)) => Err(store_status(e)),
            Err(e) => Err(Status::internal(format!("the block writer failed: {e}"))),
        }
    }

    /// Drops the partial replica and waits until its files are gone.
    async fn abort(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

/// The WriteBlock stream to the next datanode. Dropped before `finish`, the call is aborted,
/// which resets the stream so the next datanode keeps nothing.
struct Downstream {
    addr: String,
    /// `None` once the next datanode stopped listening (its answer says why).
    tx: Option<OutboundSender>,
    task: JoinHandle<Result<WriteBlockResponse, Status>>,
}

impl Downstream {
    async fn start(
        node: &Node,
        next: &str,
        header: WriteBlockHeader,
    ) -> Result<Downstream, Status> {
        let mut client = node.peers.client(next)?;
        let (tx, stream) = outbound(STAGE_DEPTH);
        let task = tokio::spawn(async move {
            client
                .write_block(stream)
                .await
                .map(tonic::Response::into_inner)
        });
        let mut downstream = Downstream {
            addr: next.to_string(),
            tx: Some(tx),
            task,
        };
        downstream.send(Msg::Header(header)).await;
        Ok(downstream)
    }

    async fn send(&mut self, msg: Msg) {
        if let Some(tx) = &self.tx
            && !tx.send(WriteBlockRequest { msg: Some(msg) }).await
        {
            self.tx = None;
        }
    }

    /// The error of a downstream call that stopped taking the stream, naming the failed
    /// datanode.
    async fn failure(mut self) -> Status {
        let result = match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(Status::internal(format!("downstream task failed: {e}"))),
        };
        let status = match result {
            Err(status) => status,
            Ok(_) => Status::internal("the downstream datanode answered before the block ended"),
        };
        pipeline_failure(&self.addr, status)
    }

    /// Ends the stream and waits for the answer; an error names the datanode that failed.
    async fn finish(mut self) -> Result<WriteBlockResponse, Status> {
        if let Some(tx) = self.tx.take() {
            tx.end().await;
        }
        let result = match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(Status::internal(format!("downstream task failed: {e}"))),
        };
        result.map_err(|status| pipeline_failure(&self.addr, status))
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Turns a downstream error into `UNAVAILABLE` naming the failed datanode: the one a further
/// datanode already named, or else the next one.
fn pipeline_failure(next: &str, status: Status) -> Status {
    if status.code() == Code::Unavailable && status.metadata().contains_key(FAILED_DATANODE) {
        return status;
    }
    tracing::warn!(datanode = next, error = %status, "downstream datanode failed");
    let mut metadata = MetadataMap::new();
    if let Ok(value) = MetadataValue::try_from(next) {
        metadata.insert(FAILED_DATANODE, value);
    }
    Status::with_metadata(
        Code::Unavailable,
        format!(
            "downstream datanode {next} failed: {}: {}",
            status.code(),
            status.message()
        ),
        metadata,
    )
}
