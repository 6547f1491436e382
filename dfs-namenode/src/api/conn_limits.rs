//! Limits on the REST server's connections, so that a slow or silent peer cannot hold the
//! namenode's resources: [`LimitedListener`] wraps the listener `axum::serve` runs on, admits at
//! most `max_connections` at once (further peers wait in the kernel's backlog), and closes a
//! connection on which nothing was read or written for `idle_timeout` ([`IdleIo`]: a peer that
//! connects and says nothing, stops mid-request, or stops reading the answer).
//!
//! The idle clock runs only while hyper waits on the connection; a handler that is still working
//! is bounded by the request timeout ([`super::request_timeout`]), which is shorter.

use dfs_proto::idle::IdleIo;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A listener that bounds open connections and closes idle ones.
pub struct LimitedListener<L> {
    inner: L,
    idle_timeout: Duration,
    slots: Arc<Semaphore>,
}

impl<L> LimitedListener<L> {
    pub fn new(inner: L, max_connections: usize, idle_timeout: Duration) -> LimitedListener<L> {
        LimitedListener {
            inner,
            idle_timeout,
            slots: Arc::new(Semaphore::new(max_connections)),
        }
    }
}

impl<L> axum::serve::Listener for LimitedListener<L>
where
    L: axum::serve::Listener,
    L::Io: Unpin,
{
    type Io = IdleIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so acquiring only waits.
        let permit = match Arc::clone(&self.slots).acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => std::future::pending().await,
        };
        let (io, addr) = self.inner.accept().await;
        (IdleIo::new(io, self.idle_timeout, Some(permit)), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_silent_connection_is_closed_and_frees_its_slot() {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let mut listener = LimitedListener::new(tcp, 1, Duration::from_millis(200));
        let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut io, _) = listener.accept().await;
        let mut buf = [0u8; 8];
        let err = io.read(&mut buf).await.expect_err("idle");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(io);
        // The slot is free again: a second peer is accepted and talks.
        let mut talker = tokio::net::TcpStream::connect(addr).await.expect("connect");
        talker.write_all(b"hi").await.expect("write");
        let (mut io, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
            .await
            .expect("second connection accepted");
        assert_eq!(io.read(&mut buf).await.expect("read"), 2);
        assert_eq!(silent.read(&mut buf).await.expect("closed"), 0);
    }
}
