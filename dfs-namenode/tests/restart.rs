//! In-process namenode tests: `run` on `127.0.0.1:0` with a temp dir, driven over HTTP with the
//! dfs-proto endpoints; stopped and restarted on the same data directory.

use dfs_namenode::{Config, run};
use dfs_proto::rest::{
    self, ClusterInfoResponse, CreateRequest, Empty, Endpoint, FileKind, Method, MkdirRequest,
    NamenodeRole, ReadDirRequest, ResolveRequest,
};
use dfs_proto::{ApiError, ErrorCode, InodeId};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        let res = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("namenode stops within 30 s")
            .expect("namenode task joins");
        res.expect("namenode exits cleanly");
    }
}

async fn start(dir: &Path, port: u16) -> Running {
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(_) => TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    };
    let addr = listener.local_addr().expect("local addr");
    let mut config = Config::new(dir);
    config.raft_heartbeat = Duration::from_millis(100);
    config.election_timeout_min = Duration::from_millis(300);
    config.election_timeout_max = Duration::from_millis(600);
    config.snapshot_every = 5;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(config, listener, shutdown.clone()));
    Running {
        addr,
        shutdown,
        task,
    }
}

async fn call<E: Endpoint>(
    client: &reqwest::Client,
    addr: SocketAddr,
    req: &E::Request,
) -> Result<E::Response, ApiError> {
    let url = format!("http://{addr}{}", E::PATH);
    let builder = match E::METHOD {
        Method::Get => client.get(&url).query(req),
        Method::Post => client.post(&url).json(req),
    };
    let resp = builder
        .send()
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("request failed: {e}")))?;
    if resp.status().is_success() {
        Ok(resp.json().await.expect("response body parses"))
    } else {
        Err(resp.json().await.expect("error body is an ApiError"))
    }
}

async fn wait_leader(client: &reqwest::Client, addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(ClusterInfoResponse {
            role: NamenodeRole::Leader,
            ..
        }) = call::<rest::ClusterInfo>(client, addr, &Empty {}).await
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_survives_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = reqwest::Client::new();
    let nn = start(dir.path(), 0).await;
    wait_leader(&client, nn.addr).await;

    let a = call::<rest::Mkdir>(
        &client,
        nn.addr,
        &MkdirRequest {
            parent: InodeId::ROOT,
            name: "a".into(),
            perm: 0o755,
            uid: 0,
            gid: 0,
        },
    )
    .await
    .expect("mkdir /a");
    // Enough entries to pass the snapshot threshold (5) several times.
    for i in 0..12 {
        call::<rest::Create>(
            &client,
            nn.addr,
            &CreateRequest {
                parent: a.ino,
                name: format!("f{i}"),
                kind: FileKind::File,
                perm: 0o644,
                uid: 1000,
                gid: 1000,
                lease: None,
            },
        )
        .await
        .expect("create file");
    }
    let bad = call::<rest::Mkdir>(
        &client,
        nn.addr,
        &MkdirRequest {
            parent: InodeId::ROOT,
            name: "x/y".into(),
            perm: 0o755,
            uid: 0,
            gid: 0,
        },
    )
    .await
    .expect_err("a name with a slash is refused");
    assert_eq!(bad.code, ErrorCode::Invalid);

    let port = nn.addr.port();
    nn.stop().await;
    let snapshots = std::fs::read_dir(dir.path().join("snapshots"))
        .expect("snapshot dir")
        .count();
    assert!(snapshots >= 1, "a snapshot was written");

    let nn = start(dir.path(), port).await;
    wait_leader(&client, nn.addr).await;
    let f = call::<rest::Resolve>(
        &client,
        nn.addr,
        &ResolveRequest {
            path: "/a/f11".into(),
        },
    )
    .await
    .expect("/a/f11 is still there");
    assert_eq!(f.kind, FileKind::File);
    assert_eq!(f.uid, 1000);
    let listing = call::<rest::ReadDir>(
        &client,
        nn.addr,
        &ReadDirRequest {
            ino: a.ino,
            after: None,
            limit: None,
        },
    )
    .await
    .expect("readdir /a");
    assert_eq!(listing.entries.len(), 12);
    nn.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_answer_json_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = reqwest::Client::new();
    let nn = start(dir.path(), 0).await;
    wait_leader(&client, nn.addr).await;
    let base = format!("http://{}", nn.addr);

    let resp = client
        .post(format!("{base}{}", rest::Mkdir::PATH))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    let e: ApiError = resp.json().await.expect("ApiError body");
    assert_eq!(e.code, ErrorCode::Invalid);

    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(9 * 1024 * 1024));
    let resp = client
        .post(format!("{base}{}", rest::Mkdir::PATH))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 413);
    let e: ApiError = resp.json().await.expect("ApiError body");
    assert_eq!(e.code, ErrorCode::TooBig);

    let resp = client
        .get(format!("{base}/v1/nope"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 404);
    let e: ApiError = resp.json().await.expect("ApiError body");
    assert_eq!(e.code, ErrorCode::NotFound);

    let resp = client
        .get(format!("{base}{}?ino=notanumber", rest::GetAttr::PATH))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    let e: ApiError = resp.json().await.expect("ApiError body");
    assert_eq!(e.code, ErrorCode::Invalid);
    nn.stop().await;
}

fn register_req(n: u32) -> rest::RegisterDatanodeRequest {
    rest::RegisterDatanodeRequest {
        id: dfs_proto::DatanodeId(format!("dn{n}")),
        grpc_addr: format!("127.0.0.1:{}", 19000 + n),
        http_addr: format!("127.0.0.1:{}", 19100 + n),
        local_socket: None,
        capacity: 1 << 40,
        used: 0,
        remaining: 1 << 40,
    }
}

