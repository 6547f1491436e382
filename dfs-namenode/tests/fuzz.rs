//! Fuzz targets (proptest) for every decoder of outside bytes in the namenode's REST server:
//! arbitrary bytes and arbitrary JSON values as the body of every POST endpoint (the Raft ones
//! included), arbitrary query strings for every GET endpoint, and arbitrary identity headers,
//! all sent through the real router of an in-process namenode. Every answer must be a JSON
//! success or a JSON `ApiError` with the status its code names and no internal error (`EIO`);
//! no connection may be dropped (what a panicking handler does), and the namenode must keep
//! leading.
//!
//! Bounded for `make test`; run longer with `PROPTEST_CASES=100000 cargo test -p dfs-namenode
//! --test fuzz` (see docs/SECURITY.md).

use dfs_namenode::{Config, run};
use dfs_proto::rest::{self, Endpoint, Method};
use proptest::prelude::*;
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

const CASES: u32 = 512;

macro_rules! routes {
    ($($e:ident),* $(,)?) => {
        &[$((rest::$e::METHOD, rest::$e::PATH)),*]
    };
}

/// Every REST endpoint the router serves, and the Raft endpoints.
fn endpoints() -> Vec<(Method, &'static str)> {
    let mut all: Vec<(Method, &'static str)> = routes!(
        ClusterInfo,
        GetAttr,
        Access,
        Lookup,
        Resolve,
        ReadDir,
        Create,
        Mkdir,
        Symlink,
        ReadLink,
        Link,
        Unlink,
        Rmdir,
        Rename,
        SetAttr,
        OpenWrite,
        RenewLease,
        ReleaseLease,
        AllocateBlock,
        Commit,
        GetBlocks,
        StatFs,
        RegisterDatanode,
        Heartbeat,
        BlockReport,
        IncrementalBlockReport,
        AdminReport,
        GetXattr,
        ListXattr,
        SetXattr,
        RemoveXattr,
        ReportBadReplicas,
        RecoverBlock,
        Fsck,
        Decommission,
        HaStatus,
        HaAddNode,
        HaRemoveNode,
    )
    .to_vec();
    for path in ["/raft/append", "/raft/vote", "/raft/snapshot"] {
        all.push((Method::Post, path));
    }
    all
}

/// One namenode for the whole file, on its own runtime (proptest cases run synchronously).
struct Target {
    rt: Runtime,
    addr: String,
    http: reqwest::Client,
    _stop: CancellationToken,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        // The target lives as long as the test process (a static is never dropped), so its
        // directory is a fixed one under the target directory, cleared on every run.
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("namenode-fuzz");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the fuzz data directory");
        let stop = CancellationToken::new();
        let addr = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr").to_string();
            rt_spawn(run(Config::new(&dir), listener, stop.clone()));
            addr
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let t = Target {
            rt,
            addr,
            http,
            _stop: stop,
        };
        // Ready once it answers as leader.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !t.rt.block_on(t.leads()) {
            assert!(std::time::Instant::now() < deadline, "namenode not ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        t
    })
}

fn rt_spawn<F>(f: F)
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = f.await {
            panic!("namenode stopped: {e:#}");
        }
    });
}

impl Target {
    async fn leads(&self) -> bool {
        let url = format!("http://{}{}", self.addr, rest::ClusterInfo::PATH);
        let Ok(resp) = self.http.get(url).send().await else {
            return false;
        };
        let Ok(info) = resp.json::<rest::ClusterInfoResponse>().await else {
            return false;
        };
        info.role == dfs_proto::rest::NamenodeRole::Leader
    }

