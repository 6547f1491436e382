//! A namenode's limits, in process: an oversized body gets a 413 JSON error, a client holding
//! `max_leases_per_client` write leases is refused another with `EMFILE` (429), a request whose
//! body stalls is answered 408 within the request timeout, and a TCP peer that says nothing is
//! disconnected after the idle timeout.

use dfs_namenode::{Config, run};
use dfs_proto::rest::{self, Attr, CreateRequest, Endpoint, FileKind, LeaseRequest};
use dfs_proto::{ApiError, ClientId, ErrorCode, InodeId};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(11);
const MAX_LEASES: u32 = 3;

struct Namenode {
    addr: String,
    http: reqwest::Client,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Namenode {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start() -> Namenode {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut config = Config::new(dir.path());
    config.max_leases_per_client = MAX_LEASES;
    config.request_timeout = REQUEST_TIMEOUT;
    config.idle_timeout = IDLE_TIMEOUT;
    let stop = CancellationToken::new();
    tokio::spawn(run(config, listener, stop.clone()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let nn = Namenode {
        addr,
        http,
        stop,
        _dir: dir,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready = nn
            .http
            .get(format!("http://{}{}", nn.addr, rest::ClusterInfo::PATH))
            .send()
            .await
            .ok()
            .and_then(|r| r.status().is_success().then_some(()));
        let leader = ready.is_some() && create(&nn, "probe", None).await.is_ok();
        if leader {
            return nn;
        }
        assert!(tokio::time::Instant::now() < deadline, "namenode not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post<E: Endpoint>(
    nn: &Namenode,
    req: &E::Request,
) -> Result<E::Response, (u16, ApiError)> {
    let resp = nn
        .http
        .post(format!("http://{}{}", nn.addr, E::PATH))
        .json(req)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        Ok(resp.json().await.expect("response parses"))
    } else {
        Err((
            status,
            resp.json().await.expect("error body is an ApiError"),
        ))
    }
}

async fn create(nn: &Namenode, name: &str, lease: Option<&str>) -> Result<Attr, (u16, ApiError)> {
    post::<rest::Create>(
        nn,
        &CreateRequest {
            parent: InodeId::ROOT,
            name: name.to_string(),
            kind: FileKind::File,
            perm: 0o644,
            uid: 0,
            gid: 0,
            lease: lease.map(|c| ClientId(c.to_string())),
        },
    )
    .await
}

fn lease(ino: InodeId, client: &str) -> LeaseRequest {
    LeaseRequest {
        ino,
        client: ClientId(client.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_a_413_json_error() {
    let nn = start().await;
    let body = vec![b' '; dfs_namenode::api::API_BODY_LIMIT + 1];
    let resp = nn
        .http
        .post(format!("http://{}{}", nn.addr, rest::Mkdir::PATH))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 413);
    // The unread body leaves the connection unusable: the answer must say so.
    assert_eq!(
        resp.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let err: ApiError = resp.json().await.expect("JSON error");
    assert_eq!(err.code, ErrorCode::TooBig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_cap_refuses_with_emfile() {
    let nn = start().await;
    let mut files = Vec::new();
    for i in 0..MAX_LEASES {
        files.push(
            create(&nn, &format!("f{i}"), Some("c1"))
                .await
                .expect("create")
                .ino,
        );
    }
    // A new file, or opening another existing one, is over the cap.
    let (status, err) = create(&nn, "over", Some("c1")).await.expect_err("capped");
    assert_eq!((status, err.code), (429, ErrorCode::TooManyOpen), "{err}");
    assert!(err.message.contains("max_leases_per_client"), "{err}");
    assert_eq!(err.code.as_str(), "EMFILE");
    let other = create(&nn, "other", None).await.expect("create").ino;
    let (status, err) = post::<rest::OpenWrite>(&nn, &lease(other, "c1"))
        .await
        .expect_err("capped");
    assert_eq!((status, err.code), (429, ErrorCode::TooManyOpen), "{err}");
    // Re-opening a file it holds is a renewal, not a new lease; other clients are not affected.
    post::<rest::OpenWrite>(&nn, &lease(files[0], "c1"))
        .await
        .expect("renew a held lease");
    post::<rest::OpenWrite>(&nn, &lease(other, "c2"))
        .await
        .expect("another client");
    // Closing one makes room again.
    post::<rest::ReleaseLease>(&nn, &lease(files[1], "c1"))
        .await
        .expect("release");
    create(&nn, "again", Some("c1")).await.expect("room again");
}

/// Reads until the peer closes the connection (EOF or reset); what was read.
async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_answered_408_and_a_silent_peer_is_dropped() {
    let nn = start().await;

    let mut slow = TcpStream::connect(&nn.addr).await.expect("connect");
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: 100\r\n\r\n{{",
        rest::Mkdir::PATH
    );
    slow.write_all(head.as_bytes()).await.expect("write");
    let mut silent = TcpStream::connect(&nn.addr).await.expect("connect");

    let answer = tokio::time::timeout(Duration::from_secs(90), read_to_close(&mut slow))
        .await
        .expect("the stalled request is answered and closed within 90 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("UNAVAILABLE"), "{answer}");
    assert!(answer.contains("request timeout"), "{answer}");

    let said = tokio::time::timeout(Duration::from_secs(90), read_to_close(&mut silent))
        .await
        .expect("the silent peer is disconnected within 90 s");
    assert!(said.is_empty(), "{}", String::from_utf8_lossy(&said));
    // The namenode still serves.
    create(&nn, "after", None).await.expect("still serving");
}
