//! The listener and connections: accepts on loopback, resets connections while
//! "restarting", drops every connection abruptly on a restart, and runs each request
//! through fault injection, the handlers and the request log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::{Mutex, RwLock};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::faults::{Faults, RequestRecord};
use super::handlers;
use super::http::{self, Body, Query, Route};
use super::resources::Registry;
use super::reviews::Reviews;
use super::status::ApiError;
use super::store::Store;

/// State shared by the handle, the listener and every connection.
pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) registry: RwLock<Registry>,
    /// How often open watches with `allowWatchBookmarks` get a BOOKMARK.
    pub(crate) bookmark_interval: Duration,
    /// Bumped on every restart; each connection drops itself when it changes.
    pub(crate) restarts: watch::Sender<u64>,
    /// Woken on every request served, for tests waiting on the request log.
    pub(crate) changed: Notify,
    /// Tokens and grants for TokenReview and SubjectAccessReview.
    pub(crate) reviews: Mutex<Reviews>,
}

impl Shared {
    /// Fresh state.
    pub(crate) fn new(history_limit: usize, bookmark_interval: Duration) -> Shared {
        Shared {
            store: Mutex::new(Store::new(history_limit)),
            faults: Mutex::new(Faults::default()),
            registry: RwLock::new(Registry::builtin()),
            bookmark_interval,
            restarts: watch::channel(0).0,
            changed: Notify::new(),
            reviews: Mutex::new(Reviews::default()),
        }
    }
}

/// Binds 127.0.0.1:0 and serves until the returned task is aborted.
pub(crate) async fn spawn(shared: Arc<Shared>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the fake API server to loopback");
    let addr = listener.local_addr().expect("the listener's address");
    (addr, tokio::spawn(accept_loop(listener, shared)))
}

/// Accepts connections forever; inside a restart window, resets them at once.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if shared.faults.lock().is_down() {
            // SO_LINGER 0 turns the close into a RST, like a port nobody listens on.
            let _ = stream.set_zero_linger();
            drop(stream);
            continue;
        }
        tokio::spawn(serve_connection(stream, shared.clone()));
    }
}

/// Serves one connection (HTTP/1.1 or h2c) until it ends or the server restarts.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let mut restarts = shared.restarts.subscribe();
    let service_shared = shared.clone();
    let service = hyper::service::service_fn(move |req| {
        let shared = service_shared.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        // Dropping the connection mid-stream is the abrupt close of a dying server.
        _ = restarts.changed() => {}
    }
}

/// Runs one request: route, fault injection, handler, request log.
async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => bytes::Bytes::new(),
    };
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = Query::parse(&raw_query);
    let route = http::route(&shared.registry.read(), parts.uri.path());
    let verb = http::verb_of(&parts.method, &route, &query);
    let resource = match &route {
        Route::Resource(rp) => Some(rp.clone()),
        _ => None,
    };
    let mut record = RequestRecord {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: raw_query,
        verb,
        gvr: resource.as_ref().map(|rp| rp.rt.gvr.clone()),
        namespace: resource.as_ref().and_then(|rp| rp.namespace.clone()),
        subresource: resource.and_then(|rp| rp.subresource),
        status: 0,
    };
    let req = handlers::Req {
        method: &parts.method,
        route,
        verb,
        query: &query,
        content_type: content_type(&parts.headers),
        body: &body,
    };
    let review = (parts.method == hyper::Method::POST)
        .then(|| shared.reviews.lock().answer(parts.uri.path(), &body))
        .flatten();
    let response = match review {
        Some((code, value)) => http::json_response(code, &value),
        None => respond(shared, &record, req),
    };
    record.status = response.status().as_u16();
    shared.faults.lock().log.push(record);
    shared.changed.notify_waiters();
    response
}

/// The injected failure for this request if there is one, else the handler's answer.
fn respond(shared: &Arc<Shared>, record: &RequestRecord, req: handlers::Req<'_>) -> Response<Body> {
    let gvr = record.gvr.as_ref();
    let injected = shared.faults.lock().injected(&record.path, gvr);
    match injected {
        Some(code) => {
            let word = http::verb_word(record.verb);
            let err = ApiError::injected(code, gvr, word, record.namespace.as_deref());
            http::error_response(&err)
        }
        None => handlers::serve(shared, req),
    }
}

/// The request's `Content-Type`, JSON if unset.
fn content_type(headers: &hyper::HeaderMap) -> &str {
    headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
}
