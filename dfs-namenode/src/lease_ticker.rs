//! The leader's lease expiry worker: once a second, if some write lease has expired, propose
//! `ExpireLeases` so the log (and every namenode) ends it at the same point.

use crate::namespace::Command;
use crate::node::{Node, now};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

const TICK: Duration = Duration::from_secs(1);

/// Runs until `shutdown` is cancelled.
pub async fn run(node: Arc<Node>, shutdown: CancellationToken) {
    let mut next = Instant::now() + TICK;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sleep_until(next) => {}
        }
        next += TICK;
        if !node.is_leader() {
            continue;
        }
        let t = now();
        if !node.state.read(|ns| ns.has_expired_leases(t)) {
            continue;
        }
        match node.propose(Command::ExpireLeases).await {
            Ok(_) => tracing::info!("expired write leases"),
            Err(e) => tracing::warn!(error = %e, "could not expire leases"),
        }
    }
}
