//! Work handed to this datanode in heartbeat replies: deleting replicas and copying replicas
//! to other datanodes. Commands wait in a bounded queue; a full queue drops the command (the
//! namenode hands it out again). At most [`MAX_REPLICATIONS`] copies run at a time, and together
//! they send no faster than the node's replication bandwidth (`--replication-bandwidth`).

use crate::Node;
use crate::block_store::Replica;
use crate::peers::outbound;
use crate::transfer::blocking;
use dfs_proto::TRANSFER_CHUNK;
use dfs_proto::grpc::write_block_request::Msg;
use dfs_proto::grpc::{BlockRef, WriteBlockHeader, WriteBlockRequest, WriteBlockResponse};
use dfs_proto::rest::{BlockInfo, DatanodeAddr, DatanodeCommand};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// Replications running at once.
pub const MAX_REPLICATIONS: usize = 4;
/// Commands waiting to run.
const QUEUE_DEPTH: usize = 256;

/// Where namenode loops hand commands over.
#[derive(Clone)]
pub struct CommandQueue {
    tx: mpsc::Sender<DatanodeCommand>,
}

impl CommandQueue {
    pub fn submit(&self, command: DatanodeCommand) {
        if self.tx.try_send(command).is_err() {
            tracing::warn!("command queue full; dropping a command (it will be handed out again)");
        }
    }
}

/// Starts the command worker; it ends when `shutdown` is cancelled.
pub fn start(
    node: Arc<Node>,
    shutdown: CancellationToken,
) -> (CommandQueue, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let task = tokio::spawn(worker(node, rx, shutdown));
    (CommandQueue { tx }, task)
}

async fn worker(
    node: Arc<Node>,
    mut rx: mpsc::Receiver<DatanodeCommand>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_REPLICATIONS));
    // Replicas being copied now: a repeated command for one is skipped.
    let in_flight: Arc<Mutex<HashSet<Replica>>> = Arc::default();
    let mut copies = JoinSet::new();
    loop {
        let command = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = copies.join_next(), if !copies.is_empty() => continue,
            command = rx.recv() => match command {
                Some(command) => command,
                None => break,
            },
        };
        match command {
            DatanodeCommand::Delete { blocks } => {
                for r in blocks {
                    delete(&node, r.into()).await;
                }
            }
            DatanodeCommand::Replicate {
                block,
                targets,
                token,
            } => {
                let replica = Replica {
                    id: block.id,
                    generation: block.generation,
                };
                let fresh = in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(replica);
                if !fresh {
                    continue;
                }
                let (node, slots, in_flight) = (
                    Arc::clone(&node),
                    Arc::clone(&slots),
                    Arc::clone(&in_flight),
                );
                copies.spawn(async move {
                    if let Ok(_slot) = slots.acquire().await {
                        let copied =
                            replicate(&node, block, &targets, token.unwrap_or_default()).await;
                        node.metrics.copies.count(copied.is_ok());
                        match copied {
                            Ok(r) => {
                                tracing::info!(%replica, stored_on = ?r.stored_on, "replica copied")
                            }
                            Err(e) => tracing::warn!(%replica, error = %e, "replica copy failed"),
                        }
                    }
                    in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&replica);
                });
            }
        }
    }
    copies.abort_all();
    while copies.join_next().await.is_some() {}
}

async fn delete(node: &Node, replica: Replica) {
    let store = Arc::clone(&node.store);
    match blocking(move || store.delete(replica)).await {
        Ok(existed) => {
            tracing::info!(%replica, existed, "replica deleted");
            node.metrics.deletes.increment(1);
            node.reports.deleted(replica);
        }
        Err(e) => tracing::warn!(%replica, error = %e, "deleting a replica failed"),
    }
}

/// Copies a local replica down a pipeline of `targets`, with the write `token` the namenode
/// signed for the copy.
pub async fn replicate(
    node: &Node,
    block: BlockInfo,
    targets: &[DatanodeAddr],
    token: String,
) -> Result<WriteBlockResponse, Status> {
    let _transfer = node.transfers.start();
    let Some((first, rest)) = targets.split_first() else {
        return Err(Status::invalid_argument(
            "replicate command with no targets",
        ));
    };
    let replica = Replica {
        id: block.id,
        generation: block.generation,
    };
    let store = Arc::clone(&node.store);
    let reader = blocking(move || store.open_reader(replica)).await?;
    let length = reader.length();
    let throttle = Arc::clone(&node.replication_throttle);
    if length != block.len {
        return Err(Status::failed_precondition(format!(
            "local {replica} has {length} bytes, the namenode expects {}",
            block.len
        )));
    }
    let mut client = node.peers.client(&first.grpc)?;
    let (tx, stream) = outbound(4);
    let header = WriteBlockRequest {
        msg: Some(Msg::Header(WriteBlockHeader {
            block: Some(BlockRef {
                block_id: block.id.0,
                generation: block.generation.0,
            }),
            downstream: rest.iter().map(|t| t.grpc.clone()).collect(),
            expected_length: length,
            access_token: token,
            background_copy: true,
        })),
    };
    // The reader thread feeds the stream and ends it only after the last chunk; if reading
    // fails, the call is dropped (resetting the stream) so the targets keep nothing.
    let mut read = tokio::task::spawn_blocking(move || {
        if !tx.blocking_send(header) {
            return Ok(()); // the target answered early; its answer says why
        }
        let mut pos = 0;
        while pos < length {
            throttle.take_blocking(TRANSFER_CHUNK.min((length - pos) as usize) as u64);
            let chunk = reader.read_chunk(pos, TRANSFER_CHUNK)?;
            pos += chunk.data.len() as u64;
            let msg = WriteBlockRequest {
                msg: Some(Msg::Chunk(chunk)),
            };
            if !tx.blocking_send(msg) {
                return Ok(());
            }
        }
        tx.blocking_end();
        Ok(())
    });
    let send = client.write_block(stream);
    tokio::pin!(send);
    tokio::select! {
        answer = &mut send => return answer.map(tonic::Response::into_inner),
        read_result = &mut read => {
            match read_result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(crate::transfer::store_status(e)),
                Err(e) => return Err(Status::internal(format!("replica reader failed: {e}"))),
            }
        }
    }
    send.await.map(tonic::Response::into_inner)
}
