//! Calls to the namenodes' REST API: typed requests, `ApiError` bodies, and finding the leader.
//!
//! Any namenode answers; a follower answers `NOT_LEADER` with the leader's address when it knows
//! it. A call follows that hint, tries the other namenodes when one cannot be reached or has no
//! leader yet (`UNAVAILABLE`), backs off after each full round, and gives up after the failover
//! timeout. The namenode that last answered is remembered and asked first next time.
//!
//! Every call carries the caller's identity (`crate::identity`). Every `POST` carries a request
//! id (`x-dfs-request-id`, the same on each retry of one call). The namenodes apply a request
//! id at most once and answer a retry with the first reply, so a `POST` whose connection broke
//! in flight (the leader died after or before applying it) is simply sent again: a retried
//! create answers the file it made, not `EEXIST`.

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use dfs_proto::rest::{Endpoint, Method};
use dfs_proto::{ApiError, ClusterSecret, ErrorCode};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tracing::debug;

/// First pause after a round of namenodes that all failed; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(25);
const MAX_BACKOFF: Duration = Duration::from_millis(200);
/// The header naming a request for exactly-once application (as the namenode reads it).
const REQUEST_ID_HEADER: &str = "x-dfs-request-id";
/// How long to wait for a TCP connection to a namenode.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The namenodes of one cluster and the HTTP client shared by every call.
pub(crate) struct Namenodes {
    http: reqwest::Client,
    /// With TLS: the CA namenodes' certificates must chain to (calls use `https://`).
    tls: Option<dfs_tls::ClientTls>,
    addrs: Vec<String>,
    failover_timeout: Duration,
    /// The namenode to ask first: the last one that answered (or the leader it named).
    leader: Mutex<String>,
    /// Prefix of this client's request ids (its client id, unique per process).
    request_prefix: String,
    next_request: AtomicU64,
    /// Who calls are made for unless [`crate::as_caller`] says otherwise: this process.
    identity: dfs_proto::Identity,
}

impl Namenodes {
    pub(crate) fn new(config: &ClientConfig, tls: Option<dfs_tls::ClientTls>) -> Result<Namenodes> {
        let first = config
            .namenodes
            .first()
            .cloned()
            .ok_or_else(|| Error::Config("no namenode addresses configured".to_string()))?;
        let http = dfs_tls::http_client(tls.as_ref())
            .default_headers(credential_headers(config)?)
            .connect_timeout(CONNECT_TIMEOUT.min(config.request_timeout))
            .timeout(config.request_timeout)
            .build()
            .map_err(|source| Error::Transport {
                addr: first.clone(),
                source,
            })?;
        Ok(Namenodes {
            http,
            tls,
            addrs: config.namenodes.clone(),
            failover_timeout: config.failover_timeout,
            leader: Mutex::new(first),
            request_prefix: config.client_id.0.clone(),
            next_request: AtomicU64::new(1),
            identity: crate::identity::process_identity(),
        })
    }

    /// The TLS setting calls to namenodes use.
    pub(crate) fn tls(&self) -> Option<&dfs_tls::ClientTls> {
        self.tls.as_ref()
    }

