//! `kube::runtime::watcher` against the fake: the initial list, live events, selector
//! transitions, resumption after a restart, relists after 410, bookmarks, streaming lists.

use std::collections::BTreeSet;
use std::time::Duration;

use epp_testkit::fake_apiserver::{ExpiryMode, FakeApiServer, FakePod, Gvr, Verb};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, WatchEvent, WatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

use crate::{T, within};

/// Watcher events as short strings (`init`, `apply:a`, ...) or error texts. A task
/// polls the watcher continuously, as the EPP does, so it re-watches without the test.
type Events = mpsc::UnboundedReceiver<Result<String, String>>;

fn pod(name: &str, app: &str) -> FakePod {
    FakePod::new(name).ip("10.1.0.1").label("app", app)
}

/// A watcher of pods in `default`, with backoff as the EPP runs it.
fn watch_pods(server: &FakeApiServer, config: watcher::Config) -> Events {
    let api: Api<Pod> = Api::default_namespaced(server.client());
    forward(watcher::watcher(api, config).default_backoff().boxed())
}

/// Polls a watcher stream in a task, forwarding rendered events.
fn forward(mut stream: BoxStream<'static, watcher::Result<Event<Pod>>>) -> Events {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let item = item.as_ref().map(label).map_err(|e| format!("{e:?}"));
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    rx
}

/// An event rendered as a short string.
fn label(event: &Event<Pod>) -> String {
    match event {
        Event::Init => "init".into(),
        Event::InitApply(p) => format!("init-apply:{}", p.name_any()),
        Event::InitDone => "init-done".into(),
        Event::Apply(p) => format!("apply:{}", p.name_any()),
        Event::Delete(p) => format!("delete:{}", p.name_any()),
    }
}

/// The next event or error.
async fn next_any(events: &mut Events) -> Result<String, String> {
    within("watcher event", events.recv())
        .await
        .expect("the watcher ended")
}

/// The next event, which must not be an error.
async fn next(events: &mut Events) -> String {
    next_any(events)
        .await
        .expect("a watcher event, not an error")
}

/// The next event, skipping errors (collected in `errors`).
async fn next_ok(events: &mut Events, errors: &mut Vec<String>) -> String {
    loop {
        match next_any(events).await {
            Ok(event) => return event,
            Err(err) => errors.push(err),
        }
    }
}

async fn expect_initial(events: &mut Events, names: &[&str]) {
    assert_eq!(next(events).await, "init");
    for name in names {
        assert_eq!(next(events).await, format!("init-apply:{name}"));
    }
    assert_eq!(next(events).await, "init-done");
}

async fn wait_for_watch(server: &FakeApiServer, n: usize) {
    let ok = server
        .wait_until(T, |s| s.open_watches(&Gvr::pods()) == n)
        .await;
    assert!(
        ok,
        "expected {n} open pod watches, have {}",
        server.open_watches(&Gvr::pods())
    );
}

#[tokio::test]
async fn watcher_lists_then_streams_apply_and_delete() {
    let server = FakeApiServer::start().await;
    server.apply_fake_pod(&pod("a", "vllm"));
    let mut events = watch_pods(&server, watcher::Config::default());
    expect_initial(&mut events, &["a"]).await;
    server.apply_fake_pod(&pod("b", "vllm"));
    assert_eq!(next(&mut events).await, "apply:b");
    server.apply_fake_pod(&pod("b", "vllm").ready(false));
    assert_eq!(next(&mut events).await, "apply:b");
    server.delete(&Gvr::pods(), "default", "a");
    assert_eq!(next(&mut events).await, "delete:a");
    // What kube-rs sent, for whoever builds on this fake.
    for r in server.requests() {
        eprintln!("{} {}?{}", r.method, r.path, r.query);
    }
}

#[tokio::test]
async fn selector_watcher_sees_a_relabelled_pod_as_deleted() {
    let server = FakeApiServer::start().await;
    server.apply_fake_pod(&pod("a", "vllm"));
    server.apply_fake_pod(&pod("x", "other"));
    let mut events = watch_pods(&server, watcher::Config::default().labels("app=vllm"));
    expect_initial(&mut events, &["a"]).await;
    server.apply_fake_pod(&pod("a", "other"));
    assert_eq!(next(&mut events).await, "delete:a");
    server.apply_fake_pod(&pod("x", "vllm"));
    assert_eq!(next(&mut events).await, "apply:x");
}

#[tokio::test]
async fn watcher_resumes_after_restart_without_relisting() {
    let server = FakeApiServer::start().await;
    server.apply_fake_pod(&pod("a", "vllm"));
    let mut events = watch_pods(&server, watcher::Config::default());
    expect_initial(&mut events, &["a"]).await;
    server.apply_fake_pod(&pod("b", "vllm"));
    assert_eq!(next(&mut events).await, "apply:b");
    wait_for_watch(&server, 1).await;
    server.restart(Duration::from_millis(300));
    wait_for_watch(&server, 0).await;
    server.apply_fake_pod(&pod("c", "vllm"));
    server.delete(&Gvr::pods(), "default", "b");
    let mut errors = Vec::new();
    let seen = [
        next_ok(&mut events, &mut errors).await,
        next_ok(&mut events, &mut errors).await,
    ];
    assert_eq!(
        seen,
        ["apply:c".to_string(), "delete:b".to_string()],
        "errors: {errors:?}"
    );
    server.apply_fake_pod(&pod("d", "vllm"));
    assert_eq!(
        next_ok(&mut events, &mut errors).await,
        "apply:d",
        "no duplicates before"
    );
    assert_eq!(
        server.request_count(Verb::List, &Gvr::pods()),
        1,
        "resumed, not relisted"
    );
    assert!(server.request_count(Verb::Watch, &Gvr::pods()) >= 2);
}

