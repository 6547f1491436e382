//! Helpers for in-process datanode tests: start datanodes on `127.0.0.1:0`, write and read
//! blocks through the gRPC service, poll for conditions.

#![allow(dead_code)]

use bytes::Bytes;
use dfs_datanode::Config;
use dfs_proto::checksum::{self, CHECKSUM_CHUNK};
use dfs_proto::grpc::data_transfer_client::DataTransferClient;
use dfs_proto::grpc::write_block_request::Msg;
use dfs_proto::grpc::{
    BlockRef, DataChunk, ReadBlockRequest, WriteBlockHeader, WriteBlockRequest, WriteBlockResponse,
};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// A datanode running in this process; stopped when dropped.
pub struct TestNode {
    pub grpc_addr: String,
    pub http_addr: String,
    pub dir: tempfile::TempDir,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A REST address where nothing listens.
pub async fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    drop(l);
    addr
}

impl TestNode {
    pub async fn start(namenodes: Vec<String>) -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, namenodes).await
    }

    pub async fn start_in(dir: tempfile::TempDir, namenodes: Vec<String>) -> TestNode {
        Self::start_with(dir, namenodes, |_| {}).await
    }

    /// Starts with the test defaults changed by `tweak`.
    pub async fn start_with(
        dir: tempfile::TempDir,
        namenodes: Vec<String>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestNode {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let grpc_addr = grpc.local_addr().expect("addr").to_string();
        let http_addr = http.local_addr().expect("addr").to_string();
        let mut config = Config::new(dir.path(), namenodes);
        config.heartbeat_interval = Duration::from_millis(200);
        config.reserved = 0;
        tweak(&mut config);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(dfs_datanode::run(config, grpc, http, shutdown.clone()));
        let node = TestNode {
            grpc_addr,
            http_addr,
            dir,
            shutdown,
            task: Some(task),
        };
        let url = format!("http://{}/health", node.http_addr);
        eventually("the datanode answers /health", || async {
            reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        node
    }

    pub async fn client(&self) -> DataTransferClient<Channel> {
        DataTransferClient::connect(format!("http://{}", self.grpc_addr))
            .await
            .expect("connect")
            .max_decoding_message_size(dfs_proto::MAX_GRPC_MESSAGE)
            .max_encoding_message_size(dfs_proto::MAX_GRPC_MESSAGE)
    }

    pub fn data_file(&self, id: u64, generation: u64) -> PathBuf {
        self.dir
            .path()
            .join(format!("current/{:02x}/blk_{id}_{generation}", id % 256))
    }

    /// Files in tmp/ plus replica files of block `id` in current/.
    pub fn leftovers(&self, id: u64) -> usize {
        let tmp = std::fs::read_dir(self.dir.path().join("tmp")).map_or(0, |d| d.count());
        let sub = self.dir.path().join(format!("current/{:02x}", id % 256));
        let prefix = format!("blk_{id}_");
        let current = std::fs::read_dir(sub).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .count()
        });
        tmp + current
    }

    /// Stops the datanode and waits for `run` to return; gives back its directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("datanode ran cleanly");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `check` until it holds, failing after a generous deadline.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed as usize) % 251) as u8)
        .collect()
}

pub fn header(id: u64, generation: u64, downstream: &[&str], len: u64) -> WriteBlockRequest {
    WriteBlockRequest {
        msg: Some(Msg::Header(WriteBlockHeader {
            block: Some(BlockRef {
                block_id: id,
                generation,
            }),
            downstream: downstream.iter().map(|s| s.to_string()).collect(),
            expected_length: len,
            // These datanodes run without a cluster secret: no token is checked.
            access_token: String::new(),
            background_copy: false,
        })),
    }
}

pub fn chunk_msg(offset: u64, data: &[u8]) -> WriteBlockRequest {
    WriteBlockRequest {
        msg: Some(Msg::Chunk(DataChunk {
            offset,
            crc32c: checksum::checksums(data),
            data: Bytes::copy_from_slice(data),
        })),
    }
}

/// The header then `data` in 1 MiB chunks.
pub fn block_messages(
    id: u64,
    generation: u64,
    downstream: &[&str],
    data: &[u8],
) -> Vec<WriteBlockRequest> {
    let mut msgs = vec![header(id, generation, downstream, data.len() as u64)];
    for (i, piece) in data.chunks(dfs_proto::TRANSFER_CHUNK).enumerate() {
        msgs.push(chunk_msg((i * dfs_proto::TRANSFER_CHUNK) as u64, piece));
    }
    msgs
}

pub async fn write(
    client: &mut DataTransferClient<Channel>,
    msgs: Vec<WriteBlockRequest>,
) -> Result<WriteBlockResponse, tonic::Status> {
    client
        .write_block(tokio_stream::iter(msgs))
        .await
        .map(tonic::Response::into_inner)
}

/// Reads `[offset, offset + length)` of a replica, verifying every chunk, trimmed to the range.
pub async fn read(
    client: &mut DataTransferClient<Channel>,
    id: u64,
    generation: u64,
    offset: u64,
    length: u64,
) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = client
        .read_block(ReadBlockRequest {
            block: Some(BlockRef {
                block_id: id,
                generation,
            }),
            offset,
            length,
            access_token: String::new(),
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    let mut block_length = 0;
    let mut start = None;
    while let Some(msg) = stream.message().await? {
        block_length = msg.block_length;
        let chunk = msg.chunk.expect("every message has a chunk");
        checksum::verify(&chunk).expect("stored checksums verify");
        assert_eq!(
            chunk.offset % CHECKSUM_CHUNK as u64,
            0,
            "chunks are aligned"
        );
        start.get_or_insert(chunk.offset);
        out.extend_from_slice(&chunk.data);
    }
    let start = start.expect("at least one message");
    let end = if length == 0 {
        block_length
    } else {
        (offset + length).min(block_length)
    };
    Ok(out[(offset - start) as usize..(end - start) as usize].to_vec())
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
