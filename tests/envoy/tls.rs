//! The EPP reached over TLS with its default self-signed certificate, as upstream's e2e
//! config does (Envoy does not verify it).

use crate::client::{assert_routed, chat, completion, sse_usage, streaming};
use crate::harness::{Setup, TEST_TIMEOUT, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_through_a_tls_epp() {
    let stack = Setup::new("full-duplex-tls.yaml").tls().start().await;
    within(TEST_TIMEOUT, async {
        let reply = stack
            .http
            .post(
                &stack.url("/v1/completions"),
                &completion("over TLS", 4),
                &[],
            )
            .await;
        assert_routed(&reply);
        let body = streaming(chat(&[("user", "stream over TLS")], 4));
        let reply = stack
            .http
            .post(&stack.url("/v1/chat/completions"), &body, &[])
            .await;
        assert_routed(&reply);
        assert!(
            reply.text().ends_with("data: [DONE]\n\n"),
            "{}",
            reply.text()
        );
        assert!(sse_usage(&reply.text()).is_some(), "{}", reply.text());
    })
    .await;
}
