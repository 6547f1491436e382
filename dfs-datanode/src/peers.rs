//! gRPC clients to other datanodes (pipeline forwarding and re-replication): one cached
//! [`Channel`] per peer address, cloned for each call, never one connection per call; and the
//! outgoing WriteBlock stream that ends only when told to ([`outbound`]).

use dfs_proto::flow;
use dfs_proto::grpc::WriteBlockRequest;
use dfs_proto::grpc::data_transfer_client::DataTransferClient;
use futures::Stream;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::Status;
use tonic::transport::Channel;

/// How long to wait for a TCP connection to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Cached channels to peer datanodes, keyed by their gRPC address (host:port).
#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<String, Channel>>,
    /// With TLS: the CA peers' certificates must chain to.
    tls: Option<dfs_tls::ClientTls>,
}

impl Peers {
    pub fn new(tls: Option<dfs_tls::ClientTls>) -> Peers {
        Peers {
            channels: Mutex::default(),
            tls,
        }
    }

    /// A client for the datanode at `addr`. The channel connects lazily and reconnects on its
    /// own after a failure, so it is kept even when the peer is down.
    pub fn client(&self, addr: &str) -> Result<DataTransferClient<Channel>, Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel = match channels.get(addr) {
            Some(channel) => channel.clone(),
            None => {
                let endpoint = dfs_tls::grpc_endpoint(addr, self.tls.as_ref())
                    .map_err(|e| {
                        Status::invalid_argument(format!("bad datanode address {addr:?}: {e}"))
                    })?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .max_frame_size(flow::MAX_FRAME)
                    .initial_stream_window_size(flow::STREAM_WINDOW)
                    .initial_connection_window_size(flow::CONNECTION_WINDOW);
                let channel = endpoint.connect_lazy();
                channels.insert(addr.to_string(), channel.clone());
                channel
            }
        };
        Ok(DataTransferClient::new(channel)
            .max_decoding_message_size(dfs_proto::MAX_GRPC_MESSAGE)
            .max_encoding_message_size(dfs_proto::MAX_GRPC_MESSAGE))
    }
}

/// What goes into an [`outbound`] stream.
enum Frame {
    Message(WriteBlockRequest),
    End,
}

/// Feeds an outgoing WriteBlock stream. The stream ends cleanly only through
/// [`OutboundSender::end`]; if the sender is dropped first, the stream never ends, so the only
/// way out is dropping the call, which resets the HTTP/2 stream and the receiver keeps
/// nothing. (Ending the stream would make the receiver commit a truncated block.)
pub struct OutboundSender {
    tx: mpsc::Sender<Frame>,
}

impl OutboundSender {
    /// Queues a message; false if the receiving side has gone (its answer says why).
    pub async fn send(&self, msg: WriteBlockRequest) -> bool {
        self.tx.send(Frame::Message(msg)).await.is_ok()
    }

    /// Like [`OutboundSender::send`], from a blocking thread.
    pub fn blocking_send(&self, msg: WriteBlockRequest) -> bool {
        self.tx.blocking_send(Frame::Message(msg)).is_ok()
    }

    /// Ends the stream: the receiver may now commit what it was sent.
    pub async fn end(self) {
        let _ = self.tx.send(Frame::End).await;
    }

    /// Like [`OutboundSender::end`], from a blocking thread.
    pub fn blocking_end(self) {
        let _ = self.tx.blocking_send(Frame::End);
    }
}

/// A bounded WriteBlock request stream of `depth` messages and its sender.
pub fn outbound(
    depth: usize,
) -> (
    OutboundSender,
    impl Stream<Item = WriteBlockRequest> + Send + 'static,
) {
    let (tx, rx) = mpsc::channel(depth);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Some(Frame::Message(msg)) => Some((msg, rx)),
            Some(Frame::End) => None,
            None => std::future::pending().await,
        }
    });
    (OutboundSender { tx }, stream)
}
