//! The wire protocol, checked with plain HTTP requests: list, selectors, pagination,
//! watch replay and streaming, selector transitions, bookmarks, 410, writes, discovery.

use std::pin::Pin;

use bytes::Bytes;
use epp_testkit::fake_apiserver::{ExpiryMode, FakeApiServer, FakePod, Gvr};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};

use crate::{T, within};

/// A plain HTTP client for one server.
pub(crate) struct Raw {
    http: reqwest::Client,
    base: String,
}

impl Raw {
    pub(crate) fn new(server: &FakeApiServer) -> Raw {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(T)
            .build()
            .expect("a reqwest client");
        Raw {
            http,
            base: server.url(),
        }
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        ct: &str,
        body: Value,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !body.is_null() {
            req = req.header("content-type", ct).body(body.to_string());
        }
        let resp = within(path, req.send()).await.expect("a response");
        let code = resp.status().as_u16();
        let bytes = within(path, resp.bytes()).await.expect("a body");
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, "", Value::Null).await
    }

    async fn watch(&self, path: &str) -> Lines {
        let resp = within(path, self.http.get(format!("{}{path}", self.base)).send())
            .await
            .expect("a watch response");
        assert_eq!(resp.status(), 200, "watch {path}");
        Lines {
            stream: Box::pin(resp.bytes_stream()),
            buf: Vec::new(),
        }
    }
}

/// Newline-delimited JSON events of a watch response.
struct Lines {
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buf: Vec<u8>,
}

impl Lines {
    /// The next event, or None when the stream ends.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).expect("a JSON event line"));
            }
            match within("next watch chunk", self.stream.next()).await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                _ => return None,
            }
        }
    }

    /// The next non-BOOKMARK event as (type, name).
    async fn next_change(&mut self) -> (String, String) {
        loop {
            let ev = self.next().await.expect("another event");
            if ev["type"] != "BOOKMARK" {
                return (s(&ev["type"]), s(&ev["object"]["metadata"]["name"]));
            }
        }
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn names(list: &Value) -> Vec<String> {
    let items = list["items"].as_array().expect("items");
    items.iter().map(|i| s(&i["metadata"]["name"])).collect()
}

fn pod(name: &str, app: &str) -> FakePod {
    FakePod::new(name).ip("10.1.0.1").label("app", app)
}

#[tokio::test]
async fn list_filters_by_label_and_field_selectors() {
    let server = FakeApiServer::start().await;
    server.apply_fake_pod(&pod("a", "vllm").label("tier", "gpu"));
    server.apply_fake_pod(&pod("b", "vllm"));
    server.apply_fake_pod(&pod("c", "other"));
    server.apply_fake_pod(&pod("d", "vllm").namespace("elsewhere"));
    let raw = Raw::new(&server);
    let base = "/api/v1/namespaces/default/pods";
    let (code, list) = raw.get(base).await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(
        list["metadata"]["resourceVersion"],
        server.resource_version().to_string()
    );
    assert_eq!(names(&list), ["a", "b", "c"]);
    let cases = [
        ("labelSelector=app%3Dvllm", vec!["a", "b"]),
        ("labelSelector=app%3D%3Dvllm,tier%3Dgpu", vec!["a"]),
        ("labelSelector=app!%3Dvllm", vec!["c"]),
        ("labelSelector=tier", vec!["a"]),
        ("labelSelector=!tier", vec!["b", "c"]),
        ("labelSelector=app+in+(other,x)", vec!["c"]),
        ("labelSelector=app+notin+(other)", vec!["a", "b"]),
        ("fieldSelector=metadata.name%3Db", vec!["b"]),
        (
            "fieldSelector=metadata.name!%3Db&labelSelector=app%3Dvllm",
            vec!["a"],
        ),
    ];
    for (query, want) in cases {
        let (code, list) = raw.get(&format!("{base}?{query}")).await;
        assert_eq!(code, 200, "{query}");
        assert_eq!(names(&list), want, "{query}");
    }
    let (_, all) = raw.get("/api/v1/pods").await;
    assert_eq!(names(&all), ["a", "b", "c", "d"], "cluster-wide list");
}

#[tokio::test]
async fn list_paginates_with_limit_and_continue() {
    let server = FakeApiServer::start().await;
    for name in ["p1", "p2", "p3", "p4", "p5"] {
        server.apply_fake_pod(&pod(name, "vllm"));
    }
    let raw = Raw::new(&server);
    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let path = format!("/api/v1/namespaces/default/pods?limit=2&continue={token}");
        let (code, page) = raw.get(&path).await;
        assert_eq!(code, 200);
        pages += 1;
        seen.extend(names(&page));
        token = s(&page["metadata"]["continue"]);
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["p1", "p2", "p3", "p4", "p5"]);
}

#[tokio::test]
async fn watch_replays_history_then_streams_live_and_times_out() {
    let server = FakeApiServer::start().await;
    let rv = server.resource_version();
    server.apply_fake_pod(&pod("a", "vllm"));
    server.apply_fake_pod(&pod("a", "vllm").ready(false));
    let raw = Raw::new(&server);
    let path =
        format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&timeoutSeconds=2");
    let mut w = raw.watch(&path).await;
    assert_eq!(w.next_change().await, ("ADDED".into(), "a".into()));
    assert_eq!(w.next_change().await, ("MODIFIED".into(), "a".into()));
    server.delete(&Gvr::pods(), "default", "a");
    let ev = w.next().await.expect("the live DELETED event");
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["kind"], "Pod");
    assert_eq!(
        ev["object"]["metadata"]["resourceVersion"],
        server.resource_version().to_string()
    );
    assert_eq!(w.next().await, None, "timeoutSeconds=2 ends the stream");
}

