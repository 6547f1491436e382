//! The mount's Prometheus metrics: per-FUSE-operation counts (by result) and latencies, served at
//! `http://ADDR/metrics` when the mount is given `-o metrics_listen=ADDR`. Without that option
//! nothing is recorded at all.
//!
//! Every operation's handles are registered once, in a table that is only read afterwards, so
//! recording an operation is a hash lookup and a few atomic adds. Whether an operation failed is
//! noted by the adapter's error path in a task-local ([`note_failure`]), so the callbacks need
//! not report it twice.

use anyhow::{Context, Result};
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::{Counter, Histogram, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every operation the adapter serves (the `op` label's values).
pub const OPS: &[&str] = &[
    "lookup",
    "getattr",
    "setattr",
    "readlink",
    "mknod",
    "mkdir",
    "unlink",
    "rmdir",
    "symlink",
    "rename",
    "link",
    "open",
    "read",
    "write",
    "flush",
    "release",
    "fsync",
    "opendir",
    "readdir",
    "readdirplus",
    "releasedir",
    "fsyncdir",
    "statfs",
    "setxattr",
    "getxattr",
    "listxattr",
    "removexattr",
    "access",
    "create",
];
/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// How often recorded latencies are folded into their histograms (a scrape does it too).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
const META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
const OPERATIONS: &str = "dfs_fuse_operations_total";
const SECONDS: &str = "dfs_fuse_operation_duration_seconds";

tokio::task_local! {
    /// Set by the adapter's error path while an operation runs under [`FuseMetrics::track`].
    static FAILED: Cell<bool>;
}

/// Marks the operation running on this task as failed (no-op outside [`FuseMetrics::track`]).
pub fn note_failure() {
    let _ = FAILED.try_with(|f| f.set(true));
}

struct OpMetrics {
    ok: Counter,
    error: Counter,
    seconds: Histogram,
}

/// The mount's recorder and each operation's handles.
pub struct FuseMetrics {
    ops: HashMap<&'static str, OpMetrics>,
    handle: PrometheusHandle,
    /// Opens every [`UPKEEP_EVERY`] for the histogram upkeep.
    upkeep: dfs_proto::every::Every,
}

impl FuseMetrics {
    pub fn new() -> FuseMetrics {
        // Only an empty bucket list is refused; fall back to summaries rather than fail.
        let recorder: PrometheusRecorder =
            match PrometheusBuilder::new().set_buckets(LATENCY_BUCKETS) {
                Ok(b) => b,
                Err(_) => PrometheusBuilder::new(),
            }
            .build_recorder();
        recorder.describe_counter(
            KeyName::from_const_str(OPERATIONS),
            None,
            "FUSE operations answered, by operation and result (ok, error)".into(),
        );
        recorder.describe_histogram(
            KeyName::from_const_str(SECONDS),
            None,
            "FUSE operation latency in seconds, from request to reply, by operation".into(),
        );
        let counter = |op: &'static str, result: &'static str| {
            let labels = vec![Label::new("op", op), Label::new("result", result)];
            recorder.register_counter(&Key::from_parts(OPERATIONS, labels), &META)
        };
        let ops = OPS
            .iter()
            .map(|op| {
                let seconds = Key::from_parts(SECONDS, vec![Label::new("op", *op)]);
                let m = OpMetrics {
                    ok: counter(op, "ok"),
                    error: counter(op, "error"),
                    seconds: recorder.register_histogram(&seconds, &META),
                };
                (*op, m)
            })
            .collect();
        FuseMetrics {
            ops,
            handle: recorder.handle(),
            upkeep: dfs_proto::every::Every::new(UPKEEP_EVERY),
        }
    }

    /// Runs `fut` (one operation, replying when done) and records its latency and result.
    pub async fn track(self: Arc<Self>, op: &'static str, fut: impl Future<Output = ()>) {
        let started = Instant::now();
        let failed = FAILED.scope(Cell::new(false), async {
            fut.await;
            FAILED.with(Cell::get)
        });
        let failed = failed.await;
        if let Some(m) = self.ops.get(op) {
            if failed { &m.error } else { &m.ok }.increment(1);
            m.seconds.record(started.elapsed().as_secs_f64());
        }
        self.upkeep_now_and_then();
    }

    /// Folds recorded samples into histograms every [`UPKEEP_EVERY`], so memory stays bounded
    /// when nobody scrapes.
    fn upkeep_now_and_then(&self) {
        if self.upkeep.due() {
            self.handle.run_upkeep();
        }
    }

    pub fn render(&self) -> String {
        self.handle.render()
    }
}

impl Default for FuseMetrics {
    fn default() -> Self {
        FuseMetrics::new()
    }
}

/// Starts the metrics endpoint on `listen` (when given) on `runtime`; answers the metrics the
/// adapter should record into, or `None` when metrics are off.
pub fn start(
    runtime: &tokio::runtime::Runtime,
    listen: Option<SocketAddr>,
) -> Result<Option<Arc<FuseMetrics>>> {
    let Some(addr) = listen else {
        return Ok(None);
    };
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("listen for metrics on {addr}"))?;
    let metrics = Arc::new(FuseMetrics::new());
    let served = Arc::clone(&metrics);
    let app = Router::new().route(
        "/metrics",
        get(move || async move {
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                served.render(),
            )
                .into_response()
        }),
    );
    runtime.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(%addr, "serving metrics at /metrics");
    Ok(Some(metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn operations_are_counted_by_result() {
        let m = Arc::new(FuseMetrics::new());
        m.clone().track("lookup", async {}).await;
        m.clone().track("lookup", async { note_failure() }).await;
        m.clone().track("read", async {}).await;
        let text = m.render();
        for line in [
            r#"dfs_fuse_operations_total{op="lookup",result="ok"} 1"#,
            r#"dfs_fuse_operations_total{op="lookup",result="error"} 1"#,
            r#"dfs_fuse_operations_total{op="read",result="ok"} 1"#,
            r#"dfs_fuse_operation_duration_seconds_count{op="read"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        note_failure(); // outside an operation: nothing happens
    }
}
