//! In-process fakes for client tests: a namenode (axum, a flat namespace of files in `/`) and
//! datanodes (tonic, blocks in memory, real pipeline forwarding, optional corruption).

#![allow(dead_code)]

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dfs_proto::checksum::{CHECKSUM_CHUNK, checksums, verify};
use dfs_proto::grpc::data_transfer_client::DataTransferClient;
use dfs_proto::grpc::data_transfer_server::{DataTransfer, DataTransferServer};
use dfs_proto::grpc::write_block_request::Msg;
use dfs_proto::grpc::{
    DataChunk, ReadBlockRequest, ReadBlockResponse, WriteBlockRequest, WriteBlockResponse,
};
use dfs_proto::rest::*;
use dfs_proto::{
    ApiError, BlockId, ClientId, DatanodeId, ErrorCode, Generation, InodeId, NamenodeId,
};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Status, Streaming};

/// Serves `router` on an ephemeral loopback port; returns host:port.
pub async fn serve_http(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind namenode");
    let addr = listener.local_addr().expect("local addr").to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// An ApiError answer with its HTTP status.
pub fn api_error(e: ApiError) -> Response {
    let status =
        StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(e)).into_response()
}

fn ok<T: serde::Serialize>(v: T) -> Response {
    Json(v).into_response()
}

pub fn cluster_info(block_size: u64) -> ClusterInfoResponse {
    ClusterInfoResponse {
        namenode: NamenodeId(1),
        role: NamenodeRole::Leader,
        leader: None,
        default_block_size: block_size,
        replication: 3,
        lease_ms: 600,
    }
}

// ---------------------------------------------------------------------------------------------
// Datanode

/// Block contents by (block id, generation).
pub type Replicas = HashMap<(u64, u64), Vec<u8>>;

#[derive(Clone, Default)]
pub struct FakeDatanode {
    pub addr: String,
    pub blocks: Arc<Mutex<Replicas>>,
    /// Serve reads with one byte flipped (checksums of the true data).
    pub corrupt: Arc<AtomicBool>,
    /// Refuse every write.
    pub fail_writes: Arc<AtomicBool>,
    pub reads: Arc<AtomicUsize>,
}

impl FakeDatanode {
    pub async fn start() -> FakeDatanode {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind datanode");
        let dn = FakeDatanode {
            addr: listener.local_addr().expect("local addr").to_string(),
            ..FakeDatanode::default()
        };
        let svc = DataTransferServer::new(dn.clone())
            .max_decoding_message_size(dfs_proto::MAX_GRPC_MESSAGE)
            .max_encoding_message_size(dfs_proto::MAX_GRPC_MESSAGE);
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        dn
    }

    pub fn stored(&self, block: BlockInfo) -> Option<Vec<u8>> {
        self.blocks
            .lock()
            .expect("lock")
            .get(&(block.id.0, block.generation.0))
            .cloned()
    }
}

