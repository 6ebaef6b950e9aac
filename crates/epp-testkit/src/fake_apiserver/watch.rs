//! WATCH: a chunked stream of newline-delimited JSON events. Initial state (for
//! `resourceVersion` unset/`0` or `sendInitialEvents`), then history replay after the
//! requested resourceVersion, then live events; selector transitions become ADDED or
//! DELETED; periodic BOOKMARKs; `timeoutSeconds` ends the stream; a compacted
//! resourceVersion gets a 410 `ERROR` event (or HTTP 410, per `ExpiryMode`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::faults::ExpiryMode;
use super::handlers::selectors;
use super::http::{self, Body, Query, ResourcePath};
use super::resources::Gvr;
use super::selector::{FieldSelector, LabelSelector};
use super::server::Shared;
use super::status::ApiError;
use super::store::{Registration, StoredEvent, WatchMsg};

/// The server's default watch duration when the client sets no `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// The parsed watch parameters.
struct Params {
    /// Replay from this resourceVersion; None sends the current state first.
    since: Option<u64>,
    /// Send the current state as ADDED events first.
    initial: bool,
    /// `allowWatchBookmarks=true`.
    bookmarks: bool,
    /// Mark the end of the initial events with a bookmark (`sendInitialEvents` + bookmarks).
    initial_end_bookmark: bool,
    timeout: Duration,
}

impl Params {
    fn parse(query: &Query) -> Result<Params, ApiError> {
        let send_initial = query.flag("sendInitialEvents");
        let since =
            match query.get("resourceVersion").unwrap_or("") {
                "" | "0" => None,
                rv => Some(rv.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?),
            };
        let bookmarks = query.flag("allowWatchBookmarks");
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok());
        Ok(Params {
            since: since.filter(|_| !send_initial),
            initial: since.is_none() || send_initial,
            bookmarks,
            initial_end_bookmark: send_initial && bookmarks,
            timeout: timeout.map_or(DEFAULT_TIMEOUT, Duration::from_secs),
        })
    }
}

/// Which objects a watch sees.
struct Filter {
    gvr: Gvr,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn selects(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The watch event a write becomes for this watch, if any.
    fn convert(&self, ev: &StoredEvent) -> Option<(&'static str, Value)> {
        let in_scope =
            ev.gvr == self.gvr && self.namespace.as_ref().is_none_or(|ns| *ns == ev.namespace);
        if !in_scope {
            return None;
        }
        let was = ev.prev.as_ref().is_some_and(|o| self.selects(o));
        let is = ev.cur.as_ref().is_some_and(|o| self.selects(o));
        match (was, is, &ev.cur, &ev.prev) {
            (false, true, Some(cur), _) => Some(("ADDED", cur.clone())),
            (true, true, Some(cur), _) => Some(("MODIFIED", cur.clone())),
            // Deleted, or no longer selected: the last selected state, at the event's rv.
            (true, false, _, Some(prev)) => {
                let mut gone = prev.clone();
                gone["metadata"]["resourceVersion"] = json!(ev.rv.to_string());
                Some(("DELETED", gone))
            }
            _ => None,
        }
    }
}

/// Starts a watch: the streaming response, or the error that refuses it.
pub(crate) fn serve(shared: &Arc<Shared>, rp: &ResourcePath, query: &Query) -> Response<Body> {
    let parsed = selectors(query).and_then(|s| Ok((s, Params::parse(query)?)));
    let ((labels, fields), params) = match parsed {
        Ok(p) => p,
        Err(err) => return http::error_response(&err),
    };
    let gvr = rp.rt.gvr.clone();
    let registered = shared
        .store
        .lock()
        .watch(&gvr, params.since, params.initial);
    let reg = match registered {
        Ok(reg) => reg,
        Err(err) if shared.faults.lock().expiry_mode == ExpiryMode::Http => {
            return http::error_response(&err);
        }
        Err(err) => return streaming(vec![event_line("ERROR", &err.to_status())]).0,
    };
    shared.changed.notify_waiters();
    let filter = Filter {
        gvr,
        namespace: rp.namespace.clone(),
        labels,
        fields,
    };
    let kind = rp.rt.kind.clone();
    let (response, tx) = streaming(Vec::new());
    tokio::spawn(run(shared.clone(), filter, kind, params, reg, tx));
    response
}

/// A streaming 200 response that first sends `lines`; its sender feeds more.
fn streaming(lines: Vec<Bytes>) -> (Response<Body>, mpsc::Sender<Bytes>) {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    for line in lines {
        tx.try_send(line).expect("room in a fresh channel");
    }
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok(Frame::data(chunk)), rx))
    });
    let response = Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed_unsync())
        .expect("a response from valid parts");
    (response, tx)
}

