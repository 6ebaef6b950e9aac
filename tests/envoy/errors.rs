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
