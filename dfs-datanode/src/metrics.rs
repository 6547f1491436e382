//! `GET /metrics` on the HTTP listener: the datanode's Prometheus metrics in the text format.
//!
//! The datanode has its own recorder (no process-wide global, so tests may run several
//! datanodes in one process). Every handle bumped on a hot path (a gRPC read or write, a
//! heartbeat, a scrubbed replica) is registered once here and is an atomic; gauges (replicas
//! stored, space) are measured when `/metrics` is scraped. Every metric name is listed with its
//! meaning in `docs/OPERATIONS.md`.

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the latency histogram buckets (a 64 MiB block write takes seconds).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// How often recorded latencies are folded into their histograms (a scrape does it too).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
const META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

const REQUESTS: &str = "dfs_datanode_grpc_requests_total";
const SECONDS: &str = "dfs_datanode_grpc_duration_seconds";

/// Every metric this datanode exports, with its help text.
const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        REQUESTS,
        "gRPC block transfers served, by operation (write_block, read_block) and result (ok, error)",
    ),
    (
        SECONDS,
        "gRPC block transfer duration in seconds (whole stream), by operation",
    ),
    (
        "dfs_datanode_bytes_written_total",
        "Bytes of replicas written (stored) by WriteBlock",
    ),
    (
        "dfs_datanode_bytes_read_total",
        "Bytes of replicas sent by ReadBlock",
    ),
    (
        "dfs_datanode_local_reads_total",
        "Replica files handed to local readers over the short-circuit socket, by result (ok, error)",
    ),
    (
        "dfs_datanode_heartbeats_sent_total",
        "Heartbeats sent to namenodes, by result (ok, error)",
    ),
    (
        "dfs_datanode_scrub_replicas_checked_total",
        "Replicas the scrubber re-verified",
    ),
    (
        "dfs_datanode_scrub_corrupt_found_total",
        "Replicas the scrubber found corrupt",
    ),
    (
        "dfs_datanode_replica_copies_total",
        "Re-replication copies this datanode sent, by result (ok, error)",
    ),
    (
        "dfs_datanode_replicas_deleted_total",
        "Replicas deleted on a namenode's command",
    ),
    ("dfs_datanode_blocks", "Replicas stored"),
    (
        "dfs_datanode_capacity_bytes",
        "Capacity reported to namenodes",
    ),
    ("dfs_datanode_used_bytes", "Bytes of replicas stored"),
    (
        "dfs_datanode_remaining_bytes",
        "Bytes still available for replicas",
    ),
    (
        "dfs_datanode_active_transfers",
        "Block reads and writes in progress",
    ),
];

/// One gRPC operation's handles.
pub struct OpMetrics {
    ok: Counter,
    error: Counter,
    seconds: Histogram,
}

impl OpMetrics {
    /// Counts one finished transfer that started at `started`.
    pub fn finished(&self, ok: bool, started: Instant) {
        if ok { &self.ok } else { &self.error }.increment(1);
        self.seconds.record(started.elapsed().as_secs_f64());
    }
}

/// A counter split by `result="ok|error"`.
pub struct Outcomes {
    ok: Counter,
    error: Counter,
}

impl Outcomes {
    pub fn count(&self, ok: bool) {
        if ok { &self.ok } else { &self.error }.increment(1);
    }
}

/// The datanode's recorder and handles.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Opens every [`UPKEEP_EVERY`] for the histogram upkeep.
    upkeep: dfs_proto::every::Every,
    pub writes: OpMetrics,
    pub reads: OpMetrics,
    pub bytes_written: Counter,
    pub bytes_read: Counter,
    pub heartbeats: Outcomes,
    /// Local read requests answered with a replica's file (ok) or refused (error).
    pub local_reads: Outcomes,
    pub scrub_checked: Counter,
    pub scrub_corrupt: Counter,
    pub copies: Outcomes,
    pub deletes: Counter,
}

