//! Talking to namenodes over REST: the one generic POST helper, and the incremental block
//! reports ("received", "deleted") waiting to be sent to each namenode.
//!
//! Changes are kept per namenode, one entry per replica with the latest change winning, so a
//! namenode that is down costs at most one entry per replica, and a batch goes out as soon as
//! its namenode loop gets to it.

use crate::block_store::Replica;
use dfs_proto::DatanodeId;
use dfs_proto::rest::{BlockInfo, Endpoint, IncrementalBlockReportRequest, Method, ReplicaRef};
use dfs_proto::{ApiError, ClusterSecret};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a namenode call failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("namenode {namenode} unreachable: {}", chain(source))]
    Transport {
        namenode: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("namenode {namenode} answered {status}: {error}")]
    Api {
        namenode: String,
        status: u16,
        error: ApiError,
    },
    #[error("namenode {namenode} answered {status} with an unreadable body")]
    Unreadable { namenode: String, status: u16 },
}

/// An error with its causes, `outer: inner: root` (reqwest's own message omits them).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The shared HTTP client for every namenode.
#[derive(Clone)]
pub struct NamenodeClient {
    http: reqwest::Client,
    /// `http` or `https`.
    scheme: &'static str,
}

impl NamenodeClient {
    /// With `secret`, every call carries the cluster credential namenodes require; with `tls`,
    /// calls use HTTPS and accept only namenodes whose certificate that CA signed.
    pub fn new(
        secret: Option<&ClusterSecret>,
        tls: Option<&dfs_tls::ClientTls>,
    ) -> anyhow::Result<NamenodeClient> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(secret) = secret {
            let mut value = reqwest::header::HeaderValue::try_from(secret.authorization())?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = dfs_tls::http_client(tls)
            .default_headers(headers)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(NamenodeClient {
            http,
            scheme: dfs_tls::scheme(tls),
        })
    }

    /// POSTs `request` as JSON to `E::PATH` on `namenode` (host:port).
    pub async fn post<E: Endpoint>(
        &self,
        namenode: &str,
        request: &E::Request,
    ) -> Result<E::Response, RestError> {
        debug_assert_eq!(
            E::METHOD,
            Method::Post,
            "{} is not a POST endpoint",
            E::PATH
        );
        let transport = |source| RestError::Transport {
            namenode: namenode.to_string(),
            source,
        };
        let response = self
            .http
            .post(format!("{}://{namenode}{}", self.scheme, E::PATH))
            .json(request)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            return response.json::<E::Response>().await.map_err(transport);
        }
        let unreadable = || RestError::Unreadable {
            namenode: namenode.to_string(),
            status: status.as_u16(),
        };
        let body = response.bytes().await.map_err(|_| unreadable())?;
        let error = serde_json::from_slice::<ApiError>(&body).map_err(|_| unreadable())?;
        Err(RestError::Api {
            namenode: namenode.to_string(),
            status: status.as_u16(),
            error,
        })
    }
}

/// The latest change to one replica not yet reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Received { len: u64 },
    Deleted,
}

/// Changes waiting for one namenode.
#[derive(Default)]
pub struct PendingReports {
    changes: Mutex<HashMap<Replica, Change>>,
    /// Woken when a change arrives; holds one permit if nobody is waiting.
    pub notify: Notify,
}

impl PendingReports {
    fn changes(&self) -> MutexGuard<'_, HashMap<Replica, Change>> {
        self.changes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, replica: Replica, change: Change) {
        self.changes().insert(replica, change);
        self.notify.notify_one();
    }

    /// Takes every pending change as one request, or `None` if there is none.
    pub fn take(&self, id: &DatanodeId) -> Option<IncrementalBlockReportRequest> {
        let changes = std::mem::take(&mut *self.changes());
        if changes.is_empty() {
            return None;
        }
        let mut request = IncrementalBlockReportRequest {
            id: id.clone(),
            received: Vec::new(),
            deleted: Vec::new(),
        };
        for (replica, change) in changes {
            match change {
                Change::Received { len } => request.received.push(replica.info(len)),
                Change::Deleted => request.deleted.push(replica.into()),
            }
        }
        Some(request)
    }

    /// Puts back a batch that could not be sent, under any change made since.
    pub fn restore(&self, request: IncrementalBlockReportRequest) {
        let mut changes = self.changes();
        let received = request.received.into_iter().map(|b| {
            let r = Replica {
                id: b.id,
                generation: b.generation,
            };
            (r, Change::Received { len: b.len })
        });
        let deleted = request
            .deleted
            .into_iter()
            .map(|r: ReplicaRef| (Replica::from(r), Change::Deleted));
        for (replica, change) in received.chain(deleted) {
            changes.entry(replica).or_insert(change);
        }
    }

    /// Drops every pending change (a full report is about to describe them all).
    pub fn clear(&self) {
        self.changes().clear();
    }
}

/// The pending changes of every namenode.
pub struct Reports {
    per_namenode: Vec<Arc<PendingReports>>,
}

impl Reports {
    pub fn new(namenodes: usize) -> Reports {
        Reports {
            per_namenode: (0..namenodes).map(|_| Arc::default()).collect(),
        }
    }

    /// The queue of the `i`-th namenode of the configuration.
    pub fn for_namenode(&self, i: usize) -> Option<Arc<PendingReports>> {
        self.per_namenode.get(i).cloned()
    }

    pub fn received(&self, block: BlockInfo) {
        let replica = Replica {
            id: block.id,
            generation: block.generation,
        };
        for pending in &self.per_namenode {
            pending.record(replica, Change::Received { len: block.len });
        }
    }

    pub fn deleted(&self, replica: Replica) {
        for pending in &self.per_namenode {
            pending.record(replica, Change::Deleted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::{BlockId, Generation};

    fn replica(id: u64) -> Replica {
        Replica {
            id: BlockId(id),
            generation: Generation(1),
        }
    }

    #[test]
    fn latest_change_wins_and_failed_batches_come_back() {
        let reports = Reports::new(2);
        let id = DatanodeId("dn".into());
        reports.received(replica(1).info(10));
        reports.deleted(replica(1));
        reports.received(replica(2).info(20));
        let first = reports.for_namenode(0).expect("namenode 0");
        let batch = first.take(&id).expect("a batch");
        assert_eq!(batch.received, vec![replica(2).info(20)]);
        assert_eq!(batch.deleted, vec![replica(1).into()]);
        assert!(first.take(&id).is_none());

        reports.deleted(replica(2));
        first.restore(batch);
        let again = first.take(&id).expect("restored batch");
        assert!(again.received.is_empty(), "the newer delete of 2 wins");
        assert_eq!(again.deleted.len(), 2);

        let second = reports.for_namenode(1).expect("namenode 1");
        assert!(
            second.take(&id).is_some(),
            "each namenode has its own queue"
        );
    }
}
