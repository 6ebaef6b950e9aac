//! gRPC channels to an ext_proc server, plaintext or TLS without certificate checks, each
//! one HTTP/2 connection that many streams share (as Envoy multiplexes its ext_proc calls).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Envoy's default HTTP/2 stream and connection windows (256 MiB), so the client never
/// throttles the server's replies more than Envoy would.
const ENVOY_WINDOW: u32 = 256 << 20;

/// Whether to speak TLS to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Plaintext,
    /// TLS accepting any certificate (the EPP's default is self-signed).
    InsecureTls,
}

/// Opens `count` connections to `target` (`host:port`).
pub async fn channels(
    target: &str,
    transport: Transport,
    count: usize,
) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(channel(target, transport).await?);
    }
    Ok(out)
}

async fn channel(target: &str, transport: Transport) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{target}"))
        .with_context(|| format!("--target {target:?} is not host:port"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .initial_stream_window_size(Some(ENVOY_WINDOW))
        .initial_connection_window_size(Some(ENVOY_WINDOW));
    let connected = match transport {
        Transport::Plaintext => endpoint.connect().await,
        Transport::InsecureTls => {
            let config = epp::tls::client::insecure_client_config().context("TLS client config")?;
            let dial = TlsDial {
                target: Arc::from(target),
                connector: TlsConnector::from(config),
            };
            endpoint.connect_with_connector(dial).await
        }
    };
    connected.with_context(|| format!("cannot connect to {target}"))
}

/// Dials TCP, then TLS with ALPN h2; the URI tonic passes is ignored.
#[derive(Clone)]
struct TlsDial {
    target: Arc<str>,
    connector: TlsConnector,
}

impl tonic::codegen::Service<Uri> for TlsDial {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let dial = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(dial.target.as_ref()).await?;
            tcp.set_nodelay(true)?;
            let host = dial
                .target
                .rsplit_once(':')
                .map_or(dial.target.as_ref(), |(host, _)| host)
                .trim_matches(['[', ']']);
            let name = ServerName::try_from(host.to_owned()).map_err(std::io::Error::other)?;
            let tls = dial.connector.connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}