#[tokio::test]
async fn watch_without_resource_version_starts_with_current_state() {
    let server = FakeApiServer::start().await;
    server.apply_fake_pod(&pod("a", "vllm"));
    server.apply_fake_pod(&pod("b", "other"));
    let raw = Raw::new(&server);
    let mut w = raw
        .watch("/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dvllm")
        .await;
    assert_eq!(w.next_change().await, ("ADDED".into(), "a".into()));
    server.apply_fake_pod(&pod("c", "vllm"));
    assert_eq!(w.next_change().await, ("ADDED".into(), "c".into()));
}

#[tokio::test]
async fn selector_watch_turns_label_changes_into_added_and_deleted() {
    let server = FakeApiServer::start().await;
    server.apply_fake_pod(&pod("a", "vllm"));
    let rv = server.resource_version();
    let raw = Raw::new(&server);
    let path = format!(
        "/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&labelSelector=app%3Dvllm"
    );
    let mut w = raw.watch(&path).await;
    server.apply_fake_pod(&pod("a", "other"));
    let ev = w.next().await.expect("DELETED");
    assert_eq!(
        (
            s(&ev["type"]),
            s(&ev["object"]["metadata"]["labels"]["app"])
        ),
        ("DELETED".into(), "vllm".into())
    );
    server.apply_fake_pod(&pod("z", "other"));
    server.apply_fake_pod(&pod("a", "vllm"));
    assert_eq!(w.next_change().await, ("ADDED".into(), "a".into()));
}

#[tokio::test]
async fn bookmarks_carry_only_kind_and_resource_version() {
    let server = FakeApiServer::builder()
        .bookmark_interval(std::time::Duration::from_millis(100))
        .start()
        .await;
    server.apply_fake_pod(&pod("a", "vllm"));
    let rv = server.resource_version();
    let raw = Raw::new(&server);
    let path = format!(
        "/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&allowWatchBookmarks=true"
    );
    let mut w = raw.watch(&path).await;
    let ev = w.next().await.expect("a bookmark");
    assert_eq!(
        ev,
        json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": rv.to_string()}}})
    );
    let path = "/api/v1/namespaces/default/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true";
    let mut w = raw.watch(path).await;
    assert_eq!(w.next_change().await, ("ADDED".into(), "a".into()));
    let end = w.next().await.expect("the initial-events-end bookmark");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[tokio::test]
async fn compacted_resource_version_is_expired_in_stream_or_over_http() {
    let server = FakeApiServer::start().await;
    let old = server.resource_version();
    server.apply_fake_pod(&pod("a", "vllm"));
    server.compact();
    let raw = Raw::new(&server);
    let path = format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={old}");
    let mut w = raw.watch(&path).await;
    let ev = w.next().await.expect("an ERROR event");
    assert_eq!(ev["type"], "ERROR");
    let status = &ev["object"];
    assert_eq!(
        (
            status["kind"].as_str(),
            status["code"].as_u64(),
            status["reason"].as_str()
        ),
        (Some("Status"), Some(410), Some("Expired"))
    );
    assert!(s(&status["message"]).starts_with("too old resource version"));
    assert_eq!(w.next().await, None, "the stream ends after the error");
    server.set_expiry_mode(ExpiryMode::Http);
    let (code, status) = raw.get(&path).await;
    assert_eq!((code, status["reason"].as_str()), (410, Some("Expired")));
    let fresh = format!(
        "/api/v1/namespaces/default/pods?watch=true&resourceVersion={}&timeoutSeconds=1",
        server.resource_version()
    );
    let mut w = raw.watch(&fresh).await;
    assert_eq!(
        w.next().await,
        None,
        "a current resourceVersion still watches"
    );
}

#[tokio::test]
async fn discovery_and_unknown_paths() {
    let server = FakeApiServer::start().await;
    let raw = Raw::new(&server);
    let (code, version) = raw.get("/version").await;
    assert_eq!(
        (code, version["major"].as_str(), version["minor"].as_str()),
        (200, Some("1"), Some("33"))
    );
    let (_, api) = raw.get("/api").await;
    assert_eq!(api["versions"], json!(["v1"]));
    let (_, apis) = raw.get("/apis").await;
    let groups: Vec<String> = apis["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| s(&g["name"]))
        .collect();
    assert!(
        groups.contains(&"inference.networking.x-k8s.io".to_string()),
        "{groups:?}"
    );
    let (_, resources) = raw
        .get("/apis/inference.networking.x-k8s.io/v1alpha2")
        .await;
    let kinds: Vec<String> = resources["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| s(&r["kind"]))
        .collect();
    assert_eq!(kinds, ["InferencePool", "InferenceObjective"]);
    let (code, status) = raw
        .get("/apis/example.com/v1/namespaces/default/widgets")
        .await;
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
}
