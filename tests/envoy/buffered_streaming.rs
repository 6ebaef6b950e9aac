//! Envoy AI Gateway's `buffered` mode buffers the response too: a streamed completion
//! reaches the client in one piece, and one longer than Envoy's buffer (32 KiB here)
//! fails. Where the gateway allows mode overrides (`allow_mode_override: true`, the
//! `aigateway.envoyproxy.io/allow-mode-override: "true"` annotation), the EPP asks for
//! the response body STREAMED and responses stream again (`--response-body-mode-override`).

use std::time::Duration;

use crate::client::{Reply, assert_routed, completion, sse_usage, streaming, tokens};
use crate::harness::{MODEL, Setup, Stack, TEST_TIMEOUT, within};

/// Long enough to pass Envoy's 32 KiB buffer many times over (about 160 bytes an event).
const LONG: u32 = 4096;

/// One fast simulator: a 1 ms engine step in real time, so 4,096 tokens take about 5 s.
fn long_stream_setup(allow_override: bool) -> Setup {
    let setup = Setup::new("buffered.yaml").servers(1).sim_args(&[
        "--time-scale",
        "1",
        "--step-base-ms",
        "1",
        "--max-output-tokens",
        "4096",
    ]);
    if !allow_override {
        return setup;
    }
    setup.envoy_edit(
        "failure_mode_allow: false",
        "failure_mode_allow: false\n                      allow_mode_override: true",
    )
}

/// Sends the streamed 4,096-token completion through Envoy.
async fn long_stream(stack: &Stack) -> Reply {
    let body = streaming(completion("Write a long review", LONG));
    stack
        .http
        .post(&stack.url("/v1/completions"), &body, &[])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_mode_streams_a_long_response_when_the_gateway_allows_the_override() {
    let stack = long_stream_setup(true).start().await;
    within(TEST_TIMEOUT, async {
        let reply = long_stream(&stack).await;
        assert_routed(&reply);
        let text = reply.text();
        assert!(text.ends_with("data: [DONE]\n\n"), "{}", reply.describe());
        assert!(text.len() > 8 * 32 * 1024, "{} bytes only", text.len());

        // Chunk by chunk over the generation, not in one piece at the end.
        let times = &reply.chunk_times;
        let (first, last) = (times[0], times[times.len() - 1]);
        assert!(times.len() >= 100, "only {} reads", times.len());
        eprintln!(
            "{} reads, first after {first:?}, last after {last:?}",
            times.len()
        );
        assert!(
            last >= Duration::from_secs(1) && first * 4 <= last,
            "first chunk after {first:?}, last after {last:?}"
        );

        let usage = sse_usage(&text).expect("a usage event");
        assert_eq!(tokens(&usage, "completion_tokens"), u64::from(LONG));
        let labels = [("model_name", MODEL), ("target_model_name", MODEL)];
        let page = stack
            .epp_metrics_when(
                "inference_model_output_tokens_sum",
                &labels,
                f64::from(LONG),
            )
            .await;
        let sample = |name| crate::client::sample(&page, name, &labels);
        assert_eq!(
            sample("inference_model_input_tokens_sum"),
            Some(tokens(&usage, "prompt_tokens") as f64)
        );
        assert_eq!(
            sample("inference_model_response_sizes_sum"),
            Some(text.len() as f64)
        );
        assert_eq!(
            sample("inference_model_request_duration_seconds_count"),
            Some(1.0)
        );
    })
    .await;
}

/// Without the permission Envoy ignores the override, and with `off` the EPP sends none:
/// either way the gateway behaves as its config says, which for a long stream is Envoy's
/// own 500 once its buffer is full. A short response still arrives, in one piece.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_mode_without_the_override_behaves_as_configured() {
    for (allowed, epp_args) in [
        (false, &[][..]),
        (true, &["--response-body-mode-override", "off"][..]),
    ] {
        let stack = long_stream_setup(allowed).epp_args(epp_args).start().await;
        within(TEST_TIMEOUT, async {
            let reply = long_stream(&stack).await;
            assert_eq!(
                reply.status,
                500,
                "{allowed} {epp_args:?}: {}",
                reply.describe()
            );

            let body = streaming(completion("Write a short review", 8));
            let reply = stack
                .http
                .post(&stack.url("/v1/completions"), &body, &[])
                .await;
            assert_routed(&reply);
            assert_eq!(
                reply.chunk_times.len(),
                1,
                "one piece: {:?}",
                reply.chunk_times
            );
            assert!(
                reply.text().ends_with("data: [DONE]\n\n"),
                "{}",
                reply.describe()
            );
        })
        .await;
    }
}

/// `none`: the EPP asks not to see the response body at all. The stream reaches the
/// client as generated; the EPP counts the request when Envoy closes the ext_proc
/// stream, without tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_mode_with_none_streams_without_the_epp_seeing_the_body() {
    let stack = long_stream_setup(true)
        .epp_args(&["--response-body-mode-override", "none"])
        .start()
        .await;
    within(TEST_TIMEOUT, async {
        let reply = long_stream(&stack).await;
        assert_routed(&reply);
        assert!(
            reply.text().ends_with("data: [DONE]\n\n"),
            "{}",
            reply.describe()
        );
        let times = &reply.chunk_times;
        assert!(times.len() >= 100, "only {} reads", times.len());

        let labels = [("model_name", MODEL), ("target_model_name", MODEL)];
        let page = stack
            .epp_metrics_when(
                "inference_model_request_duration_seconds_count",
                &labels,
                1.0,
            )
            .await;
        let seconds = crate::client::sample(
            &page,
            "inference_model_request_duration_seconds_sum",
            &labels,
        )
        .expect("a duration");
        assert!(
            seconds >= times[times.len() - 1].as_secs_f64() * 0.5,
            "the duration ({seconds} s) ends near the response's end ({:?})",
            times[times.len() - 1]
        );
        assert_eq!(
            crate::client::sample(&page, "inference_model_output_tokens_count", &labels),
            None
        );
    })
    .await;
}
