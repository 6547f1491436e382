//! The `Client` handle: one per process, cheap to clone, shared by the CLI, the mount and tests.

use crate::config::ClientConfig;
use crate::datanode::DatanodePool;
use crate::error::Result;
use crate::lease::LeaseRenewer;
use crate::local::LocalReads;
use crate::namenode::Namenodes;
use dfs_proto::ClientId;
use dfs_proto::grpc::data_transfer_client::DataTransferClient;
use dfs_proto::rest::{ClusterInfo, ClusterInfoResponse, Empty, Endpoint};
use std::sync::Arc;
use tokio::sync::OnceCell;
use tonic::transport::Channel;

/// A connection to one dfs cluster. Clones share the HTTP client, the datanode channels, the
/// known leader and the lease renewal task.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) namenodes: Namenodes,
    pub(crate) datanodes: DatanodePool,
    /// Cluster settings (block size, lease period), fetched once on first need.
    pub(crate) cluster: OnceCell<ClusterInfoResponse>,
    pub(crate) leases: LeaseRenewer,
    /// Replicas of datanodes on this machine, read from their files.
    pub(crate) local: LocalReads,
}

impl Client {
    /// Builds a client; nothing is contacted until the first call.
    pub fn new(config: ClientConfig) -> Result<Client> {
        let tls = dfs_tls::ClientTls::load_optional(config.tls_ca.as_deref())
            .map_err(|e| crate::Error::Config(e.to_string()))?;
        let namenodes = Namenodes::new(&config, tls.clone())?;
        Ok(Client {
            inner: Arc::new(Inner {
                local: LocalReads::new(config.local_reads),
                config,
                namenodes,
                datanodes: DatanodePool::new(tls),
                cluster: OnceCell::new(),
                leases: LeaseRenewer::default(),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// This process's lease-holder identity.
    pub fn client_id(&self) -> &ClientId {
        &self.inner.config.client_id
    }

    /// The namenode that answered last (the leader, once one has answered).
    pub fn current_namenode(&self) -> String {
        self.inner.namenodes.current_leader()
    }

    /// Sends one typed request to the namenode leader (GET as a query string, POST as JSON),
    /// following `NOT_LEADER` hints and failing over until the failover timeout.
    pub async fn call<E: Endpoint>(&self, req: &E::Request) -> Result<E::Response> {
        self.inner.namenodes.call::<E>(req).await
    }

    /// Sends one request to the namenode at `addr` itself: no leader hint is followed and
    /// nothing is retried elsewhere (for asking each namenode about itself, or an operation
    /// meant for one namenode such as `dfs admin ha promote`).
    pub async fn call_at<E: Endpoint>(&self, addr: &str, req: &E::Request) -> Result<E::Response> {
        self.inner.namenodes.call_once::<E>(addr, req, None).await
    }

    /// Cluster settings, fetched from the leader once and cached.
    pub async fn cluster_info(&self) -> Result<ClusterInfoResponse> {
        self.inner
            .cluster
            .get_or_try_init(|| self.call::<ClusterInfo>(&Empty {}))
            .await
            .cloned()
    }

    /// A gRPC client for the datanode at `addr`, over the shared channel.
    pub(crate) fn datanode(&self, addr: &str) -> Result<DataTransferClient<Channel>> {
        self.inner.datanodes.client(addr)
    }
}
