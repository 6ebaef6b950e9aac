//! SSE responses pass through Envoy and the EPP chunk by chunk, unchanged, with usage; the
//! EPP counts that usage in its Prometheus metrics.

use std::time::{Duration, Instant};

use crate::client::{
    assert_routed, chat, completion, sample, sse_events, sse_usage, streaming, tokens,
};
use crate::harness::{MODEL, POLL, Setup, TEST_TIMEOUT, within};

const TOKENS: u32 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_passes_through_chunk_by_chunk() {
    // Real time and a 20 ms engine step: one event every 20 ms or more.
    let stack = Setup::new("full-duplex.yaml")
        .sim_args(&["--time-scale", "1", "--step-base-ms", "20"])
        .start()
        .await;
    within(TEST_TIMEOUT, async {
        let requests = [
            ("/v1/completions", completion("Stream a review", TOKENS)),
            (
                "/v1/chat/completions",
                chat(&[("user", "Stream a review")], TOKENS),
            ),
        ];
        for (path, body) in requests {
            let body = streaming(body);
            let reply = stack.http.post(&stack.url(path), &body, &[]).await;
            let port = assert_routed(&reply);
            let content_type = reply.header("content-type").unwrap_or_default();
            assert!(
                content_type.starts_with("text/event-stream"),
                "{content_type}"
            );

            // Chunk by chunk: many reads, spread over the generation (about 240 ms); a
            // buffered body would arrive in one piece.
            let times = &reply.chunk_times;
            assert!(times.len() >= 4, "{path}: only {} chunks", times.len());
            let spread = times[times.len() - 1] - times[0];
            assert!(
                spread >= Duration::from_millis(100),
                "{path}: all chunks within {spread:?}: {times:?}"
            );

            // Intact: the events the same simulator sends directly, then `[DONE]`.
            let text = reply.text();
            assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
            let direct = stack
                .http
                .post(&format!("http://127.0.0.1:{port}{path}"), &body, &[])
                .await;
            assert_eq!(sse_events(&text), sse_events(&direct.text()), "{path}");
            let usage = sse_usage(&text).unwrap_or_else(|| panic!("no usage in {text}"));
            assert_eq!(tokens(&usage, "completion_tokens"), u64::from(TOKENS));
            assert!(tokens(&usage, "prompt_tokens") > 0, "{usage}");
        }
    })
    .await;
}

/// Needs the EPP's `/metrics` on `--metrics-port` (standalone mode: no authentication).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_usage_is_counted_in_metrics() {
    let stack = Setup::new("full-duplex.yaml").start().await;
    within(TEST_TIMEOUT, async {
        let requests = [
            ("/v1/completions", completion("count my tokens", 5)),
            ("/v1/completions", completion("and these tokens, please", 7)),
            (
                "/v1/chat/completions",
                chat(&[("user", "count chat tokens")], 3),
            ),
        ];
        let (mut input, mut output) = (0, 0);
        for (path, body) in requests.iter() {
            let reply = stack
                .http
                .post(&stack.url(path), &streaming(body.clone()), &[])
                .await;
            assert_routed(&reply);
            let usage = sse_usage(&reply.text()).expect("a usage chunk");
            input += tokens(&usage, "prompt_tokens");
            output += tokens(&usage, "completion_tokens");
        }

        // The EPP may record usage as the ext_proc stream ends, after the client has its
        // response: poll until the three requests are counted.
        let url = format!("http://127.0.0.1:{}/metrics", stack.epp.metrics_port);
        let labels = [("model_name", MODEL), ("target_model_name", MODEL)];
        let deadline = Instant::now() + Duration::from_secs(10);
        let page = loop {
            let page = stack.http.fetch_text(&url).await;
            let count = page
                .as_deref()
                .and_then(|p| sample(p, "inference_model_input_tokens_count", &labels));
            match page {
                Some(page) if count == Some(requests.len() as f64) => break page,
                Some(page) => assert!(
                    Instant::now() < deadline,
                    "{url}: inference_model_input_tokens_count{labels:?} is {count:?}, not {} \
                     (start of the page: {})",
                    requests.len(),
                    page.chars().take(2000).collect::<String>()
                ),
                None => assert!(
                    Instant::now() < deadline,
                    "no 200 from {url} (the EPP's --metrics-port) within 10 s"
                ),
            }
            tokio::time::sleep(POLL).await;
        };
        let value = |name| sample(&page, name, &labels);
        assert_eq!(
            value("inference_model_input_tokens_sum"),
            Some(input as f64)
        );
        assert_eq!(
            value("inference_model_output_tokens_sum"),
            Some(output as f64)
        );
        assert_eq!(
            value("inference_model_output_tokens_count"),
            Some(requests.len() as f64)
        );
    })
    .await;
}
