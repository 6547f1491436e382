//! `GET /metrics`: the namenode's Prometheus metrics in the text exposition format.
//!
//! Counters and histograms live in this namenode's own recorder (no process-wide global, so
//! several namenodes can run in one test process) and are bumped where things happen: every
//! REST request by the [`track_requests`] middleware, keyed by the route's path, and datanode
//! traffic by its handlers. Gauges (Raft position, datanodes by state, block health) are
//! measured from the live state when `/metrics` is scraped, so they cost nothing in between.
//! Every metric name is listed with its meaning in `docs/OPERATIONS.md`.

use crate::api::AppState;
use crate::datanodes::AdminState;
use crate::node::Node;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dfs_proto::DatanodeId;
use dfs_proto::rest::{BlockInfo, DatanodeState, NamenodeRole};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// How often recorded latencies are folded into their histograms (a scrape does it too); keeps
/// memory bounded when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// Label value for requests that matched no route.
const UNMATCHED: &str = "unmatched";
const META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Every metric this namenode exports, with its help text.
const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        REQUESTS,
        "REST requests answered, by route path and HTTP status code",
    ),
    (
        REQUEST_SECONDS,
        "REST request latency in seconds, by route path",
    ),
    (HEARTBEATS, "Datanode heartbeats received"),
    (
        BLOCK_REPORTS,
        "Datanode block reports received, by kind (full, incremental)",
    ),
    (
        "dfs_namenode_raft_role",
        "1 for this namenode's current Raft role, 0 for the others",
    ),
    ("dfs_namenode_raft_term", "Current Raft term"),
    (
        "dfs_namenode_raft_last_log_index",
        "Index of the last entry in this namenode's Raft log",
    ),
    (
        "dfs_namenode_raft_commit_index",
        "Index of the last committed Raft log entry",
    ),
    (
        "dfs_namenode_raft_applied_index",
        "Index of the last Raft log entry applied to the namespace",
    ),
    (
        "dfs_namenode_datanodes",
        "Datanodes known to this namenode, by state",
    ),
    ("dfs_namenode_files", "Files in the namespace"),
    ("dfs_namenode_directories", "Directories in the namespace"),
    ("dfs_namenode_blocks", "Committed blocks of files"),
    (
        "dfs_namenode_blocks_under_replicated",
        "Committed blocks with fewer live replicas than the replication factor",
    ),
    (
        "dfs_namenode_blocks_missing",
        "Committed blocks with no live replica",
    ),
    (
        "dfs_namenode_blocks_corrupt",
        "Committed blocks with at least one replica reported corrupt",
    ),
    (
        REPLICATION_QUEUE,
        "Blocks short of replicas at the last replication round (leader only)",
    ),
    (
        "dfs_namenode_replication_pending_copies",
        "Replica copies handed to datanodes and not yet confirmed",
    ),
    (
        COPIES_SCHEDULED,
        "Replica copies the replication monitor has scheduled",
    ),
];

const REQUESTS: &str = "dfs_namenode_requests_total";
const REQUEST_SECONDS: &str = "dfs_namenode_request_duration_seconds";
const HEARTBEATS: &str = "dfs_namenode_heartbeats_received_total";
const BLOCK_REPORTS: &str = "dfs_namenode_block_reports_received_total";
const REPLICATION_QUEUE: &str = "dfs_namenode_replication_queue_length";
const COPIES_SCHEDULED: &str = "dfs_namenode_replication_copies_scheduled_total";

