//! Requests the EPP does not schedule: bodyless requests go to some endpoint (v1.0.1: a
//! random one), a body over `--max-request-body-bytes` gets 413, and a body that is not an
//! OpenAI request gets 400, each answered without reaching a model server.

use crate::client::{assert_routed, completion};
use crate::harness::{Setup, TEST_TIMEOUT, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodyless_oversized_and_invalid_requests() {
    let stack = Setup::new("full-duplex.yaml")
        .epp_args(&["--max-request-body-bytes", "4096"])
        .start()
        .await;
    within(TEST_TIMEOUT, async {
        for path in ["/v1/models", "/health"] {
            let reply = stack.http.get(&stack.url(path), &[]).await;
            assert_routed(&reply);
        }

        // Just under the limit is served; over it, the EPP answers 413.
        let under = completion(&"y".repeat(3_900), 1);
        assert!(serde_json::to_vec(&under).expect("json").len() <= 4096);
        assert_routed(
            &stack
                .http
                .post(&stack.url("/v1/completions"), &under, &[])
                .await,
        );
        let over = completion(&"y".repeat(8_000), 1);
        let reply = stack
            .http
            .post(&stack.url("/v1/completions"), &over, &[])
            .await;
        assert_eq!(reply.status, 413, "{}", reply.describe());
        assert!(
            reply
                .text()
                .starts_with("inference gateway: PayloadTooLarge"),
            "{}",
            reply.describe()
        );
        assert_eq!(reply.served_by(), None);

        let invalid: [(&[u8], &str); 3] = [
            (b"{\"model\": ", "Error unmarshaling request body"),
            (b"not json at all", "Error unmarshaling request body"),
            (b"{\"prompt\": \"no model\"}", "model"),
        ];
        for (body, message) in invalid {
            let reply = stack
                .http
                .post_raw(&stack.url("/v1/completions"), body.to_vec(), &[])
                .await;
            assert_eq!(reply.status, 400, "{}", reply.describe());
            let text = reply.text();
            assert!(
                text.starts_with("inference gateway: BadRequest - ") && text.contains(message),
                "{}",
                reply.describe()
            );
            assert_eq!(reply.served_by(), None);
        }
    })
    .await;
}

/// A BUFFERED body over the EPP's gRPC decode limit (`--max-request-body-bytes` + 1 MiB)
/// arrives as one message the EPP cannot read. It must not end the ext_proc stream with
/// OK (Envoy would forward the request unrouted): the client gets 413 and no model server
/// sees the request, under `failure_mode_allow: false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_message_over_the_decode_limit_is_refused_not_forwarded() {
    let stack = Setup::new("buffered.yaml")
        // Envoy's buffer (4 MiB) holds more than the EPP decodes (1 KiB + 1 MiB).
        .envoy_edit(
            "per_connection_buffer_limit_bytes: 32768",
            "per_connection_buffer_limit_bytes: 4194304",
        )
        .epp_args(&["--max-request-body-bytes", "1024"])
        .start()
        .await;
    within(TEST_TIMEOUT, async {
        let over = completion(&"y".repeat(1_500_000), 1);
        let reply = stack
            .http
            .post(&stack.url("/v1/completions"), &over, &[])
            .await;
        assert_eq!(reply.status, 413, "{}", reply.describe());
        assert!(
            reply
                .text()
                .starts_with("inference gateway: PayloadTooLarge"),
            "{}",
            reply.describe()
        );
        assert_eq!(reply.served_by(), None, "{}", reply.describe());
        // The stack still routes a small request.
        assert_routed(
            &stack
                .http
                .post(&stack.url("/v1/completions"), &completion("hi", 1), &[])
                .await,
        );
    })
    .await;
}
