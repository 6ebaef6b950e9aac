//! An in-process fake Kubernetes API server for integration tests: real HTTP/1.1 (and
//! h2c) on `127.0.0.1:0`, so the real kube-rs client, `kube::runtime::watcher` and
//! Lease-based leader election run against it unchanged.
//!
//! What it does:
//! - stores JSON objects per (group, version, plural, namespace, name), stamping a
//!   global `metadata.resourceVersion`, `uid`, `creationTimestamp` and `generation`;
//! - serves LIST (label/field selectors, `limit`/`continue`), GET, POST, PUT (409 on a
//!   stale resourceVersion), PATCH (merge, strategic-as-merge, apply-as-merge, JSON
//!   patch), DELETE (with preconditions), delete-collection, the `status` subresource,
//!   and `/version`, `/api`, `/apis` discovery;
//! - serves WATCH as the real server does: initial state for `resourceVersion` unset/`0`
//!   or `sendInitialEvents`, replay after a resourceVersion, live events, selector
//!   transitions as ADDED/DELETED, periodic BOOKMARKs, `timeoutSeconds`, and 410
//!   Expired (in the stream by default) after `compact()`;
//! - injects faults: `restart()`, `set_unavailable()` (403/404), `fail_next()`;
//! - answers TokenReview and SubjectAccessReview from `add_token` and `grant`;
//! - logs every request for assertions (`request_count`, `requests`).
//!
//! Typical use (every await bounded, conditions polled with `wait_until`):
//!
//! ```ignore
//! let server = FakeApiServer::start().await;
//! server.apply(inference_pool_v1("default", "pool", &[("app", "vllm")], &[8000], "epp"));
//! server.apply_pod("vllm-0", "10.0.0.1", &[("app", "vllm")], true, false);
//! let client = server.client(); // hand it to the code under test
//! assert!(server.wait_until(T, |s| s.open_watches(&Gvr::pods()) == 1).await);
//! server.expire_watches(); // 410 in every open watch: watchers relist
//! assert!(server.wait_until(T, |s| s.request_count(Verb::List, &Gvr::pods()) == 2).await);
//! ```
//!
//! kube-rs 5 behaviours worth knowing (checked in `tests/fake_apiserver_selftest`):
//! `watcher` relists only on a 410 *inside* the stream; a 410 (or any error) answering
//! the watch request itself makes it retry the watch from the same resourceVersion
//! forever (`ExpiryMode::Http` shows this). After `InitDone` the watcher issues its
//! WATCH only when polled again, so poll it from a task.
//!
//! Not supported: protobuf, `dryRun`, field managers/`managedFields` (server-side apply
//! is a merge patch that may create), finalizers and graceful deletion (DELETE removes
//! at once; set `deletionTimestamp` with `apply` to model a terminating pod), waiting
//! for a future resourceVersion, and authentication of its own clients (every request is
//! allowed; reviews only answer what they are asked).
mod faults;
mod handlers;
mod http;
mod objects;
mod patch;
mod resources;
mod reviews;
mod selector;
mod server;
mod status;
mod store;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinHandle;

pub use faults::{ExpiryMode, RequestRecord, Verb};
pub use objects::{
    FakePod, inference_objective, inference_pool_v1, inference_pool_v1alpha2, lease,
};
pub use resources::{Gvr, ResourceType, ScopeFlag};

use server::Shared;
use store::key_of;

/// Options of a server; `FakeApiServer::builder()`.
#[derive(Clone, Debug)]
pub struct Builder {
    bookmark_interval: Duration,
    history_limit: usize,
    expiry_mode: ExpiryMode,
}

impl Builder {
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK (default 1s).
    pub fn bookmark_interval(mut self, every: Duration) -> Builder {
        self.bookmark_interval = every;
        self
    }

    /// How many events the watch history keeps before older resourceVersions expire.
    pub fn history_limit(mut self, events: usize) -> Builder {
        self.history_limit = events;
        self
    }

    /// How a watch from a compacted resourceVersion is refused (default: in the stream).
    pub fn expiry_mode(mut self, mode: ExpiryMode) -> Builder {
        self.expiry_mode = mode;
        self
    }

