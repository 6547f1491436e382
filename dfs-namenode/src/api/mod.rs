//! The namenode's REST API: every endpoint of [`dfs_proto::rest`] routed by its `PATH` and
//! `METHOD` (GET requests from the query string, POST requests from a JSON body), plus the Raft
//! endpoints, with JSON errors for everything that fails, including unknown routes and bodies
//! over [`API_BODY_LIMIT`]. `GET /metrics` and the status page at `/` are routed here too, and
//! every request is counted by [`crate::metrics::track_requests`]. With a cluster secret, every
//! request but those two carries the cluster credential ([`auth`]).

pub mod auth;
pub mod block_ops;
pub mod caller;
pub mod conn_limits;
pub mod datanode_ops;
pub mod error;
pub mod fsck_ops;
pub mod ha_ops;
pub mod namespace_ops;
pub mod xattr_ops;

use crate::node::Node;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dfs_proto::rest::{self, Endpoint, Method};
use dfs_proto::{ApiError, ErrorCode};
use error::{ApiJson, ApiQuery, HttpError};
use std::future::Future;
use std::sync::Arc;

/// Largest API request body: 8 MiB (a commit of a very large file's block list fits).
pub const API_BODY_LIMIT: usize = 8 * 1024 * 1024;

pub type AppState = Arc<Node>;

/// Routes endpoint `E` to `handler`, which takes the typed request and answers the typed
/// response or an [`ApiError`].
fn route<E, F, Fut>(router: Router<AppState>, handler: F) -> Router<AppState>
where
    E: Endpoint,
    F: Fn(AppState, E::Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<E::Response, ApiError>> + Send + 'static,
{
    match E::METHOD {
        Method::Get => router.route(
            E::PATH,
            get(
                move |State(node): State<AppState>, ApiQuery(req): ApiQuery<E::Request>| async move {
                    handler(node, req).await.map(Json).map_err(HttpError)
                },
            ),
        ),
        Method::Post => router.route(
            E::PATH,
            post(
                move |State(node): State<AppState>, ApiJson(req): ApiJson<E::Request>| async move {
                    handler(node, req).await.map(Json).map_err(HttpError)
                },
            ),
        ),
    }
}

/// Bounds every request, body included, by the configured request timeout: a slower one is
/// answered 408 with an `UNAVAILABLE` JSON error and its connection is closed, so a peer that
/// sends its body slowly (or a handler that hangs) cannot hold a task for ever.
pub async fn request_timeout(State(node): State<AppState>, req: Request, next: Next) -> Response {
    let limit = node.settings.request_timeout;
    let what = format!("{} {}", req.method(), req.uri().path());
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(request = %what, ?limit, "request timed out");
            let error = ApiError::new(
                ErrorCode::Unavailable,
                format!("{what} took longer than the request timeout ({limit:?})"),
            );
            let mut response = (StatusCode::REQUEST_TIMEOUT, Json(error)).into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// The whole HTTP surface of a namenode.
pub fn router(node: AppState) -> Router {
    use datanode_ops as d;
    use namespace_ops as n;
    let r = Router::new();
    let r = route::<rest::ClusterInfo, _, _>(r, n::cluster_info);
    let r = route::<rest::GetAttr, _, _>(r, n::getattr);
    let r = route::<rest::Access, _, _>(r, n::access);
    let r = route::<rest::Lookup, _, _>(r, n::lookup);
    let r = route::<rest::Resolve, _, _>(r, n::resolve);
    let r = route::<rest::ReadDir, _, _>(r, n::readdir);
    let r = route::<rest::Create, _, _>(r, n::create);
    let r = route::<rest::Mkdir, _, _>(r, n::mkdir);
    let r = route::<rest::Symlink, _, _>(r, n::symlink);
    let r = route::<rest::ReadLink, _, _>(r, n::readlink);
    let r = route::<rest::Link, _, _>(r, n::link);
    let r = route::<rest::Unlink, _, _>(r, n::unlink);
    let r = route::<rest::Rmdir, _, _>(r, n::rmdir);
    let r = route::<rest::Rename, _, _>(r, n::rename);
    let r = route::<rest::SetAttr, _, _>(r, n::setattr);
    let r = route::<rest::OpenWrite, _, _>(r, n::open_write);
    let r = route::<rest::RenewLease, _, _>(r, n::renew_lease);
    let r = route::<rest::ReleaseLease, _, _>(r, n::release_lease);
    let r = route::<rest::AllocateBlock, _, _>(r, n::allocate_block);
    let r = route::<rest::Commit, _, _>(r, n::commit);
    let r = route::<rest::GetBlocks, _, _>(r, n::get_blocks);
    let r = route::<rest::StatFs, _, _>(r, d::statfs);
    let r = route::<rest::RegisterDatanode, _, _>(r, d::register);
    let r = route::<rest::Heartbeat, _, _>(r, d::heartbeat);
    let r = route::<rest::CommandPoll, _, _>(r, d::command_poll);
    let r = route::<rest::BlockReport, _, _>(r, d::block_report);
    let r = route::<rest::IncrementalBlockReport, _, _>(r, d::incremental_block_report);
    let r = route::<rest::AdminReport, _, _>(r, d::admin_report);
    let r = route::<rest::GetXattr, _, _>(r, xattr_ops::get_xattr);
    let r = route::<rest::ListXattr, _, _>(r, xattr_ops::list_xattr);
    let r = route::<rest::SetXattr, _, _>(r, xattr_ops::set_xattr);
    let r = route::<rest::RemoveXattr, _, _>(r, xattr_ops::remove_xattr);
    // Data integrity (block_ops, fsck_ops): bad replicas, pipeline recovery, fsck, decommission.
    let r = route::<rest::ReportBadReplicas, _, _>(r, block_ops::report_bad_replicas);
    let r = route::<rest::RecoverBlock, _, _>(r, block_ops::recover_block);
    let r = route::<rest::Fsck, _, _>(r, fsck_ops::fsck);
    let r = route::<rest::Decommission, _, _>(r, fsck_ops::decommission);
    // High availability (ha_ops): status, membership changes, and request ids for retries.
    let r = route::<rest::HaStatus, _, _>(r, ha_ops::status);
    let r = route::<rest::HaAddNode, _, _>(r, ha_ops::add);
    let r = route::<rest::HaRemoveNode, _, _>(r, ha_ops::remove);
    let r = route::<rest::HaPromote, _, _>(r, ha_ops::promote);
    let r = r.layer(axum::middleware::from_fn(ha_ops::with_request_id));
    // Who asks (caller): permissions are checked against it.
    let r = r.layer(axum::middleware::from_fn(caller::with_caller));

    // Operations (crate::metrics, crate::status_page): Prometheus metrics and the status page.
    let r = r
        .route("/metrics", get(crate::metrics::serve))
        .route("/", get(crate::status_page::page));

    let raft = crate::raft::network::routes(node.raft.clone());
    r.layer(DefaultBodyLimit::max(API_BODY_LIMIT))
        .with_state(node.clone())
        .merge(raft)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            auth::require_credential,
        ))
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            crate::metrics::track_requests,
        ))
        .layer(axum::middleware::from_fn_with_state(node, request_timeout))
}
