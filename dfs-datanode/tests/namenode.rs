//! The datanode's conversation with a namenode, against a fake namenode that records every
//! request and hands out commands: registration, full and incremental block reports,
//! heartbeats, `reregister`, and the Delete and Replicate commands.

mod common;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use dfs_proto::rest::{
    BlockInfo, BlockReport, BlockReportRequest, DatanodeAddr, DatanodeCommand, Empty, Endpoint,
    Heartbeat, HeartbeatRequest, HeartbeatResponse, IncrementalBlockReport,
    IncrementalBlockReportRequest, RegisterDatanode, RegisterDatanodeRequest,
    RegisterDatanodeResponse, ReplicaRef,
};
use dfs_proto::{BlockId, DatanodeId, Generation, NamenodeId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Everything the fake namenode has been told, and what it will say next.
#[derive(Default)]
struct Recorded {
    registrations: Vec<RegisterDatanodeRequest>,
    full_reports: Vec<BlockReportRequest>,
    increments: Vec<IncrementalBlockReportRequest>,
    heartbeats: Vec<HeartbeatRequest>,
    /// Commands for each datanode's next heartbeat.
    commands: HashMap<DatanodeId, Vec<DatanodeCommand>>,
    /// Datanodes to answer `reregister: true` once.
    forget: HashSet<DatanodeId>,
}

type Shared = Arc<Mutex<Recorded>>;

struct FakeNamenode {
    addr: String,
    state: Shared,
}

impl FakeNamenode {
    async fn start() -> FakeNamenode {
        let state = Shared::default();
        let app = Router::new()
            .route(RegisterDatanode::PATH, post(register))
            .route(Heartbeat::PATH, post(heartbeat))
            .route(BlockReport::PATH, post(full_report))
            .route(IncrementalBlockReport::PATH, post(increment))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeNamenode { addr, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Recorded) -> T) -> T {
        f(&mut self.state.lock().expect("fake namenode state"))
    }

    fn received(&self, id: &DatanodeId, block: BlockInfo) -> bool {
        self.with(|r| {
            r.increments
                .iter()
                .any(|i| &i.id == id && i.received.contains(&block))
        })
    }
}

async fn register(
    State(s): State<Shared>,
    Json(req): Json<RegisterDatanodeRequest>,
) -> Json<RegisterDatanodeResponse> {
    s.lock().expect("state").registrations.push(req);
    Json(RegisterDatanodeResponse {
        namenode: NamenodeId(1),
    })
}

async fn heartbeat(
    State(s): State<Shared>,
    Json(req): Json<HeartbeatRequest>,
) -> Json<HeartbeatResponse> {
    let mut r = s.lock().expect("state");
    let reregister = r.forget.remove(&req.id);
    let commands = r.commands.remove(&req.id).unwrap_or_default();
    r.heartbeats.push(req);
    Json(HeartbeatResponse {
        reregister,
        commands,
        term: 0,
    })
}

async fn full_report(State(s): State<Shared>, Json(req): Json<BlockReportRequest>) -> Json<Empty> {
    s.lock().expect("state").full_reports.push(req);
    Json(Empty {})
}

async fn increment(
    State(s): State<Shared>,
    Json(req): Json<IncrementalBlockReportRequest>,
) -> Json<Empty> {
    s.lock().expect("state").increments.push(req);
    Json(Empty {})
}

async fn datanode_id(node: &TestNode) -> DatanodeId {
    let health: serde_json::Value = reqwest::get(format!("http://{}/health", node.http_addr))
        .await
        .expect("health")
        .json()
        .await
        .expect("health json");
    DatanodeId(health["id"].as_str().expect("id is a string").to_string())
}

fn info(id: u64, generation: u64, len: usize) -> BlockInfo {
    BlockInfo {
        id: BlockId(id),
        generation: Generation(generation),
        len: len as u64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_reports_and_obeys_delete() {
    let nn = FakeNamenode::start().await;
    let a = TestNode::start(vec![nn.addr.clone()]).await;
    let id = datanode_id(&a).await;
    eventually("the datanode registered and reported", || async {
        nn.with(|r| !r.full_reports.is_empty() && r.heartbeats.len() >= 2)
    })
    .await;
    nn.with(|r| {
        let reg = &r.registrations[0];
        assert_eq!(reg.id, id);
        assert_eq!(reg.grpc_addr, a.grpc_addr);
        assert_eq!(reg.http_addr, a.http_addr);
        assert!(reg.capacity > 0);
        assert!(r.full_reports[0].blocks.is_empty());
    });

    let data = pattern(150_000, 9);
    write(&mut a.client().await, block_messages(31, 2, &[], &data))
        .await
        .expect("write");
    let block = info(31, 2, data.len());
    eventually("the new replica was reported", || async {
        nn.received(&id, block)
    })
    .await;

    let replica = ReplicaRef {
        id: BlockId(31),
        generation: Generation(2),
    };
    nn.with(|r| {
        r.commands.insert(
            id.clone(),
            vec![DatanodeCommand::Delete {
                blocks: vec![replica],
            }],
        )
    });
    eventually("the deletion was reported", || async {
        nn.with(|r| r.increments.iter().any(|i| i.deleted.contains(&replica)))
    })
    .await;
    assert!(!a.data_file(31, 2).exists());
    assert_eq!(a.leftovers(31), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicates_on_command_and_registers_again_when_forgotten() {
    let nn = FakeNamenode::start().await;
    let a = TestNode::start(vec![nn.addr.clone()]).await;
    let b = TestNode::start(vec![nn.addr.clone()]).await;
    let (a_id, b_id) = (datanode_id(&a).await, datanode_id(&b).await);
    let data = pattern(2 * dfs_proto::TRANSFER_CHUNK + 5, 10);
    write(&mut a.client().await, block_messages(40, 1, &[], &data))
        .await
        .expect("write");
    let block = info(40, 1, data.len());

    nn.with(|r| {
        r.commands.insert(
            a_id.clone(),
            vec![DatanodeCommand::Replicate {
                block,
                targets: vec![DatanodeAddr {
                    id: b_id.clone(),
                    grpc: b.grpc_addr.clone(),
                    local_socket: None,
                }],
                token: None,
            }],
        )
    });
    eventually("the copy was reported by its target", || async {
        nn.received(&b_id, block)
    })
    .await;
    let back = read(&mut b.client().await, 40, 1, 0, 0)
        .await
        .expect("read copy");
    assert!(back == data, "the copy is byte-identical");

    let registrations = nn.with(|r| {
        r.forget.insert(a_id.clone());
        r.registrations.iter().filter(|g| g.id == a_id).count()
    });
    eventually(
        "the forgotten datanode registered and reported again",
        || async {
            nn.with(|r| {
                r.registrations.iter().filter(|g| g.id == a_id).count() > registrations
                    && r.full_reports
                        .iter()
                        .any(|f| f.id == a_id && f.blocks.contains(&block))
            })
        },
    )
    .await;
}