    /// Binds 127.0.0.1:0 and starts serving.
    pub async fn start(self) -> FakeApiServer {
        let shared = Arc::new(Shared::new(self.history_limit, self.bookmark_interval));
        shared.faults.lock().expiry_mode = self.expiry_mode;
        let (addr, task) = server::spawn(shared.clone()).await;
        let guard = Arc::new(Guard {
            task,
            shared: shared.clone(),
        });
        FakeApiServer {
            shared,
            addr,
            _guard: guard,
        }
    }
}

/// Stops the listener and drops every connection when the last handle goes.
struct Guard {
    task: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.restarts.send_modify(|n| *n += 1);
    }
}

/// A running fake API server. Clones share it; it stops when the last clone is dropped.
#[derive(Clone)]
pub struct FakeApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _guard: Arc<Guard>,
}

impl FakeApiServer {
    /// Starts a server with default options.
    pub async fn start() -> FakeApiServer {
        FakeApiServer::builder().start().await
    }

    /// Options: bookmark interval, history size, expiry mode.
    pub fn builder() -> Builder {
        Builder {
            bookmark_interval: Duration::from_secs(1),
            history_limit: 10_000,
            expiry_mode: ExpiryMode::InStream,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube config for this server, default namespace `default`.
    pub fn config(&self) -> kube::Config {
        let url = self.url().parse().expect("a valid loopback URL");
        kube::Config::new(url)
    }

    /// A kube client for this server.
    pub fn client(&self) -> kube::Client {
        // kube builds a rustls connector even for http:// URLs: make sure a provider exists.
        let _ = rustls::crypto::ring::default_provider().install_default();
        kube::Client::try_from(self.config()).expect("a kube client for the fake server")
    }

    /// Makes `token` authenticate as `user` in TokenReviews.
    pub fn add_token(&self, token: &str, user: &str, groups: &[&str]) {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        self.shared
            .reviews
            .lock()
            .tokens
            .insert(token.to_owned(), (user.to_owned(), groups));
    }

    /// Allows `user` to `verb` the non-resource `path` in SubjectAccessReviews.
    pub fn grant(&self, user: &str, verb: &str, path: &str) {
        self.shared.reviews.lock().grants.insert((
            user.to_owned(),
            verb.to_owned(),
            path.to_owned(),
        ));
    }

    /// Serves another resource type (a CRD "installed" late, or a core type not built in).
    pub fn register(&self, rt: ResourceType) {
        self.shared.registry.write().register(rt);
    }

    /// The registered type of an object, from its `apiVersion` and `kind`.
    fn type_of(&self, obj: &Value) -> ResourceType {
        let api_version = obj["apiVersion"].as_str().unwrap_or("");
        let kind = obj["kind"].as_str().unwrap_or("");
        let registry = self.shared.registry.read();
        let found = registry.by_kind(api_version, kind).cloned();
        found
            .unwrap_or_else(|| panic!("fake API server: no resource type for {api_version} {kind}"))
    }

    /// Creates or replaces an object (keyed by apiVersion, kind, namespace (default
    /// `default`) and name), emitting ADDED or MODIFIED; returns it as stored.
    pub fn apply(&self, obj: Value) -> Value {
        let rt = self.type_of(&obj);
        let mut obj = obj;
        if rt.namespaced && obj["metadata"]["namespace"].as_str().is_none() {
            obj["metadata"]["namespace"] = Value::from("default");
        }
        self.shared.store.lock().upsert(&rt, obj)
    }

    /// `apply` for a typed object (k8s-openapi or kube-derive).
    pub fn apply_typed<K: serde::Serialize>(&self, obj: &K) -> Value {
        self.apply(serde_json::to_value(obj).expect("serializing a typed object"))
    }

    /// Applies a pod built with `FakePod`.
    pub fn apply_fake_pod(&self, pod: &FakePod) -> Value {
        self.apply(pod.to_json())
    }

    /// Applies a pod in `default`: `ip`, `labels`, the Ready condition, and whether it is
    /// terminating (`metadata.deletionTimestamp`).
    pub fn apply_pod(
        &self,
        name: &str,
        ip: &str,
        labels: &[(&str, &str)],
        ready: bool,
        terminating: bool,
    ) -> Value {
        let pod = labels
            .iter()
            .fold(FakePod::new(name).ip(ip), |p, (k, v)| p.label(k, v))
            .ready(ready)
            .terminating(terminating);
        self.apply_fake_pod(&pod)
    }

    /// One object (`ns` ignored for cluster-scoped types).
    pub fn get(&self, gvr: &Gvr, ns: &str, name: &str) -> Option<Value> {
        let key = self.key(gvr, ns, name);
        self.shared.store.lock().get(&key).cloned()
    }

    /// All objects of a type, in one namespace or all.
    pub fn list(&self, gvr: &Gvr, ns: Option<&str>) -> Vec<Value> {
        self.shared.store.lock().list(gvr, ns)
    }

    /// Deletes an object, emitting DELETED; returns its last state if it existed.
    pub fn delete(&self, gvr: &Gvr, ns: &str, name: &str) -> Option<Value> {
        let key = self.key(gvr, ns, name);
        self.shared.store.lock().delete(&key).ok()
    }

    /// The store key of a (gvr, ns, name).
    fn key(&self, gvr: &Gvr, ns: &str, name: &str) -> store::ObjKey {
        let registry = self.shared.registry.read();
        let namespaced = registry.by_gvr(gvr).is_none_or(|rt| rt.namespaced);
        let rt = ResourceType::new(gvr.clone(), "", namespaced);
        key_of(
            &rt,
            &serde_json::json!({"metadata": {"namespace": ns, "name": name}}),
        )
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.lock().rv()
    }

    /// Drops the event history: watches from an older resourceVersion now get 410.
    /// Open watches are not affected. Returns the new oldest resourceVersion.
    pub fn compact(&self) -> u64 {
        self.shared.store.lock().compact()
    }

    /// Compacts and sends every open watch a 410 `ERROR` event, then ends it, so
    /// watchers must relist (what a watch-cache reinitialisation looks like).
    pub fn expire_watches(&self) {
        self.shared.store.lock().expire_watches();
    }

    /// Ends every open watch stream cleanly (like their `timeoutSeconds` passing).
    pub fn close_watches(&self) {
        self.shared.store.lock().close_watches();
    }

    /// How many watches of a type are open.
    pub fn open_watches(&self, gvr: &Gvr) -> usize {
        self.shared.store.lock().open_watches(gvr)
    }

    /// How watches from a compacted resourceVersion are refused.
    pub fn set_expiry_mode(&self, mode: ExpiryMode) {
        self.shared.faults.lock().expiry_mode = mode;
    }

    /// Simulates an API server restart: drops every connection (open watches end
    /// mid-stream) and resets new connections for `down_for`; data and history survive.
    pub fn restart(&self, down_for: Duration) {
        self.shared
            .faults
            .lock()
            .set_down_until(Instant::now() + down_for);
        self.shared.restarts.send_modify(|n| *n += 1);
    }

    /// Whether the server is inside a restart window.
    pub fn is_down(&self) -> bool {
        self.shared.faults.lock().is_down()
    }

    /// Fails the next request whose path starts with `path_prefix` with `code`.
    pub fn fail_next(&self, path_prefix: &str, code: u16) {
        self.fail_requests(path_prefix, code, 1);
    }

    /// Fails the next `times` requests whose path starts with `path_prefix`.
    pub fn fail_requests(&self, path_prefix: &str, code: u16, times: usize) {
        self.shared
            .faults
            .lock()
            .fail_requests(path_prefix, code, times);
    }

    /// Makes every request for a type fail with `code` (403: no RBAC; 404: no CRD).
    pub fn set_unavailable(&self, gvr: &Gvr, code: u16) {
        self.shared.faults.lock().set_unavailable(gvr, Some(code));
    }

    /// Undoes `set_unavailable`.
    pub fn set_available(&self, gvr: &Gvr) {
        self.shared.faults.lock().set_unavailable(gvr, None);
    }

    /// Every request served so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.faults.lock().log.clone()
    }

    /// How many requests of a verb on a type were served.
    pub fn request_count(&self, verb: Verb, gvr: &Gvr) -> usize {
        self.shared.faults.lock().count(verb, gvr)
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.faults.lock().log.clear();
    }

    /// Waits until `cond` holds, re-checking on every request and watch change (and at
    /// least every 20ms); false if `timeout` passes first.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&FakeApiServer) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            if cond(self) {
                return true;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let wake = deadline.min(now + Duration::from_millis(20));
            let _ = tokio::time::timeout_at(wake, changed).await;
        }
    }
}