/// The namenode's recorder and the handles bumped on hot paths (each an atomic).
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Opens every [`UPKEEP_EVERY`] for the histogram upkeep.
    upkeep: dfs_proto::every::Every,
    pub heartbeats: Counter,
    pub full_reports: Counter,
    pub incremental_reports: Counter,
    pub copies_scheduled: Counter,
    /// Set by the replication monitor after each round.
    pub replication_queue: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        // Only an empty bucket list is refused; fall back to summaries rather than fail.
        let builder = match builder.set_buckets(LATENCY_BUCKETS) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        for (name, help) in DESCRIPTIONS {
            let (name, help) = (KeyName::from_const_str(name), (*help).into());
            match name.as_str() {
                REQUEST_SECONDS => recorder.describe_histogram(name, None, help),
                n if n.ends_with("_total") => recorder.describe_counter(name, None, help),
                _ => recorder.describe_gauge(name, None, help),
            }
        }
        let handle = recorder.handle();
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &META)
        };
        let heartbeats = counter(HEARTBEATS, vec![]);
        let full_reports = counter(BLOCK_REPORTS, vec![Label::new("kind", "full")]);
        let incremental_reports = counter(BLOCK_REPORTS, vec![Label::new("kind", "incremental")]);
        let copies_scheduled = counter(COPIES_SCHEDULED, vec![]);
        let replication_queue = recorder.register_gauge(&Key::from_name(REPLICATION_QUEUE), &META);
        Metrics {
            recorder,
            handle,
            upkeep: dfs_proto::every::Every::new(UPKEEP_EVERY),
            heartbeats,
            full_reports,
            incremental_reports,
            copies_scheduled,
            replication_queue,
        }
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &META)
    }

    fn set(&self, name: &'static str, value: impl metrics::IntoF64) {
        self.gauge(name, vec![]).set(value);
    }

    /// Counts one answered REST request and its latency.
    pub fn request(&self, path: String, status: u16, took: Duration) {
        let code = Label::new("code", status.to_string());
        let key = Key::from_parts(REQUESTS, vec![Label::new("path", path.clone()), code]);
        self.recorder.register_counter(&key, &META).increment(1);
        let key = Key::from_parts(REQUEST_SECONDS, vec![Label::new("path", path)]);
        let histogram: Histogram = self.recorder.register_histogram(&key, &META);
        histogram.record(took.as_secs_f64());
        self.upkeep_now_and_then();
    }

    /// Folds recorded samples into histograms every [`UPKEEP_EVERY`] (one caller does it).
    fn upkeep_now_and_then(&self) {
        if self.upkeep.due() {
            self.handle.run_upkeep();
        }
    }
}

/// Middleware: counts every request by its matched route path (bounded label values) and
/// status code, and records its latency.
pub async fn track_requests(State(node): State<AppState>, req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(req).await;
    node.metrics
        .request(path, response.status().as_u16(), started.elapsed());
    response
}

/// How healthy the committed blocks are, as this namenode's block map sees them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlockHealth {
    pub blocks: u64,
    pub under_replicated: u64,
    pub missing: u64,
    pub corrupt: u64,
    /// Copies handed to datanodes and not yet confirmed.
    pub pending_copies: u64,
}

impl BlockHealth {
    /// Walks every committed block (the namespace lock is released before the block map's is
    /// taken, as everywhere).
    pub fn measure(node: &Node) -> BlockHealth {
        let committed: Vec<BlockInfo> = node.state.read(|ns| ns.committed_blocks().collect());
        let live: HashSet<DatanodeId> = node.datanodes.live().into_iter().map(|d| d.id).collect();
        let wanted = node.settings.replication as usize;
        let map = node.blocks();
        let mut health = BlockHealth {
            blocks: committed.len() as u64,
            pending_copies: map.pending_copies() as u64,
            ..BlockHealth::default()
        };
        for block in &committed {
            let replicas = map
                .holders(block)
                .iter()
                .filter(|id| live.contains(*id))
                .count();
            if replicas == 0 {
                health.missing += 1;
            }
            if replicas < wanted {
                health.under_replicated += 1;
            }
            if !map.corrupt_holders(block).is_empty() {
                health.corrupt += 1;
            }
        }
        health
    }
}

/// A datanode's state as reports show it (liveness first, then what the operator asked).
pub fn datanode_state(live: bool, admin: AdminState) -> DatanodeState {
    match (live, admin) {
        (false, _) => DatanodeState::Dead,
        (true, AdminState::Normal) => DatanodeState::Live,
        (true, AdminState::Decommissioning) => DatanodeState::Decommissioning,
        (true, AdminState::Decommissioned) => DatanodeState::Decommissioned,
    }
}

pub fn state_name(state: DatanodeState) -> &'static str {
    match state {
        DatanodeState::Live => "live",
        DatanodeState::Dead => "dead",
        DatanodeState::Decommissioning => "decommissioning",
        DatanodeState::Decommissioned => "decommissioned",
    }
}

