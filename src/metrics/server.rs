//! The HTTP server on `--metrics-port`: `GET /metrics` (plain HTTP, as controller-runtime
//! serves it), optionally behind [`MetricsAuth`]. Every other path is 404.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use epp_core::telemetry::metrics::{CONTENT_TYPE, EppMetrics};
use epp_net::listener::Acceptor;

use crate::metrics::MetricsAuth;

const METRICS_PATH: &str = "/metrics";

/// Serves `metrics` on `listener` until `shutdown` completes. With `auth`, each scrape
/// needs a bearer token allowed to `get` the path (v1.0.1's default in a cluster).
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<EppMetrics>,
    auth: Option<Arc<MetricsAuth>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut acceptor = Acceptor::new(listener, "metrics-port");
    loop {
        let (stream, _) = tokio::select! {
            accepted = acceptor.accept() => accepted,
            () = &mut shutdown => return,
        };
        let (metrics, auth) = (Arc::clone(&metrics), auth.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (metrics, auth) = (Arc::clone(&metrics), auth.clone());
                async move { Ok::<_, Infallible>(answer(&metrics, auth.as_deref(), request).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    metrics: &EppMetrics,
    auth: Option<&MetricsAuth>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if request.uri().path() != METRICS_PATH {
        return text(StatusCode::NOT_FOUND, "404 page not found\n".into());
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
    }
    if let Some(auth) = auth {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let checked = auth
            .check(
                authorization,
                request.method().as_str(),
                request.uri().path(),
            )
            .await;
        if let Err(refused) = checked {
            let status =
                StatusCode::from_u16(refused.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return text(status, format!("{refused}\n"));
        }
    }
    let mut response = Response::new(Full::new(Bytes::from(metrics.render())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