fn heartbeat_req(n: u32) -> rest::HeartbeatRequest {
    rest::HeartbeatRequest {
        id: dfs_proto::DatanodeId(format!("dn{n}")),
        capacity: 1 << 40,
        used: 0,
        remaining: 1 << 40,
        active_transfers: 0,
        block_count: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_are_placed_located_reported_and_deleted() {
    use dfs_proto::ClientId;
    use rest::{
        AllocateBlockRequest, BlockReportRequest, CommitRequest, DatanodeCommand, EntryRequest,
        GetBlocksRequest,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let client = reqwest::Client::new();
    let nn = start(dir.path(), 0).await;
    wait_leader(&client, nn.addr).await;
    let writer = ClientId("writer".into());

    let file = call::<rest::Create>(
        &client,
        nn.addr,
        &CreateRequest {
            parent: InodeId::ROOT,
            name: "data".into(),
            kind: FileKind::File,
            perm: 0o644,
            uid: 0,
            gid: 0,
            lease: Some(writer.clone()),
        },
    )
    .await
    .expect("create /data");
    let alloc = AllocateBlockRequest {
        ino: file.ino,
        client: writer.clone(),
        index: 0,
        exclude: vec![],
    };
    let e = call::<rest::AllocateBlock>(&client, nn.addr, &alloc)
        .await
        .expect_err("no datanodes yet");
    assert_eq!(e.code, ErrorCode::Unavailable);

    let hb = call::<rest::Heartbeat>(&client, nn.addr, &heartbeat_req(1))
        .await
        .expect("heartbeat");
    assert!(hb.reregister, "unknown datanode is asked to register");
    for n in 1..=3 {
        call::<rest::RegisterDatanode>(&client, nn.addr, &register_req(n))
            .await
            .expect("register");
    }
    let located = call::<rest::AllocateBlock>(&client, nn.addr, &alloc)
        .await
        .expect("allocate block 0");
    assert_eq!(located.locations.len(), 3);
    let mut block = located.block;
    block.len = 100;

    // dn1 and dn2 received the block; dn3 failed.
    for n in 1..=2 {
        call::<rest::BlockReport>(
            &client,
            nn.addr,
            &BlockReportRequest {
                id: dfs_proto::DatanodeId(format!("dn{n}")),
                blocks: vec![block],
            },
        )
        .await
        .expect("block report");
    }
    call::<rest::Commit>(
        &client,
        nn.addr,
        &CommitRequest {
            ino: file.ino,
            client: writer.clone(),
            blocks: vec![block],
            size: 100,
            release: true,
        },
    )
    .await
    .expect("commit");

    let blocks = call::<rest::GetBlocks>(
        &client,
        nn.addr,
        &GetBlocksRequest {
            ino: file.ino,
            offset: 0,
            len: 0,
        },
    )
    .await
    .expect("get blocks");
    assert_eq!(blocks.size, 100);
    assert_eq!(blocks.blocks.len(), 1);
    let holders: Vec<String> = blocks.blocks[0]
        .locations
        .iter()
        .map(|l| l.id.0.clone())
        .collect();
    assert_eq!(holders, vec!["dn1".to_string(), "dn2".to_string()]);

    let report = call::<rest::AdminReport>(&client, nn.addr, &Empty {})
        .await
        .expect("admin report");
    assert_eq!(report.datanodes.len(), 3);
    assert_eq!(
        (report.blocks, report.under_replicated, report.missing),
        (1, 1, 0)
    );
    let statfs = call::<rest::StatFs>(&client, nn.addr, &Empty {})
        .await
        .expect("statfs");
    assert_eq!(statfs.capacity, 3 << 40);

    // Deleting the file turns its block into delete commands for the holders.
    call::<rest::Unlink>(
        &client,
        nn.addr,
        &EntryRequest {
            parent: InodeId::ROOT,
            name: "data".into(),
        },
    )
    .await
    .expect("unlink");
    let hb = call::<rest::Heartbeat>(&client, nn.addr, &heartbeat_req(1))
        .await
        .expect("heartbeat");
    assert!(!hb.reregister);
    match hb.commands.as_slice() {
        [DatanodeCommand::Delete { blocks }] => {
            assert_eq!(blocks.len(), 1);
            assert_eq!(blocks[0].id, block.id);
        }
        other => panic!("expected one delete command, got {other:?}"),
    }
    nn.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_stops_startup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = reqwest::Client::new();
    let nn = start(dir.path(), 0).await;
    wait_leader(&client, nn.addr).await;
    for i in 0..8 {
        call::<rest::Mkdir>(
            &client,
            nn.addr,
            &MkdirRequest {
                parent: InodeId::ROOT,
                name: format!("d{i}"),
                perm: 0o755,
                uid: 0,
                gid: 0,
            },
        )
        .await
        .expect("mkdir");
    }
    nn.stop().await;
    let snap = std::fs::read_dir(dir.path().join("snapshots"))
        .expect("snapshot dir")
        .next()
        .expect("a snapshot")
        .expect("dir entry")
        .path();
    let mut bytes = std::fs::read(&snap).expect("read snapshot");
    let n = bytes.len();
    bytes[n - 2] ^= 0x55;
    bytes.truncate(n - 1);
    std::fs::write(&snap, bytes).expect("corrupt snapshot");

    let nn = start(dir.path(), 0).await;
    let res = tokio::time::timeout(Duration::from_secs(30), nn.task)
        .await
        .expect("startup fails promptly")
        .expect("task joins");
    let err = format!("{:#}", res.expect_err("a corrupt snapshot is an error"));
    assert!(err.contains("corrupt"), "{err}");
}