    /// Sends one request and checks the answer's shape.
    fn check(&self, req: reqwest::RequestBuilder) -> Result<(), TestCaseError> {
        self.rt.block_on(async {
            let resp = req.send().await.map_err(|e| {
                TestCaseError::fail(format!("no answer (did the namenode die?): {e}"))
            })?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap_or_default();
            if status >= 400 {
                // An error is an ApiError with the status its code names (a handler that
                // panicked would have dropped the connection instead).
                let err: Result<dfs_proto::ApiError, _> = serde_json::from_slice(&body);
                let text = String::from_utf8_lossy(&body);
                prop_assert!(err.is_ok(), "error {} is not an ApiError: {}", status, text);
                if let Ok(err) = err {
                    // 408 (the request timeout) is the one status no code names.
                    prop_assert!(
                        err.code.http_status() == status || status == 408,
                        "status {} for {}",
                        status,
                        text
                    );
                    prop_assert!(
                        err.code != dfs_proto::ErrorCode::Io,
                        "internal error: {}",
                        text
                    );
                }
            }
            prop_assert!(self.leads().await, "the namenode stopped leading");
            Ok(())
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// JSON values of any shape, leaning on the field names and number edges requests use.
fn json_value() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        Just("parent".to_string()),
        Just("name".to_string()),
        Just("ino".to_string()),
        Just("client".to_string()),
        Just("kind".to_string()),
        Just("perm".to_string()),
        Just("uid".to_string()),
        Just("gid".to_string()),
        Just("size".to_string()),
        Just("blocks".to_string()),
        Just("offset".to_string()),
        Just("length".to_string()),
        Just("index".to_string()),
        Just("lease".to_string()),
        Just("id".to_string()),
        Just("value".to_string()),
        "[a-z_]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(0)),
        Just(Value::from(1)),
        any::<f64>().prop_map(Value::from),
        ".{0,300}".prop_map(Value::from),
        Just(Value::from("x".repeat(5000))),
        Just(Value::from("File")),
        Just(Value::from("Dir")),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(field.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The number of cases: `PROPTEST_CASES` when set (a longer run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(CASES)))]

    #[test]
    fn arbitrary_bytes_as_any_body(which in any::<prop::sample::Index>(),
                                   body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let t = target();
        let all = endpoints();
        let (method, path) = all[which.index(all.len())];
        let req = match method {
            Method::Post => t.http.post(t.url(path)).header("content-type", "application/json").body(body),
            Method::Get => t.http.get(t.url(path)).body(body),
        };
        t.check(req)?;
    }

    #[test]
    fn arbitrary_json_as_any_body(which in any::<prop::sample::Index>(), value in json_value()) {
        let t = target();
        // Well-formed membership changes really change the membership (a learner at a made-up
        // address, the only voter removed): those two get arbitrary bytes only.
        let all: Vec<_> = endpoints()
            .into_iter()
            .filter(|(_, p)| ![rest::HaAddNode::PATH, rest::HaRemoveNode::PATH].contains(p))
            .collect();
        let (method, path) = all[which.index(all.len())];
        let req = match method {
            Method::Post => t.http.post(t.url(path)).json(&value),
            // GET requests take their fields from the query string.
            Method::Get => {
                let pairs: Vec<(String, String)> = match &value {
                    Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })).collect(),
                    other => vec![("ino".into(), other.to_string())],
                };
                t.http.get(t.url(path)).query(&pairs)
            }
        };
        t.check(req)?;
    }

    #[test]
    fn arbitrary_query_strings(which in any::<prop::sample::Index>(), query in ".{0,400}") {
        let t = target();
        let all = endpoints();
        let (_, path) = all[which.index(all.len())];
        let encoded: String = query.bytes().map(|b| format!("%{b:02x}")).collect();
        let raw = format!("{}?{}", t.url(path), if query.contains('=') { &query } else { &encoded });
        // A string reqwest cannot make a URL of never reaches the namenode: nothing to check.
        if let Ok(url) = reqwest::Url::parse(&raw) {
            t.check(t.http.get(url))?;
        }
    }

    #[test]
    fn arbitrary_identity_headers(uid in ".{0,24}", gid in ".{0,24}", groups in ".{0,200}",
                                  name in "[a-z]{1,8}") {
        let t = target();
        let mut req = t.http.post(t.url(rest::Mkdir::PATH)).json(&rest::MkdirRequest {
            parent: dfs_proto::InodeId::ROOT,
            name,
            perm: 0o755,
            uid: 0,
            gid: 0,
        });
        for (header, value) in [("x-dfs-uid", uid), ("x-dfs-gid", gid), ("x-dfs-groups", groups)] {
            // Values a header cannot carry never reach the namenode.
            if let Ok(v) = reqwest::header::HeaderValue::from_str(&value) {
                req = req.header(header, v);
            }
        }
        t.check(req)?;
    }
}
