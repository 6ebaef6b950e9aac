//! Watches that survive an API-server restart and expired resource versions (410).

use std::time::Duration;

use epp_testkit::fake_apiserver::{FakeApiServer, Gvr, Verb, inference_pool_v1};
use epp_testkit::loopback::KUBE_WAIT;

use crate::KubeEpp;

const V1: &str = "inference.networking.k8s.io";

async fn pool_with_two_pods() -> (FakeApiServer, KubeEpp) {
    let server = FakeApiServer::start().await;
    server.apply(inference_pool_v1(
        "default",
        "pool",
        &[("app", "vllm")],
        &[8000],
        "epp",
    ));
    server.apply_pod("a", "10.0.0.1", &[("app", "vllm")], true, false);
    server.apply_pod("b", "10.0.0.2", &[("app", "vllm")], true, false);
    let k = KubeEpp::start(&server, V1).await;
    k.until_endpoints(&["10.0.0.1:8000", "10.0.0.2:8000"]).await;
    assert!(
        server
            .wait_until(KUBE_WAIT, |s| s.open_watches(&Gvr::pods()) == 1)
            .await,
        "pod watch open"
    );
    (server, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_mid_watch() {
    let (server, k) = pool_with_two_pods().await;
    let ids: Vec<_> = k
        .epp
        .datastore()
        .snapshot()
        .endpoints()
        .iter()
        .map(|e| e.id())
        .collect();

    server.restart(Duration::from_millis(500));
    // While it is down, the EPP keeps its endpoints and keeps serving.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(k.endpoints().len(), 2);
    assert!(k.ready());

    // Changes made while the watch was cut arrive once it reconnects.
    server.apply_pod("b", "10.0.0.2", &[("app", "vllm")], false, false);
    server.apply_pod("c", "10.0.0.3", &[("app", "vllm")], true, false);
    k.until_endpoints(&["10.0.0.1:8000", "10.0.0.3:8000"]).await;
    // The endpoint that never changed kept its identity through the reconnect.
    let snapshot = k.epp.datastore().snapshot();
    assert_eq!(
        snapshot
            .get("10.0.0.1:8000".parse().expect("addr"))
            .expect("a")
            .id(),
        ids[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_resource_version_relists() {
    let (server, k) = pool_with_two_pods().await;
    let lists = server.request_count(Verb::List, &Gvr::pods());

    // Changes the watch misses, then a 410 in the stream: the watcher must relist.
    server.close_watches();
    server.delete(&Gvr::pods(), "default", "a");
    server.apply_pod("d", "10.0.0.4", &[("app", "vllm")], true, false);
    server.expire_watches();
    k.until_endpoints(&["10.0.0.2:8000", "10.0.0.4:8000"]).await;
    assert!(
        server
            .wait_until(KUBE_WAIT, |s| s.request_count(Verb::List, &Gvr::pods())
                > lists)
            .await,
        "relisted after 410"
    );
    assert!(k.ready());
}