#[tonic::async_trait]
impl DataTransfer for FakeDatanode {
    async fn write_block(
        &self,
        request: Request<Streaming<WriteBlockRequest>>,
    ) -> Result<tonic::Response<WriteBlockResponse>, Status> {
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(WriteBlockRequest {
                msg: Some(Msg::Header(h)),
            }) => h,
            _ => return Err(Status::invalid_argument("first message must be the header")),
        };
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(Status::unavailable("fake datanode refuses writes"));
        }
        let block = header
            .block
            .ok_or_else(|| Status::invalid_argument("no block"))?;
        let mut downstream = None;
        if let Some(next) = header.downstream.first() {
            let mut client = DataTransferClient::connect(format!("http://{next}"))
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?
                .max_decoding_message_size(dfs_proto::MAX_GRPC_MESSAGE)
                .max_encoding_message_size(dfs_proto::MAX_GRPC_MESSAGE);
            let (tx, rx) = mpsc::channel(4);
            let mut h = header.clone();
            h.downstream.remove(0);
            let _ = tx
                .send(WriteBlockRequest {
                    msg: Some(Msg::Header(h)),
                })
                .await;
            let call =
                tokio::spawn(async move { client.write_block(ReceiverStream::new(rx)).await });
            downstream = Some((tx, call));
        }
        let mut data = Vec::new();
        while let Some(msg) = stream.message().await? {
            let Some(Msg::Chunk(chunk)) = msg.msg else {
                return Err(Status::invalid_argument("a second header"));
            };
            verify(&chunk).map_err(|e| Status::data_loss(e.to_string()))?;
            if chunk.offset != data.len() as u64 {
                return Err(Status::invalid_argument("chunk out of order"));
            }
            data.extend_from_slice(&chunk.data);
            if let Some((tx, _)) = &downstream {
                let fwd = WriteBlockRequest {
                    msg: Some(Msg::Chunk(chunk)),
                };
                tx.send(fwd)
                    .await
                    .map_err(|_| Status::unavailable("downstream gone"))?;
            }
        }
        let mut stored_on = vec![self.addr.clone()];
        if let Some((tx, call)) = downstream {
            drop(tx);
            let resp = call
                .await
                .map_err(|e| Status::internal(e.to_string()))??
                .into_inner();
            stored_on.extend(resp.stored_on);
        }
        let length = data.len() as u64;
        self.blocks
            .lock()
            .expect("lock")
            .insert((block.block_id, block.generation), data);
        Ok(tonic::Response::new(WriteBlockResponse {
            length,
            stored_on,
        }))
    }

    type ReadBlockStream = Pin<Box<dyn Stream<Item = Result<ReadBlockResponse, Status>> + Send>>;

    async fn read_block(
        &self,
        request: Request<ReadBlockRequest>,
    ) -> Result<tonic::Response<Self::ReadBlockStream>, Status> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let req = request.into_inner();
        let block = req
            .block
            .ok_or_else(|| Status::invalid_argument("no block"))?;
        let data = self
            .blocks
            .lock()
            .expect("lock")
            .get(&(block.block_id, block.generation))
            .cloned()
            .ok_or_else(|| Status::not_found("no such replica"))?;
        let len = data.len() as u64;
        let start = req.offset / CHECKSUM_CHUNK as u64 * CHECKSUM_CHUNK as u64;
        let end = if req.length == 0 {
            len
        } else {
            (req.offset + req.length).min(len)
        };
        let corrupt = self.corrupt.load(Ordering::SeqCst);
        let mut messages = Vec::new();
        let mut pos = start;
        // Uneven 192 KiB chunks, to exercise trimming.
        while pos < end {
            let stop = (pos + 3 * CHECKSUM_CHUNK as u64).min(len);
            let piece = &data[pos as usize..stop as usize];
            let crc32c = checksums(piece);
            let mut bytes = piece.to_vec();
            if corrupt {
                bytes[0] ^= 0xff;
            }
            messages.push(Ok(ReadBlockResponse {
                chunk: Some(DataChunk {
                    offset: pos,
                    data: bytes.into(),
                    crc32c,
                }),
                block_length: len,
            }));
            pos = stop;
        }
        Ok(tonic::Response::new(Box::pin(tokio_stream::iter(messages))))
    }
}

// ---------------------------------------------------------------------------------------------
// Namenode

pub struct FakeFile {
    pub attr: Attr,
    pub name: String,
    pub blocks: Vec<BlockInfo>,
    pub lease: Option<ClientId>,
}

pub struct NnState {
    pub block_size: u64,
    pub next_ino: u64,
    pub next_block: u64,
    pub files: HashMap<InodeId, FakeFile>,
    /// Datanodes in pipeline and read order.
    pub datanodes: Vec<DatanodeAddr>,
    pub renewals: usize,
    pub commits: usize,
}

#[derive(Clone)]
pub struct FakeNamenode {
    pub addr: String,
    pub state: Arc<Mutex<NnState>>,
}

fn attr(ino: InodeId, kind: FileKind, perm: u32, size: u64, block_size: u64) -> Attr {
    Attr {
        ino,
        kind,
        perm,
        nlink: 1,
        uid: 0,
        gid: 0,
        size,
        block_size,
        atime: Timestamp::default(),
        mtime: Timestamp::default(),
        ctime: Timestamp::default(),
        data_version: 0,
    }
}

