//! gRPC channels to datanodes: one lazily connected `Channel` per address, shared by every
//! transfer (tonic multiplexes streams over it and reconnects on its own).

use crate::error::{Error, Result};
use dashmap::DashMap;
use dfs_proto::grpc::data_transfer_client::DataTransferClient;
use dfs_proto::{MAX_GRPC_MESSAGE, flow};
use std::time::Duration;
use tonic::transport::Channel;

/// How long to wait for a TCP connection to a datanode before trying another.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Default)]
pub(crate) struct DatanodePool {
    channels: DashMap<String, Channel>,
    /// With TLS: the CA datanodes' certificates must chain to.
    tls: Option<dfs_tls::ClientTls>,
}

impl DatanodePool {
    pub(crate) fn new(tls: Option<dfs_tls::ClientTls>) -> DatanodePool {
        DatanodePool {
            channels: DashMap::new(),
            tls,
        }
    }

    /// A client for the datanode at `addr` (host:port), with message limits raised for 1 MiB
    /// chunks.
    pub(crate) fn client(&self, addr: &str) -> Result<DataTransferClient<Channel>> {
        let channel = match self.channels.get(addr) {
            Some(ch) => ch.clone(),
            None => {
                let endpoint = dfs_tls::grpc_endpoint(addr, self.tls.as_ref())
                    .map_err(|source| Error::DatanodeAddr {
                        addr: addr.to_string(),
                        source,
                    })?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .max_frame_size(flow::MAX_FRAME)
                    .initial_stream_window_size(flow::STREAM_WINDOW)
                    .initial_connection_window_size(flow::CONNECTION_WINDOW);
                self.channels
                    .entry(addr.to_string())
                    .or_insert_with(|| endpoint.connect_lazy())
                    .clone()
            }
        };
        Ok(DataTransferClient::new(channel)
            .max_decoding_message_size(MAX_GRPC_MESSAGE)
            .max_encoding_message_size(MAX_GRPC_MESSAGE))
    }
}
