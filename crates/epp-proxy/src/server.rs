//! The listener: HTTP/1.1 and h2c (prior knowledge) on one port, keep-alive, and a
//! graceful stop that lets open exchanges finish.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::stats::ProxyStats;
use crate::{ProxySettings, Shared, exchange, upstream};
use epp_extproc::EndpointPicker;
use epp_net::listener::Acceptor;

/// A client that waits longer than this to finish sending its request head is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The router-mode server; start it with [`Proxy::serve`].
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    /// Routes with `picker` (the same director as ext_proc's).
    pub fn new(picker: Arc<dyn EndpointPicker>, settings: ProxySettings) -> Self {
        Proxy {
            shared: Arc::new(Shared {
                picker,
                client: upstream::client(&settings),
                settings,
                stats: Arc::new(ProxyStats::default()),
            }),
        }
    }

    /// The proxy's counters (for `/metrics` and tests).
    pub fn stats(&self) -> Arc<ProxyStats> {
        Arc::clone(&self.shared.stats)
    }

    /// Serves until `shutdown` completes, then stops accepting and waits for open exchanges
    /// (idle keep-alive connections are closed). Bound the wait with a timeout.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut acceptor = Acceptor::new(listener, "proxy-port");
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)));
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                accepted = acceptor.accept() => accepted,
                () = &mut shutdown => break,
            };
            let shared = Arc::clone(&self.shared);
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(exchange::handle(shared, request).await) }
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let watched = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = watched.await {
                    tracing::debug!(%error, "router-mode connection ended with an error");
                }
            });
        }
        drop(acceptor);
        graceful.shutdown().await;
    }
}
