//! The exact requests kube-rs 5 sends for what the EPP does (pod and pool watchers,
//! streaming lists, Lease get/create/replace/delete), pinned so that a kube upgrade
//! that changes them is noticed here first.

use epp_discovery::kube::resources::v1::InferencePool;
use epp_testkit::fake_apiserver::{FakeApiServer, FakePod, Gvr, Verb, lease};
use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;

use crate::{T, within};

/// Polls a watcher forever in a task (the test ends the runtime, and with it the task).
fn run_watcher<K>(api: Api<K>, config: watcher::Config)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let mut events = watcher::watcher(api, config).boxed();
    tokio::spawn(async move { while events.next().await.is_some() {} });
}

/// `METHOD path?query` of every request for a gvr.
fn requests(server: &FakeApiServer, gvr: &Gvr) -> Vec<String> {
    let log = server.requests();
    let mine = log.iter().filter(|r| r.gvr.as_ref() == Some(gvr));
    mine.map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect()
}

/// The LIST then WATCH a default `watcher::Config` sends, with `filter` as the selector.
fn list_then_watch(path: &str, filter: &str, rv: u64) -> [String; 2] {
    [
        format!("GET {path}?&{filter}&limit=500"),
        format!(
            "GET {path}?&watch=true&timeoutSeconds=290&{filter}&allowWatchBookmarks=true&resourceVersion={rv}"
        ),
    ]
}

#[tokio::test]
async fn watcher_request_shapes() {
    let server = FakeApiServer::start().await;
    server.apply_fake_pod(&FakePod::new("a").label("app", "vllm"));
    let rv = server.resource_version();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    run_watcher(
        pods,
        watcher::Config::default().labels("app=vllm,tier!=cpu"),
    );
    let pools: Api<InferencePool> = Api::default_namespaced(server.client());
    run_watcher(
        pools,
        watcher::Config::default().fields("metadata.name=pool"),
    );
    let pool_gvr = Gvr::inference_pools_v1();
    let both =
        |s: &FakeApiServer| s.open_watches(&Gvr::pods()) == 1 && s.open_watches(&pool_gvr) == 1;
    assert!(server.wait_until(T, both).await, "both watches open");
    let pods_path = "/api/v1/namespaces/default/pods";
    let selector = "labelSelector=app%3Dvllm%2Ctier%21%3Dcpu";
    assert_eq!(
        requests(&server, &Gvr::pods()),
        list_then_watch(pods_path, selector, rv)
    );
    let pools_path = "/apis/inference.networking.k8s.io/v1/namespaces/default/inferencepools";
    let field = "fieldSelector=metadata.name%3Dpool";
    assert_eq!(
        requests(&server, &pool_gvr),
        list_then_watch(pools_path, field, rv)
    );
}

#[tokio::test]
async fn streaming_list_request_shape() {
    let server = FakeApiServer::start().await;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    run_watcher(pods, watcher::Config::default().streaming_lists());
    assert!(
        server
            .wait_until(T, |s| s.open_watches(&Gvr::pods()) == 1)
            .await
    );
    let want = "GET /api/v1/namespaces/default/pods?&watch=true&timeoutSeconds=290\
        &allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan\
        &resourceVersion=0";
    assert_eq!(requests(&server, &Gvr::pods()), [want]);
    assert_eq!(server.request_count(Verb::List, &Gvr::pods()), 0);
}

#[tokio::test]
async fn lease_request_shapes() {
    let server = FakeApiServer::start().await;
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    assert!(
        within("get_opt", leases.get_opt("x"))
            .await
            .expect("get_opt")
            .is_none()
    );
    let fresh: Lease =
        serde_json::from_value(lease("default", "x", Some("me"), 15)).expect("a Lease");
    let created = within("create", leases.create(&Default::default(), &fresh))
        .await
        .expect("create");
    within(
        "replace",
        leases.replace("x", &Default::default(), &created),
    )
    .await
    .expect("replace");
    within("delete", leases.delete("x", &Default::default()))
        .await
        .expect("delete");
    let path = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
    assert_eq!(
        requests(&server, &Gvr::leases()),
        [
            format!("GET {path}/x?"),
            format!("POST {path}?"),
            format!("PUT {path}/x?"),
            format!("DELETE {path}/x?"),
        ]
    );
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404, 201, 200, 200]);
}
