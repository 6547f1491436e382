//! The caller's identity on every API request: read once from the identity headers
//! (`dfs_proto::identity`) by [`with_caller`] and kept in the [`CALLER`] task-local, where
//! reads find it ([`current`]) and proposals pick it up (so every namenode checks permissions
//! against the same identity when it applies the change).
//!
//! A request without identity headers is treated as root: it comes from a tool that holds the
//! cluster credential and asserts no user (see `docs/SEMANTICS.md`). Malformed headers are
//! `EINVAL`.

use super::error::HttpError;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dfs_proto::identity::{GID_HEADER, GROUPS_HEADER, UID_HEADER};
use dfs_proto::{ApiError, ErrorCode, Identity};

tokio::task_local! {
    /// Who the request being handled comes from.
    static CALLER: Identity;
}

/// The caller of the request being handled; root outside any request (the namenode's own
/// housekeeping, such as lease expiry).
pub fn current() -> Identity {
    CALLER
        .try_with(Clone::clone)
        .unwrap_or_else(|_| Identity::root())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::new(ErrorCode::Invalid, format!("{name} is not visible ASCII"))
            })
        })
        .transpose()
}

fn identity(headers: &HeaderMap) -> Result<Identity, ApiError> {
    let who = Identity::from_header_values(
        header(headers, UID_HEADER)?,
        header(headers, GID_HEADER)?,
        header(headers, GROUPS_HEADER)?,
    )?;
    Ok(who.unwrap_or_else(Identity::root))
}

/// Middleware: runs the request with its caller in [`CALLER`].
pub async fn with_caller(req: Request, next: Next) -> Response {
    match identity(req.headers()) {
        Ok(who) => CALLER.scope(who, next.run(req)).await,
        Err(e) => HttpError(e).into_response(),
    }
}