pub fn role_name(role: &NamenodeRole) -> &'static str {
    match role {
        NamenodeRole::Leader => "leader",
        NamenodeRole::Follower => "follower",
        NamenodeRole::Candidate => "candidate",
        NamenodeRole::Learner => "learner",
    }
}

/// Sets every gauge from the live state and renders all metrics.
async fn render(node: &Node) -> String {
    let m = &node.metrics;
    let role = node.role();
    for r in [
        NamenodeRole::Leader,
        NamenodeRole::Follower,
        NamenodeRole::Candidate,
        NamenodeRole::Learner,
    ] {
        let labels = vec![Label::new("role", role_name(&r))];
        m.gauge("dfs_namenode_raft_role", labels)
            .set(if r == role { 1.0 } else { 0.0 });
    }
    let (term, last_log, applied) = {
        let raft = node.raft.metrics();
        let raft = raft.borrow();
        (
            raft.current_term,
            raft.last_log_index,
            raft.last_applied.map(|l| l.index),
        )
    };
    m.set("dfs_namenode_raft_term", term as f64);
    m.set(
        "dfs_namenode_raft_last_log_index",
        last_log.unwrap_or(0) as f64,
    );
    m.set(
        "dfs_namenode_raft_applied_index",
        applied.unwrap_or(0) as f64,
    );
    // Raft's metrics do not carry the commit index; its state does (absent once it stopped).
    if let Ok(committed) = node
        .raft
        .with_raft_state(|s| s.committed.map(|l| l.index))
        .await
    {
        m.set(
            "dfs_namenode_raft_commit_index",
            committed.unwrap_or(0) as f64,
        );
    }

    let mut by_state = [0u64; 4];
    for (d, live) in node.datanodes.all() {
        by_state[datanode_state(live, d.admin) as usize] += 1;
    }
    for state in [
        DatanodeState::Live,
        DatanodeState::Dead,
        DatanodeState::Decommissioning,
        DatanodeState::Decommissioned,
    ] {
        let labels = vec![Label::new("state", state_name(state))];
        m.gauge("dfs_namenode_datanodes", labels)
            .set(by_state[state as usize] as f64);
    }

    let stats = node.state.read(|ns| ns.stats());
    m.set("dfs_namenode_files", stats.files as f64);
    m.set("dfs_namenode_directories", stats.directories as f64);
    let health = BlockHealth::measure(node);
    m.set("dfs_namenode_blocks", health.blocks as f64);
    m.set(
        "dfs_namenode_blocks_under_replicated",
        health.under_replicated as f64,
    );
    m.set("dfs_namenode_blocks_missing", health.missing as f64);
    m.set("dfs_namenode_blocks_corrupt", health.corrupt as f64);
    m.set(
        "dfs_namenode_replication_pending_copies",
        health.pending_copies as f64,
    );
    m.handle.render()
}

/// `GET /metrics`.
pub async fn serve(State(node): State<AppState>) -> impl IntoResponse {
    let body = render(&node).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_path_and_code_with_latency_buckets() {
        let m = Metrics::new();
        m.request("/v1/create".into(), 200, Duration::from_millis(3));
        m.request("/v1/create".into(), 200, Duration::from_millis(30));
        m.request("/v1/lookup".into(), 404, Duration::from_millis(1));
        m.heartbeats.increment(2);
        let text = m.handle.render();
        assert!(
            text.contains(r#"dfs_namenode_requests_total{path="/v1/create",code="200"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"dfs_namenode_requests_total{path="/v1/lookup",code="404"} 1"#));
        assert!(text.contains(
            r#"dfs_namenode_request_duration_seconds_bucket{path="/v1/create",le="0.005"} 1"#
        ));
        assert!(
            text.contains(r#"dfs_namenode_request_duration_seconds_count{path="/v1/create"} 2"#)
        );
        assert!(text.contains("dfs_namenode_heartbeats_received_total 2"));
        assert!(text.contains("# HELP dfs_namenode_heartbeats_received_total Datanode heartbeats"));
    }
}