/// One `{"type":..,"object":..}` line.
fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object}))
        .expect("serializing a watch event");
    line.push(b'\n');
    Bytes::from(line)
}

/// Forgets the watch in the store when its task ends, however it ends.
struct Unregister {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        self.shared.store.lock().unregister(self.id);
        self.shared.changed.notify_waiters();
    }
}

/// Feeds one watch stream until the client leaves, the timeout passes, or the store ends it.
async fn run(
    shared: Arc<Shared>,
    filter: Filter,
    kind: String,
    params: Params,
    reg: Registration,
    tx: mpsc::Sender<Bytes>,
) {
    let _unregister = Unregister {
        shared: shared.clone(),
        id: reg.id,
    };
    let mut out = Out {
        tx,
        kind,
        api_version: filter.gvr.api_version(),
        rv: reg.rv,
    };
    if initial(&mut out, &filter, &params, &reg).await {
        live(&mut out, &filter, &params, reg, shared.bookmark_interval).await;
    }
}

/// Streams live events and bookmarks until something ends the watch.
async fn live(
    out: &mut Out,
    filter: &Filter,
    params: &Params,
    mut reg: Registration,
    every: Duration,
) {
    let deadline = Instant::now() + params.timeout;
    let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let alive = tokio::select! {
            msg = reg.rx.recv() => out.message(filter, msg).await,
            _ = ticker.tick(), if params.bookmarks => out.bookmark(false).await,
            _ = tokio::time::sleep_until(deadline) => false,
            _ = out.tx.closed() => false,
        };
        if !alive {
            return;
        }
    }
}

/// Sends the initial state and the replayed history; false if the client left.
async fn initial(out: &mut Out, filter: &Filter, params: &Params, reg: &Registration) -> bool {
    let in_ns = |o: &&Value| {
        let ns = o["metadata"]["namespace"].as_str().unwrap_or("");
        filter.namespace.as_deref().is_none_or(|want| want == ns)
    };
    for obj in reg
        .snapshot
        .iter()
        .filter(in_ns)
        .filter(|o| filter.selects(o))
    {
        if !out.send("ADDED", obj).await {
            return false;
        }
    }
    if params.initial_end_bookmark && !out.bookmark(true).await {
        return false;
    }
    for ev in &reg.replay {
        if !out.event(filter, ev).await {
            return false;
        }
    }
    // Every write up to the registration rv has now been seen.
    out.rv = out.rv.max(reg.rv);
    true
}

/// The writing end of one watch stream.
struct Out {
    tx: mpsc::Sender<Bytes>,
    kind: String,
    api_version: String,
    /// The resourceVersion of the last write this watch has seen, for bookmarks.
    rv: u64,
}

impl Out {
    async fn send(&self, kind: &str, object: &Value) -> bool {
        self.tx.send(event_line(kind, object)).await.is_ok()
    }

    /// Handles a message from the store; false when the watch must end.
    async fn message(&mut self, filter: &Filter, msg: Option<WatchMsg>) -> bool {
        match msg {
            Some(WatchMsg::Event(ev)) => self.event(filter, &ev).await,
            Some(WatchMsg::Expire { requested, oldest }) => {
                let err = ApiError::expired(requested, oldest);
                self.send("ERROR", &err.to_status()).await;
                false
            }
            Some(WatchMsg::Close) | None => false,
        }
    }

    async fn event(&mut self, filter: &Filter, ev: &StoredEvent) -> bool {
        self.rv = self.rv.max(ev.rv);
        match filter.convert(ev) {
            Some((kind, obj)) => self.send(kind, &obj).await,
            None => true,
        }
    }

    async fn bookmark(&self, initial_end: bool) -> bool {
        let mut metadata = json!({"resourceVersion": self.rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object =
            json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": metadata});
        self.send("BOOKMARK", &object).await
    }
}