    /// The namenode calls go to first.
    pub(crate) fn current_leader(&self) -> String {
        self.leader
            .lock()
            .map(|l| l.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn set_leader(&self, addr: &str) {
        let mut leader = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        if *leader != addr {
            debug!(namenode = addr, "following new namenode leader");
            *leader = addr.to_string();
        }
    }

    /// The configured namenode after `addr` (wrapping), or the first if `addr` is not one.
    fn after(&self, addr: &str) -> String {
        let next = match self.addrs.iter().position(|a| a == addr) {
            Some(i) => (i + 1) % self.addrs.len(),
            None => 0,
        };
        self.addrs[next].clone()
    }

    /// Sends `req` to the leader, following hints and failing over as described above.
    pub(crate) async fn call<E: Endpoint>(&self, req: &E::Request) -> Result<E::Response> {
        let deadline = Instant::now() + self.failover_timeout;
        let request_id = match E::METHOD {
            Method::Get => None,
            Method::Post => Some(format!(
                "{}-{}",
                self.request_prefix,
                self.next_request.fetch_add(1, Ordering::Relaxed)
            )),
        };
        let mut target = self.current_leader();
        let mut backoff = FIRST_BACKOFF;
        let mut tries_this_round = 0;
        loop {
            let err = match self
                .call_once::<E>(&target, req, request_id.as_deref())
                .await
            {
                Ok(resp) => {
                    self.set_leader(&target);
                    return Ok(resp);
                }
                Err(err) => err,
            };
            let next = match &err {
                Error::Api(ApiError {
                    code: ErrorCode::NotLeader,
                    leader: Some(hint),
                    ..
                }) if *hint != target => hint.clone(),
                Error::Api(ApiError {
                    code: ErrorCode::NotLeader | ErrorCode::Unavailable,
                    ..
                }) => self.after(&target),
                Error::Transport { source, .. } if worth_retrying(source) => self.after(&target),
                Error::Http {
                    status: 502..=504, ..
                } => self.after(&target),
                _ => return Err(err),
            };
            debug!(namenode = %target, next = %next, path = E::PATH, error = %err, "retrying at another namenode");
            tries_this_round += 1;
            if tries_this_round >= self.addrs.len() {
                tries_this_round = 0;
                if Instant::now() + backoff >= deadline {
                    return Err(Error::NoLeader {
                        timeout: self.failover_timeout,
                        last: err.to_string(),
                    });
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            if Instant::now() >= deadline {
                return Err(Error::NoLeader {
                    timeout: self.failover_timeout,
                    last: err.to_string(),
                });
            }
            target = next;
        }
    }

    /// One request to one namenode.
    pub(crate) async fn call_once<E: Endpoint>(
        &self,
        addr: &str,
        req: &E::Request,
        request_id: Option<&str>,
    ) -> Result<E::Response> {
        let url = format!("{}://{addr}{}", dfs_tls::scheme(self.tls()), E::PATH);
        let mut builder = match E::METHOD {
            Method::Get => self.http.get(url).query(req),
            Method::Post => self.http.post(url).json(req),
        };
        if let Some(id) = request_id {
            builder = builder.header(REQUEST_ID_HEADER, id);
        }
        let who = crate::identity::scoped();
        for (name, value) in who.as_ref().unwrap_or(&self.identity).header_values() {
            builder = builder.header(name, value);
        }
        let transport = |source| Error::Transport {
            addr: addr.to_string(),
            source,
        };
        let resp = builder.send().await.map_err(transport)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| Error::Http {
                addr: addr.to_string(),
                status: status.as_u16(),
                body: format!("unreadable {} response: {e}", E::PATH),
            });
        }
        match serde_json::from_slice::<ApiError>(&body) {
            Ok(api) => Err(Error::Api(api)),
            Err(_) => Err(Error::Http {
                addr: addr.to_string(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).chars().take(200).collect(),
            }),
        }
    }
}

/// The cluster credential every call carries (none without a secret file), read from
/// [`ClientConfig::secret_file`].
fn credential_headers(config: &ClientConfig) -> Result<reqwest::header::HeaderMap> {
    let mut headers = reqwest::header::HeaderMap::new();
    let Some(path) = &config.secret_file else {
        return Ok(headers);
    };
    let secret = ClusterSecret::load(path).map_err(|e| Error::Config(e.to_string()))?;
    let mut value = reqwest::header::HeaderValue::try_from(secret.authorization())
        .map_err(|e| Error::Config(format!("cluster credential: {e}")))?;
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(headers)
}

/// Whether a failed request may be sent to another namenode: any failure of the connection or
/// of the exchange (a GET changes nothing; a POST carries its request id, so the namenodes apply
/// it at most once), but not a request this client could not even build.
fn worth_retrying(err: &reqwest::Error) -> bool {
    !err.is_builder()
}
