//! Cluster authentication on the namenode: the REST credential every request must carry, and
//! the block access tokens handed out with block locations, allocations and replication
//! commands.
//!
//! With a cluster secret, every request but the public ones ([`is_public`]: `GET /metrics` and
//! the read-only status page `GET /`) must carry `Authorization: Bearer <credential>`
//! ([`dfs_proto::ClusterSecret::authorization`]); otherwise it is answered 401
//! `PERMISSION_DENIED` before any handler runs, and logged with the peer's address. Without a
//! secret (dev mode) everything is let through and no tokens are issued.

use super::AppState;
use super::error::HttpError;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dfs_proto::rest::{DatanodeCommand, LocatedBlock};
use dfs_proto::token::{BlockOp, BlockTokenKey};
use dfs_proto::{ApiError, ClusterSecret, ErrorCode};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// What the namenode checks and signs with.
#[derive(Debug, Clone)]
pub struct Security {
    /// `None`: dev mode, no credential required and no tokens issued.
    secret: Option<ClusterSecret>,
    token_key: Option<BlockTokenKey>,
    /// How long a block access token is valid.
    token_lifetime: Duration,
}

impl Security {
    pub fn new(secret: Option<ClusterSecret>, token_lifetime: Duration) -> Security {
        Security {
            token_key: secret.as_ref().map(ClusterSecret::block_token_key),
            secret,
            token_lifetime,
        }
    }

    /// The secret, for the Raft client's credential.
    pub fn secret(&self) -> Option<&ClusterSecret> {
        self.secret.as_ref()
    }

    fn sign(&self, located: &LocatedBlock, ops: &[BlockOp]) -> Option<String> {
        let key = self.token_key.as_ref()?;
        let expires = SystemTime::now() + self.token_lifetime;
        Some(key.sign(located.block.id, located.block.generation, ops, expires))
    }

    /// Adds a read token to block locations.
    pub fn grant_read(&self, mut located: LocatedBlock) -> LocatedBlock {
        located.token = self.sign(&located, &[BlockOp::Read]);
        located
    }

    /// Adds a read-and-write token to an allocated block (the writer may read back what it
    /// wrote before committing it).
    pub fn grant_write(&self, mut located: LocatedBlock) -> LocatedBlock {
        located.token = self.sign(&located, &[BlockOp::Read, BlockOp::Write]);
        located
    }

    /// Adds a write token to a replication command (the targets check it).
    pub fn grant_command(&self, command: DatanodeCommand) -> DatanodeCommand {
        match command {
            DatanodeCommand::Replicate { block, targets, .. } => {
                let token = self.token_key.as_ref().map(|key| {
                    let expires = SystemTime::now() + self.token_lifetime;
                    key.sign(block.id, block.generation, &[BlockOp::Write], expires)
                });
                DatanodeCommand::Replicate {
                    block,
                    targets,
                    token,
                }
            }
            other => other,
        }
    }
}

/// Requests anyone may make: Prometheus scrapes and the read-only status page.
fn is_public(method: &Method, path: &str) -> bool {
    *method == Method::GET && matches!(path, "/metrics" | "/")
}

/// Middleware: refuses a request without the cluster credential.
pub async fn require_credential(
    State(node): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(secret) = node.security.secret() else {
        return next.run(request).await;
    };
    if is_public(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request.headers().get(header::AUTHORIZATION);
    if presented.is_some_and(|v| secret.check_authorization(v.as_bytes())) {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let why = if presented.is_some() {
        "a wrong cluster credential"
    } else {
        "no cluster credential"
    };
    tracing::warn!(%peer, method = %request.method(), path = request.uri().path(), "refused a request with {why}");
    HttpError(ApiError::new(
        ErrorCode::PermissionDenied,
        format!("{why}: this namenode requires the cluster secret's credential"),
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_metrics_and_the_status_page_are_public() {
        assert!(is_public(&Method::GET, "/metrics"));
        assert!(is_public(&Method::GET, "/"));
        assert!(!is_public(&Method::POST, "/"));
        assert!(!is_public(&Method::GET, "/v1/cluster"));
        assert!(!is_public(&Method::POST, "/raft/append"));
        assert!(!is_public(&Method::GET, "/metrics/../v1/admin/report"));
    }

    #[test]
    fn tokens_are_issued_only_with_a_secret() {
        let located = LocatedBlock {
            index: 0,
            block: dfs_proto::rest::BlockInfo {
                id: dfs_proto::BlockId(7),
                generation: dfs_proto::Generation(1),
                len: 0,
            },
            locations: Vec::new(),
            token: None,
        };
        let dev = Security::new(None, Duration::from_secs(60));
        assert_eq!(dev.grant_read(located.clone()).token, None);

        let secret = ClusterSecret::from_file_bytes(&[9u8; 32]).expect("secret");
        let key = secret.block_token_key();
        let sec = Security::new(Some(secret), Duration::from_secs(60));
        let token = sec.grant_write(located.clone()).token.expect("a token");
        let now = SystemTime::now();
        let (id, generation) = (located.block.id, located.block.generation);
        assert!(
            key.verify(&token, id, generation, BlockOp::Write, now)
                .is_ok()
        );
        assert!(
            key.verify(&token, id, generation, BlockOp::Read, now)
                .is_ok()
        );
        let read = sec.grant_read(located).token.expect("a token");
        assert!(
            key.verify(&read, id, generation, BlockOp::Write, now)
                .is_err()
        );
    }
}
