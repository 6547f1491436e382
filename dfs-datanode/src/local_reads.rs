//! Short-circuit local reads (`dfs_proto::local_read`): a Unix socket on which a client on this
//! machine asks for one replica, with the namenode's read token, and gets the replica's length
//! and checksums with its open data file (and its sidecar, for the page checksums). The client
//! reads and verifies the file itself; no byte of it crosses gRPC.
//!
//! The token is checked as for a gRPC ReadBlock, and the descriptors are read-only. The socket is
//! open to every local user (`0666`), as a gRPC port is open to every host: the token, not the
//! socket, is what grants a replica. Connections are bounded; one idle for [`IDLE`] is closed.

use crate::Node;
use crate::block_store::{Replica, StoreError};
use dfs_proto::ErrorCode;
use dfs_proto::local_read::{
    LocalReadOutcome, LocalReadReply, LocalReadRequest, MAX_REQUEST, decode, frame, frame_len,
    send_with_fds,
};
use dfs_proto::token::BlockOp;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// A connection that sends no request for this long is closed.
const IDLE: Duration = Duration::from_secs(30);
/// Longest the rest of a request may take once its first byte arrived.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the socket at `path`, replacing a socket left by an earlier run (never another kind of
/// file), and opens it to every local user.
pub(crate) fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Serves local reads until `stop`; removes the socket file at the end.
pub(crate) async fn serve(
    node: Arc<Node>,
    listener: UnixListener,
    path: std::path::PathBuf,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "local read socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let node = Arc::clone(&node);
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = connection(&node, stream) => {}
            }
            drop(permit);
        });
    }
    let _ = std::fs::remove_file(&path);
}

/// Answers requests on one connection until the client closes it, goes quiet or misbehaves.
async fn connection(node: &Arc<Node>, mut stream: UnixStream) {
    loop {
        let mut prefix = [0u8; 4];
        match tokio::time::timeout(IDLE, stream.read_exact(&mut prefix)).await {
            Ok(Ok(_)) => {}
            _ => return, // closed, failed or idle
        }
        let body = match tokio::time::timeout(REQUEST_TIMEOUT, read_body(&mut stream, prefix)).await
        {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "local read socket: bad request frame");
                let reply = refused(node, ErrorCode::Invalid, e.to_string());
                node.metrics.local_reads.count(false);
                let _ = send_reply(&mut stream, &reply, &[]).await;
                return;
            }
            Err(_) => return,
        };
        let (reply, files) = answer(node, &body).await;
        node.metrics.local_reads.count(!files.is_empty());
        if send_reply(&mut stream, &reply, &files).await.is_err() {
            return;
        }
    }
}

async fn read_body(stream: &mut UnixStream, prefix: [u8; 4]) -> io::Result<Vec<u8>> {
    let len = frame_len(prefix, MAX_REQUEST)?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

fn refused(node: &Node, code: ErrorCode, message: String) -> LocalReadReply {
    LocalReadReply {
        datanode: node.store.datanode_id().clone(),
        outcome: LocalReadOutcome::Refused { code, message },
    }
}

/// The reply to one request, and the replica's files when it is granted: data, then the
/// sidecar when it holds page checksums.
async fn answer(node: &Arc<Node>, body: &[u8]) -> (LocalReadReply, Vec<File>) {
    let request: LocalReadRequest = match decode(body) {
        Ok(r) => r,
        Err(e) => return (refused(node, ErrorCode::Invalid, e.to_string()), Vec::new()),
    };
    if let Err(r) = node.tokens.verify(
        &request.token,
        request.block,
        request.generation,
        BlockOp::Read,
    ) {
        return (refused(node, ErrorCode::Access, r.message), Vec::new());
    }
    let replica = Replica {
        id: request.block,
        generation: request.generation,
    };
    let store = Arc::clone(&node.store);
    let opened =
        tokio::task::spawn_blocking(move || store.open_reader(replica).map(|r| r.into_files()))
            .await;
    match opened {
        Ok(Ok(replica)) => {
            let (meta, pages_at) = replica.pages.unzip();
            let reply = LocalReadReply {
                datanode: node.store.datanode_id().clone(),
                outcome: LocalReadOutcome::Replica {
                    length: replica.length,
                    crcs: replica.crcs,
                    pages_at,
                },
            };
            (reply, std::iter::once(replica.data).chain(meta).collect())
        }
        Ok(Err(e)) => {
            let code = match &e {
                StoreError::NotFound(_) => ErrorCode::NotFound,
                StoreError::Corrupt { .. } => {
                    tracing::error!(error = %e, "damaged replica");
                    ErrorCode::Io
                }
                _ => {
                    tracing::error!(error = %e, "block store failure");
                    ErrorCode::Io
                }
            };
            (refused(node, code, e.to_string()), Vec::new())
        }
        Err(e) => (refused(node, ErrorCode::Io, e.to_string()), Vec::new()),
    }
}

/// Sends `reply`, with the descriptors of `files` on its first bytes.
async fn send_reply(
    stream: &mut UnixStream,
    reply: &LocalReadReply,
    files: &[File],
) -> io::Result<()> {
    let bytes = frame(reply);
    let fds: Vec<_> = files.iter().map(|f| f.as_fd()).collect();
    let sent = loop {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, || {
            send_with_fds(stream.as_raw_fd(), &bytes, &fds)
        }) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    stream.write_all(&bytes[sent..]).await
}
