//! Non-blocking stream of accepted TLS connections for `tonic`'s `serve_with_incoming`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::listener::Acceptor;

/// Longest time a client may take to complete the TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished handshakes waiting for the server to pick them up.
const READY_QUEUE: usize = 64;

/// A server-side TLS connection on the ext_proc port.
///
/// Implements [`Connected`] with [`TcpConnectInfo`], so `tonic::Request::remote_addr()`
/// and `local_addr()` work in handlers.
#[derive(Debug)]
pub struct TlsConnection {
    inner: TlsStream<TcpStream>,
    info: TcpConnectInfo,
}

impl TlsConnection {
    /// Remote (peer) address of the connection.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.info.remote_addr
    }

    /// The underlying rustls stream (e.g. to read the negotiated ALPN protocol).
    pub fn get_ref(&self) -> &TlsStream<TcpStream> {
        &self.inner
    }

    /// Unwraps the underlying rustls stream.
    pub fn into_inner(self) -> TlsStream<TcpStream> {
        self.inner
    }
}

impl Connected for TlsConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A stream of accepted TLS connections for
/// `tonic::transport::Server::serve_with_incoming`, with the default 10 s handshake timeout.
///
/// See [`tls_incoming_with_timeout`].
pub fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = Result<TlsConnection, io::Error>> + Send + 'static {
    tls_incoming_with_timeout(listener, acceptor, DEFAULT_HANDSHAKE_TIMEOUT)
}

/// A stream of accepted TLS connections for
/// `tonic::transport::Server::serve_with_incoming`.
///
/// Every handshake runs in its own task bounded by `handshake_timeout`, so a slow or
/// silent client never delays the others; failed handshakes are logged at debug level
/// and dropped (the stream never yields an error and never ends because of a client).
/// Dropping the stream stops the accept loop and closes the listener. Must be called
/// inside a Tokio runtime.
pub fn tls_incoming_with_timeout(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
) -> impl Stream<Item = Result<TlsConnection, io::Error>> + Send + 'static {
    let (tx, rx) = mpsc::channel(READY_QUEUE);
    tokio::spawn(accept_loop(listener, acceptor, handshake_timeout, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    tx: mpsc::Sender<Result<TlsConnection, io::Error>>,
) {
    // Backs off (and logs once) when descriptors run out, instead of spinning.
    let mut listener = Acceptor::new(listener, "grpc-port");
    loop {
        let (tcp, peer) = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let info = TcpConnectInfo {
            local_addr: tcp.local_addr().ok(),
            remote_addr: Some(peer),
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(inner)) => {
                    // If the server is gone the connection is simply dropped.
                    let _ = tx.send(Ok(TlsConnection { inner, info })).await;
                }
                Ok(Err(error)) => {
                    tracing::debug!(peer = %peer, error = %error, "TLS handshake failed");
                }
                Err(_) => {
                    tracing::debug!(
                        peer = %peer,
                        timeout_ms = handshake_timeout.as_millis() as u64,
                        "TLS handshake timed out"
                    );
                }
            }
        });
    }
}
