//! gRPC channels to an ext_proc server, plaintext or TLS without certificate checks, each
//! one HTTP/2 connection that many streams share (as Envoy multiplexes its ext_proc calls).

use std::time::Duration;

use anyhow::Context as _;
use tonic::transport::{Channel, Endpoint};

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
            let dial =
                epp_net::tls::client::InsecureTlsDial::new(target).context("TLS client config")?;
            endpoint.connect_with_connector(dial).await
        }
    };
    connected.with_context(|| format!("cannot connect to {target}"))
}
