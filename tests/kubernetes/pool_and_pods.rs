//! The pool and its pods: readiness, selector and ports, the v1alpha2 API.

use epp_testkit::fake_apiserver::{
    FakeApiServer, FakePod, Gvr, inference_pool_v1, inference_pool_v1alpha2,
};

use crate::KubeEpp;

const V1: &str = "inference.networking.k8s.io";
const X: &str = "inference.networking.x-k8s.io";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_created_after_the_epp_starts() {
    let server = FakeApiServer::start().await;
    server.apply_pod("vllm-0", "10.0.0.1", &[("app", "vllm")], true, false);
    let k = KubeEpp::start(&server, V1).await;
    // No pool yet: not ready, no endpoints.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!k.ready(), "not SERVING before the pool exists");
    assert!(k.endpoints().is_empty());

    server.apply(inference_pool_v1(
        "default",
        "pool",
        &[("app", "vllm")],
        &[8000],
        "epp",
    ));
    k.until_endpoints(&["10.0.0.1:8000"]).await;
    k.until("ready", |k| k.ready()).await;
    let pool = k.epp.datastore().pool().expect("pool");
    assert_eq!(
        (pool.name.as_str(), pool.target_ports.as_slice()),
        ("pool", &[8000][..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_becoming_ready_unready_terminating_deleted_relabelled() {
    let server = FakeApiServer::start().await;
    server.apply(inference_pool_v1(
        "default",
        "pool",
        &[("app", "vllm")],
        &[8000],
        "epp",
    ));
    server.apply_pod("a", "10.0.0.1", &[("app", "vllm")], true, false);
    server.apply_pod("b", "10.0.0.2", &[("app", "vllm")], false, false);
    server.apply_pod("other", "10.0.0.9", &[("app", "else")], true, false);
    let k = KubeEpp::start(&server, V1).await;
    k.until_endpoints(&["10.0.0.1:8000"]).await;
    let a_id = k.epp.datastore().snapshot().endpoints()[0].id();

    // b becomes ready.
    server.apply_pod("b", "10.0.0.2", &[("app", "vllm")], true, false);
    k.until_endpoints(&["10.0.0.1:8000", "10.0.0.2:8000"]).await;
    // a's identity (and with it metrics and in-flight counts) survives other changes.
    let snapshot = k.epp.datastore().snapshot();
    assert_eq!(
        snapshot
            .get("10.0.0.1:8000".parse().expect("addr"))
            .expect("a")
            .id(),
        a_id
    );

    // b turns unready; a starts terminating (no new traffic).
    server.apply_pod("b", "10.0.0.2", &[("app", "vllm")], false, false);
    server.apply_pod("a", "10.0.0.1", &[("app", "vllm")], true, true);
    k.until_endpoints(&[]).await;

    // A new pod, then its deletion; a relabelled pod leaves the selector.
    server.apply_pod("c", "10.0.0.3", &[("app", "vllm")], true, false);
    server.apply_pod("d", "10.0.0.4", &[("app", "vllm")], true, false);
    k.until_endpoints(&["10.0.0.3:8000", "10.0.0.4:8000"]).await;
    server.delete(&Gvr::pods(), "default", "c");
    server.apply_pod("d", "10.0.0.4", &[("app", "moved")], true, false);
    k.until_endpoints(&[]).await;
    // The unrelated pod never counted; readiness stays (the pool is synced).
    assert!(k.ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_and_port_changes_resync() {
    let server = FakeApiServer::start().await;
    server.apply(inference_pool_v1(
        "default",
        "pool",
        &[("app", "vllm")],
        &[8000],
        "epp",
    ));
    server.apply_pod("a", "10.0.0.1", &[("app", "vllm")], true, false);
    server.apply_pod("b", "10.0.0.2", &[("app", "next")], true, false);
    let k = KubeEpp::start(&server, V1).await;
    k.until_endpoints(&["10.0.0.1:8000"]).await;

    server.apply(inference_pool_v1(
        "default",
        "pool",
        &[("app", "next")],
        &[8000],
        "epp",
    ));
    k.until_endpoints(&["10.0.0.2:8000"]).await;

    server.apply(inference_pool_v1(
        "default",
        "pool",
        &[("app", "next")],
        &[9000],
        "epp",
    ));
    k.until_endpoints(&["10.0.0.2:9000"]).await;
    assert_eq!(
        k.epp.datastore().pool().expect("pool").target_ports,
        vec![9000]
    );

    // Deleting the pool clears everything and makes the EPP unready.
    server.delete(&Gvr::inference_pools_v1(), "default", "pool");
    k.until_endpoints(&[]).await;
    k.until("unready", |k| !k.ready()).await;
    assert!(k.epp.datastore().pool().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_target_ports_make_two_ranks() {
    let server = FakeApiServer::start().await;
    server.apply(inference_pool_v1(
        "default",
        "pool",
        &[("app", "vllm")],
        &[8000, 8001],
        "epp",
    ));
    server.apply_pod("a", "10.0.0.1", &[("app", "vllm")], true, false);
    let k = KubeEpp::start(&server, V1).await;
    k.until_endpoints(&["10.0.0.1:8000", "10.0.0.1:8001"]).await;
    let mut names: Vec<String> = k
        .epp
        .datastore()
        .snapshot()
        .endpoints()
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["default/a-rank-0", "default/a-rank-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1alpha2_pool() {
    let server = FakeApiServer::start().await;
    server.apply(inference_pool_v1alpha2(
        "default",
        "pool",
        &[("app", "vllm")],
        8000,
        "epp",
    ));
    // A v1 pool of the same name must be ignored when --pool-group selects v1alpha2.
    server.apply(inference_pool_v1(
        "default",
        "pool",
        &[("app", "other")],
        &[7000],
        "epp",
    ));
    server.apply_fake_pod(
        &FakePod::new("a")
            .ip("10.0.0.1")
            .label("app", "vllm")
            .ready(true),
    );
    let k = KubeEpp::start(&server, X).await;
    k.until_endpoints(&["10.0.0.1:8000"]).await;
    k.until("ready", |k| k.ready()).await;
}
