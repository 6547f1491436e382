//! [`HttpListener`]: the listener an axum server runs on, plain TCP or TLS.
//!
//! With TLS, a background task accepts TCP connections and runs each handshake in its own task
//! (at most [`MAX_HANDSHAKES`] at once, each cut off after [`HANDSHAKE_TIMEOUT`]), so a client
//! that connects and says nothing holds neither the accept loop nor other clients. Finished
//! handshakes reach [`axum::serve::Listener::accept`] through a bounded channel. The task ends
//! when the listener is dropped.

use crate::{HANDSHAKE_TIMEOUT, ServerTls};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::server::TlsStream;

/// Handshakes in progress at once; further connections wait in the kernel's backlog.
pub const MAX_HANDSHAKES: usize = 128;

/// A listener for `axum::serve`. For `ConnectInfo<SocketAddr>`, wrap it with
/// `axum::serve::ListenerExt::tap_io(|_| {})`: axum implements `Connected` for the address of
/// any tapped listener.
pub enum HttpListener {
    Plain(TcpListener),
    Tls {
        local: SocketAddr,
        accepted: mpsc::Receiver<(Box<TlsStream<TcpStream>>, SocketAddr)>,
    },
}

impl HttpListener {
    /// Plain HTTP on `listener`, or HTTPS with `tls`. Call within a tokio runtime.
    pub fn new(listener: TcpListener, tls: Option<&ServerTls>) -> io::Result<HttpListener> {
        let Some(tls) = tls else {
            return Ok(HttpListener::Plain(listener));
        };
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(MAX_HANDSHAKES);
        tokio::spawn(accept_loop(listener, tls.acceptor(), tx));
        Ok(HttpListener::Tls { local, accepted })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    tx: mpsc::Sender<(Box<TlsStream<TcpStream>>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            _ = tx.closed() => return,
            permit = Arc::clone(&handshakes).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = tx.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((Box::new(stream), peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for HttpListener {
    type Io = HttpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (HttpStream, SocketAddr) {
        match self {
            HttpListener::Plain(listener) => {
                let (tcp, peer) = axum::serve::Listener::accept(listener).await;
                (HttpStream::Plain(tcp), peer)
            }
            HttpListener::Tls { accepted, .. } => match accepted.recv().await {
                Some((stream, peer)) => (HttpStream::Tls(stream), peer),
                // The accept task ends only when this receiver is dropped.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            HttpListener::Plain(listener) => listener.local_addr(),
            HttpListener::Tls { local, .. } => Ok(*local),
        }
    }
}

/// One accepted connection of an [`HttpListener`].
pub enum HttpStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for HttpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HttpStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            HttpStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for HttpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            HttpStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            HttpStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            HttpStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            HttpStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            HttpStream::Plain(s) => s.is_write_vectored(),
            HttpStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HttpStream::Plain(s) => Pin::new(s).poll_flush(cx),
            HttpStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HttpStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            HttpStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
