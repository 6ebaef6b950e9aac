//! InferenceObjectives: priority from the named objective, shedding when saturated, and
//! a missing CRD that must not keep the EPP unready.

use epp_core::datastore::MetricsUpdate;
use epp_extproc::BodyMode;
use epp_testkit::driver::{Outcome, Request, send_request};
use epp_testkit::fake_apiserver::{FakeApiServer, Gvr, inference_objective, inference_pool_v1};
use epp_testkit::messages::completion_body;

use crate::{KubeEpp, TestEpp};

const V1: &str = "inference.networking.k8s.io";

/// Sends one request naming `objective`; returns the status (200 when routed).
async fn route(epp: &TestEpp, objective: &str, body: &[u8]) -> u16 {
    let mut stream = epp.stream().await;
    let request = Request::new(
        &[("x-gateway-inference-objective", objective)],
        body.to_vec(),
    );
    match send_request(&mut stream, BodyMode::FullDuplexStreamed, &request).await {
        Outcome::Routed { .. } => 200,
        Outcome::Rejected(status, _) => u16::try_from(status).unwrap_or(0),
    }
}

fn loaded(k: &KubeEpp, queue: u64) {
    for endpoint in k.epp.datastore().snapshot().endpoints() {
        endpoint.store_metrics(MetricsUpdate {
            waiting_queue_size: Some(queue),
            kv_cache_usage: Some(0.1),
            ..Default::default()
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objective_priority_decides_shedding() {
    let server = FakeApiServer::start().await;
    server.apply(inference_pool_v1(
        "default",
        "pool",
        &[("app", "vllm")],
        &[8000],
        "epp",
    ));
    server.apply_pod("a", "127.0.0.1", &[("app", "vllm")], true, false);
    server.apply(inference_objective("default", "critical", "pool", Some(2)));
    server.apply(inference_objective("default", "batch", "pool", Some(-1)));
    server.apply(inference_objective(
        "default",
        "elsewhere",
        "other-pool",
        Some(-1),
    ));
    let k = KubeEpp::start(&server, V1).await;
    k.until_endpoints(&["127.0.0.1:8000"]).await;
    k.until("objectives loaded", |k| {
        k.epp.datastore().objective("batch").is_some()
    })
    .await;
    assert!(
        k.epp.datastore().objective("elsewhere").is_none(),
        "another pool's objective"
    );

    let body = completion_body("m", "hello");
    // Saturated (queue above 5): the sheddable objective is dropped, the critical one is not.
    loaded(&k, 50);
    assert_eq!(route(&k.epp, "batch", &body).await, 429);
    loaded(&k, 50);
    assert_eq!(route(&k.epp, "critical", &body).await, 200);
    // Headroom: even the sheddable objective is served.
    loaded(&k, 0);
    assert_eq!(route(&k.epp, "batch", &body).await, 200);

    // The objective changes priority, then is deleted (priority 0: not shed).
    server.apply(inference_objective("default", "batch", "pool", Some(1)));
    k.until("priority updated", |k| {
        k.epp
            .datastore()
            .objective("batch")
            .is_some_and(|o| o.priority == 1)
    })
    .await;
    server.delete(&Gvr::inference_objectives(), "default", "batch");
    k.until("objective removed", |k| {
        k.epp.datastore().objective("batch").is_none()
    })
    .await;
    loaded(&k, 50);
    assert_eq!(route(&k.epp, "batch", &body).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_objective_crd_does_not_block_readiness() {
    let server = FakeApiServer::start().await;
    server.set_unavailable(&Gvr::inference_objectives(), 404);
    server.apply(inference_pool_v1(
        "default",
        "pool",
        &[("app", "vllm")],
        &[8000],
        "epp",
    ));
    server.apply_pod("a", "10.0.0.1", &[("app", "vllm")], true, false);
    let k = KubeEpp::start(&server, V1).await;
    k.until_endpoints(&["10.0.0.1:8000"]).await;
    k.until("ready without objectives", |k| k.ready()).await;
}
