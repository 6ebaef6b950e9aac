//! Two EPP replicas electing one leader on a Lease, and failing over when it stops.

use std::time::Duration;

use epp_discovery::kube::leader::{LeaseTimings, lease_name};
use epp_net::health::ServingStatus;
use epp_testkit::fake_apiserver::{FakeApiServer, Gvr, inference_pool_v1};

use crate::KubeEpp;

const V1: &str = "inference.networking.k8s.io";

fn fast() -> LeaseTimings {
    LeaseTimings {
        lease_duration: Duration::from_millis(1500),
        renew_deadline: Duration::from_millis(1000),
        retry_period: Duration::from_millis(200),
    }
}

async fn replica(server: &FakeApiServer) -> KubeEpp {
    KubeEpp::start_with(server, V1, |o| {
        o.ha_enable_leader_election = true;
        o.lease_timings = fast();
    })
    .await
}

fn readiness(k: &KubeEpp) -> ServingStatus {
    k.epp.running.health.status("readiness")
}

fn holder(server: &FakeApiServer) -> Option<String> {
    let lease = server.get(&Gvr::leases(), "default", &lease_name("default", "pool"))?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

/// Waits until exactly one of `replicas` is ready; returns its index.
async fn one_leader(replicas: &[&KubeEpp]) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ready: Vec<usize> = (0..replicas.len())
            .filter(|&i| readiness(replicas[i]) == ServingStatus::Serving)
            .collect();
        if let [only] = ready.as_slice() {
            return *only;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected one ready leader, got {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_fail_over() {
    let server = FakeApiServer::start().await;
    server.apply(inference_pool_v1(
        "default",
        "pool",
        &[("app", "vllm")],
        &[8000],
        "epp",
    ));
    server.apply_pod("a", "10.0.0.1", &[("app", "vllm")], true, false);
    let first = replica(&server).await;
    let second = replica(&server).await;
    // Both watch the pool (followers stay warm), only one is ready.
    first.until_endpoints(&["10.0.0.1:8000"]).await;
    second.until_endpoints(&["10.0.0.1:8000"]).await;
    let leader = one_leader(&[&first, &second]).await;
    assert!(holder(&server).is_some());
    for k in [&first, &second] {
        assert_eq!(
            k.epp.running.health.status("liveness"),
            ServingStatus::Serving,
            "liveness is always SERVING"
        );
        assert_eq!(
            k.epp.running.health.status("something-else"),
            ServingStatus::ServiceUnknown
        );
    }
    // Let the follower observe a few renewals: it must not steal a live lease.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        one_leader(&[&first, &second]).await,
        leader,
        "no flapping while the leader renews"
    );

    // The leader stops cleanly and releases the lease: the follower takes over quickly.
    let (old, survivor) = if leader == 0 {
        (first, second)
    } else {
        (second, first)
    };
    let started = tokio::time::Instant::now();
    old.epp.running.shutdown(Duration::from_secs(1)).await;
    survivor
        .until("the follower leads", |k| {
            readiness(k) == ServingStatus::Serving
        })
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took over before the lease would expire: {:?}",
        started.elapsed()
    );
    // It was warm: its endpoints were there all along.
    assert_eq!(survivor.endpoints().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_after_the_lease_expires() {
    let server = FakeApiServer::start().await;
    server.apply(inference_pool_v1(
        "default",
        "pool",
        &[("app", "vllm")],
        &[8000],
        "epp",
    ));
    // Another replica (crashed, never renewing) holds the lease.
    server.apply(epp_testkit::fake_apiserver::lease(
        "default",
        &lease_name("default", "pool"),
        Some("crashed-replica"),
        1,
    ));
    let k = replica(&server).await;
    k.until("ready once the stale lease expired", |k| {
        readiness(k) == ServingStatus::Serving
    })
    .await;
    assert_ne!(holder(&server).as_deref(), Some("crashed-replica"));
}
