//! The datanode's HTTP endpoint: `GET /health` for readiness checks and operators, and
//! `GET /metrics` for Prometheus (see `metrics`).

use crate::Node;
use crate::metrics::Snapshot;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(node)
}

/// `{"status":"ok","id":"<datanode id>","blocks":N}`.
async fn health(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "id": node.store.datanode_id(),
        "blocks": node.store.block_count(),
    }))
}

/// Prometheus text format; space is measured now (off the runtime).
async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    let space = node.space().await;
    let body = node.metrics.render(Snapshot {
        blocks: node.store.block_count(),
        capacity: space.capacity,
        used: space.used,
        remaining: space.remaining,
        active_transfers: node.transfers.count(),
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}
