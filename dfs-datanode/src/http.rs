//! The datanode's HTTP endpoint: `GET /health` for readiness checks and operators.

use crate::Node;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

pub fn router(node: Arc<Node>) -> Router {
    Router::new().route("/health", get(health)).with_state(node)
}

/// `{"status":"ok","id":"<datanode id>","blocks":N}`.
async fn health(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "id": node.store.datanode_id(),
        "blocks": node.store.block_count(),
    }))
}