#[tokio::test]
async fn expired_watch_makes_the_watcher_relist_and_converge() {
    let server = FakeApiServer::start().await;
    server.apply_fake_pod(&pod("a", "vllm"));
    let mut events = watch_pods(&server, watcher::Config::default());
    expect_initial(&mut events, &["a"]).await;
    wait_for_watch(&server, 1).await;
    server.expire_watches();
    server.apply_fake_pod(&pod("b", "vllm"));
    server.delete(&Gvr::pods(), "default", "a");
    let err = next_any(&mut events).await.expect_err("the 410 error");
    assert!(err.contains("code: 410"), "{err}");
    expect_initial(&mut events, &["b"]).await;
    assert_eq!(
        server.request_count(Verb::List, &Gvr::pods()),
        2,
        "one relist"
    );
}

#[tokio::test]
async fn compacted_history_after_reconnect_forces_a_relist() {
    // No bookmarks, so the watcher's resourceVersion stays at its last pod event.
    let server = FakeApiServer::builder()
        .bookmark_interval(Duration::from_secs(3600))
        .start()
        .await;
    server.apply_fake_pod(&pod("a", "vllm"));
    let mut events = watch_pods(&server, watcher::Config::default().labels("app=vllm"));
    expect_initial(&mut events, &["a"]).await;
    wait_for_watch(&server, 1).await;
    server.apply_fake_pod(&pod("unrelated", "other"));
    server.compact();
    server.close_watches();
    let mut errors = Vec::new();
    assert_eq!(next_ok(&mut events, &mut errors).await, "init");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("too old resource version")),
        "{errors:?}"
    );
    assert_eq!(next(&mut events).await, "init-apply:a");
    assert_eq!(next(&mut events).await, "init-done");
    assert_eq!(server.request_count(Verb::List, &Gvr::pods()), 2);
}

#[tokio::test]
async fn http_410_on_watch_start_is_not_a_relist_for_kube_rs() {
    // kube-rs 5 retries the watch from the same resourceVersion on a watch-start error,
    // whatever its code; only a 410 inside the stream (the real server's way) relists.
    let server = FakeApiServer::builder()
        .bookmark_interval(Duration::from_secs(3600))
        .expiry_mode(ExpiryMode::Http)
        .start()
        .await;
    server.apply_fake_pod(&pod("a", "vllm"));
    let api: Api<Pod> = Api::default_namespaced(server.client());
    let mut events = forward(
        watcher::watcher(api.clone(), watcher::Config::default().labels("app=vllm")).boxed(),
    );
    expect_initial(&mut events, &["a"]).await;
    server.apply_fake_pod(&pod("unrelated", "other"));
    server.compact();
    server.close_watches();
    for _ in 0..2 {
        let err = next_any(&mut events).await.expect_err("an error");
        assert!(
            err.starts_with("WatchStartFailed(Api(") && err.contains("code: 410"),
            "{err}"
        );
    }
    assert_eq!(server.request_count(Verb::List, &Gvr::pods()), 1);
    let direct = within("Api::watch", api.watch(&WatchParams::default(), "1")).await;
    assert!(
        matches!(direct, Err(kube::Error::Api(ref s)) if s.code == 410),
        "{:?}",
        direct.err()
    );
}

#[tokio::test]
async fn api_watch_yields_bookmarks() {
    let server = FakeApiServer::builder()
        .bookmark_interval(Duration::from_millis(100))
        .start()
        .await;
    server.apply_fake_pod(&pod("a", "vllm"));
    let api: Api<Pod> = Api::default_namespaced(server.client());
    let rv = server.resource_version().to_string();
    let wp = WatchParams::default().timeout(5);
    let mut stream = within("watch", api.watch(&wp, &rv))
        .await
        .expect("watch")
        .boxed();
    let event = within("bookmark", stream.try_next())
        .await
        .expect("no error")
        .expect("an event");
    match event {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_then_live_ones() {
    let server = FakeApiServer::start().await;
    server.apply_fake_pod(&pod("a", "vllm"));
    server.apply_fake_pod(&pod("b", "vllm"));
    let mut events = watch_pods(&server, watcher::Config::default().streaming_lists());
    assert_eq!(next(&mut events).await, "init");
    let initial: BTreeSet<String> = [next(&mut events).await, next(&mut events).await].into();
    assert_eq!(
        initial,
        ["init-apply:a".to_string(), "init-apply:b".to_string()].into()
    );
    assert_eq!(next(&mut events).await, "init-done");
    server.apply_fake_pod(&pod("c", "vllm"));
    assert_eq!(next(&mut events).await, "apply:c");
    assert_eq!(server.request_count(Verb::List, &Gvr::pods()), 0);
}
