//! The gRPC `DataTransfer` service: pipeline writes ([`write`]) and ranged reads ([`read`]).
//!
//! Status codes answered:
//! - `INVALID_ARGUMENT`: first message not a header, no block named, block id 0, a chunk that
//!   does not continue where the previous ended or is off the 64 KiB grid, a bad peer address.
//! - `DATA_LOSS`: a chunk whose data does not match its CRC32C (nothing is kept), or a stored
//!   replica found damaged when read.
//! - `ALREADY_EXISTS`: the replica (same id and generation) is stored or being written.
//! - `INVALID_ARGUMENT` also: an expected length, or a stream, beyond
//!   [`dfs_proto::MAX_BLOCK_SIZE`].
//! - `RESOURCE_EXHAUSTED`: not enough space above the reserve for the block's expected length, or
//!   (length unknown) for the bytes as they arrive: the write stops before the disk is full.
//! - `DEADLINE_EXCEEDED`: the writer sent no message for the idle timeout; nothing is kept.
//! - `NOT_FOUND`: no such replica (a stale generation included).
//! - `OUT_OF_RANGE`: a read offset beyond the replica's length.
//! - `UNAVAILABLE`: a downstream datanode failed; the message names it, and the
//!   [`FAILED_DATANODE`] metadata entry holds its address. The local replica is kept.
//! - `CANCELLED`: the writer's stream broke off; nothing is kept.
//! - `INTERNAL`: a local disk error.

mod read;
mod write;

use crate::Node;
use crate::block_store::StoreError;
use dfs_proto::checksum::ChecksumError;
use dfs_proto::grpc::data_transfer_server::{DataTransfer, DataTransferServer};
use dfs_proto::grpc::{ReadBlockRequest, ReadBlockResponse, WriteBlockRequest, WriteBlockResponse};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

pub use write::FAILED_DATANODE;

/// The service, as tonic serves it.
pub fn server(node: Arc<Node>) -> DataTransferServer<Service> {
    DataTransferServer::new(Service { node })
        .max_decoding_message_size(dfs_proto::MAX_GRPC_MESSAGE)
        .max_encoding_message_size(dfs_proto::MAX_GRPC_MESSAGE)
}

pub struct Service {
    node: Arc<Node>,
}

#[tonic::async_trait]
impl DataTransfer for Service {
    #[tracing::instrument(skip_all, fields(node = %self.node.grpc_addr))]
    async fn write_block(
        &self,
        request: Request<Streaming<WriteBlockRequest>>,
    ) -> Result<Response<WriteBlockResponse>, Status> {
        let started = std::time::Instant::now();
        let result = write::write_block(&self.node, request.into_inner()).await;
        let metrics = &self.node.metrics;
        metrics.writes.finished(result.is_ok(), started);
        if let Ok(written) = &result {
            metrics.bytes_written.increment(written.length);
        }
        result.map(Response::new)
    }

    type ReadBlockStream = ReceiverStream<Result<ReadBlockResponse, Status>>;

    #[tracing::instrument(skip_all, fields(node = %self.node.grpc_addr))]
    async fn read_block(
        &self,
        request: Request<ReadBlockRequest>,
    ) -> Result<Response<Self::ReadBlockStream>, Status> {
        // A stream that started is counted when it ends (in `read`); a refusal here.
        let started = std::time::Instant::now();
        let result = read::read_block(&self.node, request.into_inner(), started).await;
        if result.is_err() {
            self.node.metrics.reads.finished(false, started);
        }
        result.map(Response::new)
    }
}

/// The one mapping from block store errors to gRPC statuses.
pub(crate) fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::NotFound(_) => Status::not_found(e.to_string()),
        StoreError::AlreadyExists(_) => Status::already_exists(e.to_string()),
        StoreError::NoSpace { .. } => Status::resource_exhausted(e.to_string()),
        StoreError::OutOfRange { .. } => Status::out_of_range(e.to_string()),
        StoreError::Corrupt { .. } => {
            tracing::error!(error = %e, "damaged replica");
            Status::data_loss(e.to_string())
        }
        StoreError::BadIdentity(_) | StoreError::Locked(_) | StoreError::Io { .. } => {
            tracing::error!(error = %e, "block store failure");
            Status::internal(e.to_string())
        }
    }
}

/// The mapping from a chunk's verification failure to a status.
fn checksum_status(e: ChecksumError) -> Status {
    match e {
        ChecksumError::Mismatch { .. } | ChecksumError::PageMismatch { .. } => {
            Status::data_loss(e.to_string())
        }
        ChecksumError::Misaligned { .. } | ChecksumError::Count { .. } => {
            Status::invalid_argument(e.to_string())
        }
    }
}

/// Runs block store work off the async runtime.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, Status>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("block store task failed: {e}")))?
        .map_err(store_status)
}

/// Block reads and writes in progress, reported in heartbeats.
#[derive(Default)]
pub struct ActiveTransfers(AtomicU32);

impl ActiveTransfers {
    /// Counts a transfer until the returned guard is dropped.
    pub fn start(self: &Arc<Self>) -> TransferGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        TransferGuard(Arc::clone(self))
    }

    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct TransferGuard(Arc<ActiveTransfers>);

impl Drop for TransferGuard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}
