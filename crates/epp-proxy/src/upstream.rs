//! The client to the endpoints: pooled keep-alive HTTP/1.1 connections (model servers speak
//! HTTP/1.1), a connect timeout, and what each failure means for the client.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::ProxySettings;
use crate::stats::UpstreamError;

pub(crate) type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

pub(crate) fn client(settings: &ProxySettings) -> Client {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(settings.connect_timeout));
    // Small SSE frames must not wait for the peer's delayed ACK.
    connector.set_nodelay(true);
    connector.set_keepalive(Some(std::time::Duration::from_secs(60)));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(settings.max_idle_per_endpoint)
        .pool_idle_timeout(settings.idle_timeout)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// What a failed upstream request was.
pub(crate) fn classify(error: &hyper_util::client::legacy::Error) -> UpstreamError {
    if !error.is_connect() {
        return UpstreamError::Reset;
    }
    if source_chain(error).any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || e.to_string().contains("timed out")
    }) {
        UpstreamError::ConnectTimeout
    } else {
        UpstreamError::Connect
    }
}

fn source_chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e| e.source())
}

/// The status and message the client gets for an upstream failure.
pub(crate) fn answer(error: UpstreamError) -> (u16, &'static str) {
    match error {
        UpstreamError::Connect => (
            503,
            "upstream connect error: the endpoint refused the connection",
        ),
        UpstreamError::ConnectTimeout => (
            504,
            "upstream connect timeout: the endpoint did not accept a connection in time",
        ),
        UpstreamError::Reset => (
            502,
            "upstream reset: the endpoint closed the connection before answering",
        ),
    }
}