fn not_found(what: impl Into<String>) -> Response {
    api_error(ApiError::new(ErrorCode::NotFound, what))
}

impl FakeNamenode {
    pub async fn start(block_size: u64, datanodes: &[FakeDatanode]) -> FakeNamenode {
        let state = Arc::new(Mutex::new(NnState {
            block_size,
            next_ino: 2,
            next_block: 100,
            files: HashMap::new(),
            datanodes: datanodes
                .iter()
                .enumerate()
                .map(|(i, d)| DatanodeAddr {
                    id: DatanodeId(format!("dn{i}")),
                    grpc: d.addr.clone(),
                    local_socket: None,
                })
                .collect(),
            renewals: 0,
            commits: 0,
        }));
        let router = Router::new()
            .route("/v1/cluster", get(cluster))
            .route("/v1/resolve", get(resolve))
            .route("/v1/create", post(create))
            .route("/v1/unlink", post(unlink))
            .route("/v1/lease/open", post(open_write))
            .route("/v1/lease/renew", post(renew))
            .route("/v1/lease/release", post(release))
            .route("/v1/block/allocate", post(allocate))
            .route("/v1/file/commit", post(commit))
            .route("/v1/blocks", get(blocks))
            .route("/v1/getattr", get(getattr))
            .route("/v1/setattr", post(setattr))
            .with_state(state.clone());
        FakeNamenode {
            addr: serve_http(router).await,
            state,
        }
    }

    pub fn file(&self, ino: InodeId) -> (Attr, Vec<BlockInfo>) {
        let s = self.state.lock().expect("lock");
        let f = &s.files[&ino];
        (f.attr.clone(), f.blocks.clone())
    }
}

type St = State<Arc<Mutex<NnState>>>;

async fn cluster(State(s): St) -> Response {
    ok(cluster_info(s.lock().expect("lock").block_size))
}

async fn resolve(State(s): St, Query(req): Query<ResolveRequest>) -> Response {
    let s = s.lock().expect("lock");
    if req.path == "/" {
        return ok(attr(
            InodeId::ROOT,
            FileKind::Dir,
            0o755,
            s.files.len() as u64,
            0,
        ));
    }
    let name = req.path.trim_start_matches('/');
    match s.files.values().find(|f| f.name == name) {
        Some(f) => ok(f.attr.clone()),
        None => not_found(req.path),
    }
}

async fn create(State(s): St, Json(req): Json<CreateRequest>) -> Response {
    let mut s = s.lock().expect("lock");
    if req.parent != InodeId::ROOT {
        return api_error(ApiError::new(ErrorCode::NotDir, "flat namespace"));
    }
    if s.files.values().any(|f| f.name == req.name) {
        return api_error(ApiError::new(ErrorCode::Exists, req.name));
    }
    let ino = InodeId(s.next_ino);
    s.next_ino += 1;
    let a = attr(ino, req.kind, req.perm, 0, s.block_size);
    s.files.insert(
        ino,
        FakeFile {
            attr: a.clone(),
            name: req.name,
            blocks: Vec::new(),
            lease: req.lease,
        },
    );
    ok(a)
}

async fn unlink(State(s): St, Json(req): Json<EntryRequest>) -> Response {
    let mut s = s.lock().expect("lock");
    let Some(ino) = s
        .files
        .iter()
        .find(|(_, f)| f.name == req.name)
        .map(|(i, _)| *i)
    else {
        return not_found(req.name);
    };
    let Some(mut f) = s.files.remove(&ino) else {
        return not_found(req.name);
    };
    f.attr.nlink = 0;
    ok(f.attr)
}

