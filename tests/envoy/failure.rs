//! The EPP stops mid-run: with `failure_mode_allow: false` requests fail fast with a 5xx;
//! with `failure_mode_allow: true` (fail-open.yaml) they are still served; once the EPP
//! is back on the same port, routing resumes. fail-open.yaml buffers the request body:
//! Envoy fails closed anyway once a FULL_DUPLEX_STREAMED body chunk has gone to ext_proc.

use std::time::{Duration, Instant};

use crate::client::{Reply, SELECT, assert_routed, completion};
use crate::harness::{POLL, Setup, Stack, TEST_TIMEOUT, within};

/// Longest a request may take while the EPP is down.
const FAIL_FAST: Duration = Duration::from_secs(5);

/// A completion that the conformance filter pins to simulator 0.
async fn pinned_request(stack: &Stack, n: usize) -> Reply {
    let body = completion(&format!("still there? {n}"), 1);
    let pinned = stack.sims.address(0);
    stack
        .http
        .post(&stack.url("/v1/completions"), &body, &[(SELECT, &pinned)])
        .await
}

/// After a restart Envoy reconnects on the next request: wait for the first success.
async fn wait_until_routed(stack: &Stack) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = pinned_request(stack, 0).await;
        if reply.status == 200 && reply.header("x-e2e-epp-metadata").is_some() {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "not routed again: {}",
            reply.describe()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Five pinned requests, each routed by the EPP to simulator 0.
async fn assert_pinned_requests_routed(stack: &Stack) {
    for n in 0..5 {
        let reply = pinned_request(stack, n).await;
        assert_eq!(assert_routed(&reply), stack.sims.ports[0]);
    }
}

/// After a restart on the same port: the first success, then steady routing.
async fn assert_routing_resumes(stack: &Stack) {
    assert_eq!(
        assert_routed(&wait_until_routed(stack).await),
        stack.sims.ports[0]
    );
    assert_pinned_requests_routed(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epp_down_fails_closed_then_recovers() {
    let mut stack = Setup::new("full-duplex.yaml")
        .plugins("conformance-plugins.yaml")
        .start()
        .await;
    within(TEST_TIMEOUT, async {
        assert_eq!(
            assert_routed(&pinned_request(&stack, 0).await),
            stack.sims.ports[0]
        );

        stack.epp.stop();
        for n in 0..5 {
            let reply = pinned_request(&stack, n).await;
            assert!((500..600).contains(&reply.status), "{}", reply.describe());
            assert!(reply.elapsed < FAIL_FAST, "took {:?}", reply.elapsed);
            assert_eq!(reply.served_by(), None, "{}", reply.describe());
        }

        stack.epp.restart().await;
        assert_routing_resumes(&stack).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epp_down_fails_open_then_recovers() {
    let mut stack = Setup::new("fail-open.yaml")
        .plugins("conformance-plugins.yaml")
        .start()
        .await;
    within(TEST_TIMEOUT, async {
        // The EPP answers: its pick (simulator 0) is used.
        assert_pinned_requests_routed(&stack).await;

        // The EPP is gone: the fallback route serves the pool round robin.
        stack.epp.stop();
        let mut served = Vec::new();
        for n in 0..6 {
            let reply = pinned_request(&stack, n).await;
            assert_eq!(reply.status, 200, "{}", reply.describe());
            assert!(reply.elapsed < FAIL_FAST, "took {:?}", reply.elapsed);
            assert_eq!(
                reply.header("x-e2e-epp-metadata"),
                None,
                "{}",
                reply.describe()
            );
            let port = reply.served_by().expect("a simulator answered");
            assert_eq!(
                reply.header("x-e2e-upstream-host"),
                Some(format!("127.0.0.1:{port}").as_str())
            );
            served.push(port);
        }
        served.sort_unstable();
        served.dedup();
        assert!(served.len() >= 2, "not round robin: {served:?}");

        // Back on the same port: the EPP routes again.
        stack.epp.restart().await;
        assert_routing_resumes(&stack).await;
    })
    .await;
}
