//! Requests reach the endpoint the EPP picked, with bodies intact, in FULL_DUPLEX_STREAMED
//! (upstream's e2e config) and BUFFERED (Envoy AI Gateway's `buffered`) body modes; a
//! client cannot choose the backend with its own routing header.

use crate::client::{DESTINATION, SELECT, assert_routed, chat, completion, normalized};
use crate::harness::{ADAPTER, Setup, Stack, TEST_TIMEOUT, within};

/// Completions and chat (one and three messages), as upstream's e2e sends them: each is
/// routed as picked and answered exactly as the same simulator answers it directly; with
/// the rewrite header the simulator sees the rewritten model.
async fn routes_as_picked(stack: &Stack) {
    let requests = [
        (
            "/v1/completions",
            completion("Write as if you were a critic: San Francisco", 8),
        ),
        (
            "/v1/chat/completions",
            chat(
                &[("user", "Write as if you were a critic: San Francisco")],
                8,
            ),
        ),
        (
            "/v1/chat/completions",
            chat(
                &[
                    ("system", "You are a food critic."),
                    ("user", "What is the best dish in San Francisco?"),
                    ("assistant", "Cioppino."),
                ],
                8,
            ),
        ),
    ];
    for (path, body) in &requests {
        let reply = stack.http.post(&stack.url(path), body, &[]).await;
        let port = assert_routed(&reply);
        let direct = stack
            .http
            .post(&format!("http://127.0.0.1:{port}{path}"), body, &[])
            .await;
        assert_eq!(direct.status, 200, "{}", direct.describe());
        assert_eq!(
            normalized(reply.json()),
            normalized(direct.json()),
            "{path}: the response changed on the way"
        );
        // Envoy's access log agrees: the upstream it used is the EPP's pick.
        let id = reply
            .header("x-request-id")
            .expect("Envoy returns the request id");
        let line = stack.envoy.access_log_line(&format!("id={id} ")).await;
        let expected = format!(" 200 - id={id} upstream=127.0.0.1:{port} epp=127.0.0.1:{port} ");
        assert!(line.contains(&expected), "{line}");

        // Upstream e2e: the rewrite header makes the EPP change `model` in the body.
        let rewritten = stack
            .http
            .post(
                &stack.url(path),
                body,
                &[("x-gateway-model-name-rewrite", ADAPTER)],
            )
            .await;
        assert_routed(&rewritten);
        assert_eq!(rewritten.json()["model"], ADAPTER, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_duplex_routes_to_the_pick() {
    let stack = Setup::new("full-duplex.yaml").start().await;
    within(TEST_TIMEOUT, routes_as_picked(&stack)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_routes_to_the_pick() {
    let stack = Setup::new("buffered.yaml").start().await;
    within(TEST_TIMEOUT, async {
        routes_as_picked(&stack).await;
        // A body over the listener's buffer limit (32 KiB) is refused by Envoy itself.
        let big = completion(&"x".repeat(40_000), 1);
        let reply = stack
            .http
            .post(&stack.url("/v1/completions"), &big, &[])
            .await;
        assert_eq!(reply.status, 413, "{}", reply.describe());
        assert_eq!(reply.served_by(), None);
    })
    .await;
}

/// The conformance filter pins simulator 0; the client's own destination header, naming
/// another simulator or a host outside the pool (Envoy's admin port), changes nothing.
async fn client_header_is_overwritten(stack: &Stack) {
    let pinned = stack.sims.address(0);
    let outside = format!("127.0.0.1:{}", stack.envoy.admin_port);
    for target in [stack.sims.address(1), outside] {
        for n in 0..5 {
            let body = completion(&format!("who decides? {n}"), 1);
            let headers = [
                (SELECT, pinned.as_str()),
                (DESTINATION, target.as_str()),
                ("x-gateway-destination-endpoint-subset", target.as_str()),
            ];
            let reply = stack
                .http
                .post(&stack.url("/v1/completions"), &body, &headers)
                .await;
            assert_eq!(assert_routed(&reply), stack.sims.ports[0], "{target}");
        }
        // Bodyless requests are routed by the EPP as well.
        let reply = stack
            .http
            .get(&stack.url("/v1/models"), &[(DESTINATION, target.as_str())])
            .await;
        assert_routed(&reply);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_duplex_ignores_a_client_destination_header() {
    let stack = Setup::new("full-duplex.yaml")
        .plugins("conformance-plugins.yaml")
        .start()
        .await;
    within(TEST_TIMEOUT, client_header_is_overwritten(&stack)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_ignores_a_client_destination_header() {
    let stack = Setup::new("buffered.yaml")
        .plugins("conformance-plugins.yaml")
        .start()
        .await;
    within(TEST_TIMEOUT, client_header_is_overwritten(&stack)).await;
}