async fn open_write(State(s): St, Json(req): Json<LeaseRequest>) -> Response {
    let mut s = s.lock().expect("lock");
    let Some(f) = s.files.get_mut(&req.ino) else {
        return not_found("ino");
    };
    if f.lease.as_ref().is_some_and(|l| *l != req.client) {
        return api_error(ApiError::new(ErrorCode::Busy, "leased"));
    }
    f.lease = Some(req.client);
    ok(OpenWriteResponse {
        attr: f.attr.clone(),
        blocks: f.blocks.clone(),
    })
}

async fn renew(State(s): St, Json(_): Json<RenewLeaseRequest>) -> Response {
    s.lock().expect("lock").renewals += 1;
    ok(Empty {})
}

async fn release(State(s): St, Json(req): Json<LeaseRequest>) -> Response {
    if let Some(f) = s.lock().expect("lock").files.get_mut(&req.ino) {
        f.lease = None;
    }
    ok(Empty {})
}

async fn allocate(State(s): St, Json(req): Json<AllocateBlockRequest>) -> Response {
    let mut s = s.lock().expect("lock");
    let next = s.next_block;
    s.next_block += 1;
    let Some(f) = s.files.get(&req.ino) else {
        return not_found("ino");
    };
    // As the real namenode: a new generation of the block already at the index, or a new id.
    let (id, generation) = match f.blocks.get(req.index as usize).filter(|b| !b.is_hole()) {
        Some(b) => (b.id, Generation(next)),
        None => (BlockId(next), Generation(1)),
    };
    if f.lease.as_ref() != Some(&req.client) {
        return api_error(ApiError::new(ErrorCode::Stale, "no lease"));
    }
    let locations = s
        .datanodes
        .iter()
        .filter(|d| !req.exclude.contains(&d.id))
        .cloned()
        .collect();
    ok(LocatedBlock {
        index: req.index,
        block: BlockInfo {
            id,
            generation,
            len: 0,
        },
        locations,
        token: None,
    })
}

async fn commit(State(s): St, Json(req): Json<CommitRequest>) -> Response {
    let mut s = s.lock().expect("lock");
    s.commits += 1;
    let Some(f) = s.files.get_mut(&req.ino) else {
        return not_found("ino");
    };
    if f.lease.as_ref() != Some(&req.client) {
        return api_error(ApiError::new(ErrorCode::Stale, "no lease"));
    }
    f.blocks = req.blocks;
    f.attr.size = req.size;
    f.attr.data_version += 1;
    if req.release {
        f.lease = None;
    }
    ok(f.attr.clone())
}

async fn blocks(State(s): St, Query(req): Query<GetBlocksRequest>) -> Response {
    let s = s.lock().expect("lock");
    let Some(f) = s.files.get(&req.ino) else {
        return not_found("ino");
    };
    let blocks = f
        .blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.is_hole())
        .map(|(i, b)| LocatedBlock {
            index: i as u64,
            block: *b,
            locations: s.datanodes.clone(),
            token: None,
        })
        .collect();
    ok(FileBlocks {
        size: f.attr.size,
        block_size: f.attr.block_size,
        data_version: f.attr.data_version,
        blocks,
        attr: Some(f.attr.clone()),
    })
}

async fn getattr(State(s): St, Query(req): Query<InodeRequest>) -> Response {
    match s.lock().expect("lock").files.get(&req.ino) {
        Some(f) => ok(f.attr.clone()),
        None => not_found("ino"),
    }
}

/// Only truncation: cuts or extends the size, dropping blocks past it.
async fn setattr(State(s): St, Json(req): Json<SetAttrRequest>) -> Response {
    let mut s = s.lock().expect("lock");
    let bs = s.block_size;
    let Some(f) = s.files.get_mut(&req.ino) else {
        return not_found("ino");
    };
    if let Some(size) = req.size {
        if f.lease.is_some() && f.lease != req.client {
            return api_error(ApiError::new(ErrorCode::Busy, "leased"));
        }
        let keep = size.div_ceil(bs) as usize;
        f.blocks.truncate(keep);
        if let Some(last) = f.blocks.last_mut() {
            last.len = last.len.min(size - (keep as u64 - 1) * bs);
        }
        f.attr.size = size;
        f.attr.data_version += 1;
    }
    ok(f.attr.clone())
}