/// Figures measured at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub blocks: u64,
    pub capacity: u64,
    pub used: u64,
    pub remaining: u64,
    pub active_transfers: u32,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        // Only an empty bucket list is refused; fall back to summaries rather than fail.
        let recorder = match PrometheusBuilder::new().set_buckets(LATENCY_BUCKETS) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        }
        .build_recorder();
        for (name, help) in DESCRIPTIONS {
            let (key, help) = (KeyName::from_const_str(name), (*help).into());
            match *name {
                SECONDS => recorder.describe_histogram(key, None, help),
                n if n.ends_with("_total") => recorder.describe_counter(key, None, help),
                _ => recorder.describe_gauge(key, None, help),
            }
        }
        let counter = |name: &'static str, labels: &[(&'static str, &'static str)]| {
            let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, *v)).collect();
            recorder.register_counter(&Key::from_parts(name, labels), &META)
        };
        let op = |op: &'static str| OpMetrics {
            ok: counter(REQUESTS, &[("op", op), ("result", "ok")]),
            error: counter(REQUESTS, &[("op", op), ("result", "error")]),
            seconds: recorder
                .register_histogram(&Key::from_parts(SECONDS, vec![Label::new("op", op)]), &META),
        };
        let outcomes = |name: &'static str| Outcomes {
            ok: counter(name, &[("result", "ok")]),
            error: counter(name, &[("result", "error")]),
        };
        Metrics {
            writes: op("write_block"),
            reads: op("read_block"),
            bytes_written: counter("dfs_datanode_bytes_written_total", &[]),
            bytes_read: counter("dfs_datanode_bytes_read_total", &[]),
            heartbeats: outcomes("dfs_datanode_heartbeats_sent_total"),
            local_reads: outcomes("dfs_datanode_local_reads_total"),
            scrub_checked: counter("dfs_datanode_scrub_replicas_checked_total", &[]),
            scrub_corrupt: counter("dfs_datanode_scrub_corrupt_found_total", &[]),
            copies: outcomes("dfs_datanode_replica_copies_total"),
            deletes: counter("dfs_datanode_replicas_deleted_total", &[]),
            handle: recorder.handle(),
            recorder,
            upkeep: dfs_proto::every::Every::new(UPKEEP_EVERY),
        }
    }

    fn gauge(&self, name: &'static str) -> Gauge {
        self.recorder.register_gauge(&Key::from_name(name), &META)
    }

    /// Folds recorded samples into histograms every [`UPKEEP_EVERY`], so memory stays bounded
    /// when nobody scrapes (called from the heartbeat loop).
    pub fn upkeep_now_and_then(&self) {
        if self.upkeep.due() {
            self.handle.run_upkeep();
        }
    }

    /// Sets the gauges from `now` and renders every metric.
    pub fn render(&self, now: Snapshot) -> String {
        self.gauge("dfs_datanode_blocks").set(now.blocks as f64);
        self.gauge("dfs_datanode_capacity_bytes")
            .set(now.capacity as f64);
        self.gauge("dfs_datanode_used_bytes").set(now.used as f64);
        self.gauge("dfs_datanode_remaining_bytes")
            .set(now.remaining as f64);
        self.gauge("dfs_datanode_active_transfers")
            .set(f64::from(now.active_transfers));
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_bytes_and_gauges_render() {
        let m = Metrics::new();
        m.writes.finished(true, Instant::now());
        m.reads.finished(false, Instant::now());
        m.bytes_written.increment(4096);
        m.heartbeats.count(true);
        let text = m.render(Snapshot {
            blocks: 3,
            capacity: 100,
            ..Snapshot::default()
        });
        for line in [
            r#"dfs_datanode_grpc_requests_total{op="write_block",result="ok"} 1"#,
            r#"dfs_datanode_grpc_requests_total{op="read_block",result="error"} 1"#,
            r#"dfs_datanode_grpc_duration_seconds_count{op="write_block"} 1"#,
            "dfs_datanode_bytes_written_total 4096",
            r#"dfs_datanode_heartbeats_sent_total{result="ok"} 1"#,
            "dfs_datanode_blocks 3",
            "dfs_datanode_capacity_bytes 100",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
