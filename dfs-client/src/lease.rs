//! Keeps write leases alive: while any `FileWriter` of this client is open, one task renews
//! every lease the client holds each `lease_ms / 3` (from the cluster info).

use crate::client::Client;
use crate::error::Result;
use dfs_proto::rest::{RenewLease, RenewLeaseRequest};
use std::sync::Mutex;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Shortest renewal interval, whatever the cluster says (guards against `lease_ms` = 0).
const MIN_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Default)]
pub(crate) struct LeaseRenewer {
    /// Writers open and the renewal task; the task runs exactly while `writers > 0`.
    state: Mutex<RenewState>,
}

#[derive(Default)]
struct RenewState {
    writers: usize,
    task: Option<JoinHandle<()>>,
}

/// Held by each open writer; the last one dropped stops the renewal task.
pub(crate) struct LeaseGuard {
    client: Client,
}

impl Client {
    /// Registers an open writer, starting the renewal task if it is the first.
    pub(crate) async fn hold_leases(&self) -> Result<LeaseGuard> {
        let info = self.cluster_info().await?;
        let interval = Duration::from_millis(info.lease_ms / 3).max(MIN_INTERVAL);
        let mut state = self
            .inner
            .leases
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        state.writers += 1;
        if state.task.is_none() {
            debug!(?interval, "starting lease renewal");
            state.task = Some(tokio::spawn(renew_loop(self.clone(), interval)));
        }
        Ok(LeaseGuard {
            client: self.clone(),
        })
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let mut state = self
            .client
            .inner
            .leases
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        state.writers = state.writers.saturating_sub(1);
        if state.writers == 0
            && let Some(task) = state.task.take()
        {
            debug!("stopping lease renewal");
            task.abort();
        }
    }
}

async fn renew_loop(client: Client, interval: Duration) {
    let mut next = Instant::now() + interval;
    loop {
        tokio::time::sleep_until(next).await;
        next += interval;
        let req = RenewLeaseRequest {
            client: client.client_id().clone(),
        };
        match client.call::<RenewLease>(&req).await {
            Ok(_) => debug!(client = %req.client, "renewed leases"),
            Err(error) => warn!(client = %req.client, %error, "lease renewal failed"),
        }
    }
}
