//! Flow control through a real Envoy: with the pool saturated, requests wait in the EPP
//! (their ext_proc streams held open), interactive traffic overtakes batch traffic, and
//! Envoy's `message_timeout` bounds how long a request may wait.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::client::{assert_routed, completion};
use crate::harness::{MODEL, Setup, Stack, TEST_TIMEOUT, within};

/// One simulator, full at one in-flight request; requests wait up to 10 s.
const CONFIG: &str = "apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
saturationDetector:
  type: concurrency
  maxConcurrency: 1
flowControl:
  requestTTL: 10s
";

/// 12 output tokens at a 20 ms engine step: about 250 ms per request, one at a time.
const TOKENS: u32 = 12;

fn setup(objectives: &std::path::Path) -> Setup {
    Setup::new("full-duplex.yaml")
        .servers(1)
        .sim_args(&["--time-scale", "1", "--step-base-ms", "20"])
        .plugins_text(CONFIG)
        .epp_args(&["--objectives-file", &objectives.display().to_string()])
}

fn objectives() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        file.path(),
        "- {name: chat, priority: 10}\n- {name: batch, priority: 0}\n",
    )
    .expect("write objectives");
    file
}

/// Sends one request naming `objective` after `delay`; returns its status and when it ended.
async fn request(stack: &Stack, objective: &'static str, delay: Duration) -> (u16, Instant) {
    {
        tokio::time::sleep(delay).await;
        let body = completion(&format!("a {objective} request"), TOKENS);
        let reply = stack
            .http
            .post(
                &stack.url("/v1/completions"),
                &body,
                &[("x-gateway-inference-objective", objective)],
            )
            .await;
        if reply.status == 200 {
            assert_routed(&reply);
        }
        (reply.status, Instant::now())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_requests_overtake_waiting_batch_requests() {
    let objectives = objectives();
    let stack = setup(objectives.path()).start().await;
    within(TEST_TIMEOUT, async {
        // One batch request takes the only slot; three more batch requests queue behind it,
        // then one chat request arrives last.
        let ms = Duration::from_millis;
        let (first, a, b, c, chat) = tokio::join!(
            request(&stack, "batch", ms(0)),
            request(&stack, "batch", ms(60)),
            request(&stack, "batch", ms(80)),
            request(&stack, "batch", ms(100)),
            request(&stack, "chat", ms(120)),
        );
        for (status, _) in [first, a, b, c, chat] {
            assert_eq!(status, 200);
        }
        // Served one at a time: the chat request right after the first, before every
        // batch request that waited longer.
        let ends = [first.1, chat.1, a.1, b.1, c.1];
        assert!(
            ends.windows(2).all(|w| w[0] < w[1]),
            "completion order first, chat, a, b, c: {:?}",
            ends.map(|e| e.duration_since(first.1))
        );

        let url = format!("http://127.0.0.1:{}/metrics", stack.epp.metrics_port);
        let page = stack.http.fetch_text(&url).await.unwrap_or_default();
        let dispatched = |priority: &str| {
            crate::client::sample(
                &page,
                "inference_extension_flow_control_dispatches_total",
                &[("priority", priority)],
            )
        };
        assert_eq!(dispatched("10"), Some(1.0), "{page}");
        assert_eq!(dispatched("0"), Some(3.0));
    })
    .await;
}

/// Envoy gives each ext_proc message `message_timeout` for its reply in BUFFERED mode: a
/// request held longer fails in Envoy (fail closed) although the EPP would have routed it,
/// and the EPP takes it out of the queue when Envoy closes the stream. The EPP asks for
/// more time (`override_message_timeout`, its request TTL), which Envoy grants only up to
/// the filter's `max_message_timeout`. In FULL_DUPLEX_STREAMED mode Envoy 1.40 starts no
/// such timer: the request waits for its slot. Measured with `message_timeout: 0.1s` and a
/// wait of about 250 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_message_timeout_bounds_the_wait_in_buffered_mode_only() {
    for (config, timeout, expected) in [
        ("buffered.yaml", "message_timeout: 0.1s", 504),
        (
            "buffered.yaml",
            "message_timeout: 0.1s\n                      max_message_timeout: 20s",
            200,
        ),
        ("full-duplex.yaml", "message_timeout: 0.1s", 200),
    ] {
        let current = match config {
            "buffered.yaml" => "message_timeout: 300s",
            _ => "message_timeout: 1000s",
        };
        let objectives = objectives();
        let stack = Setup::new(config)
            .servers(1)
            .sim_args(&["--time-scale", "1", "--step-base-ms", "20"])
            .plugins_text(CONFIG)
            .epp_args(&[
                "--objectives-file",
                &objectives.path().display().to_string(),
            ])
            .envoy_edit(current, timeout)
            .start()
            .await;
        within(TEST_TIMEOUT, async {
            let ms = Duration::from_millis;
            let started = Instant::now();
            let (first, waiting) = tokio::join!(
                request(&stack, "batch", ms(0)),
                request(&stack, "chat", ms(50)),
            );
            assert_eq!(first.0, 200);
            eprintln!(
                "{config} ({timeout:?}): held past message_timeout: status {} after {:?}",
                waiting.0,
                waiting.1.duration_since(started)
            );
            assert_eq!(waiting.0, expected, "{config}");
            if expected != 200 {
                assert!(waiting.1 < first.1, "it failed before a slot freed up");
            }

            // Nothing stays queued for a client Envoy already answered.
            let url = format!("http://127.0.0.1:{}/metrics", stack.epp.metrics_port);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let page = stack.http.fetch_text(&url).await.unwrap_or_default();
                let waiting_now = crate::client::sample(
                    &page,
                    "inference_extension_flow_control_queue_size",
                    &[("priority", "10")],
                );
                if waiting_now.is_none_or(|n| n == 0.0) {
                    break;
                }
                assert!(Instant::now() < deadline, "still queued: {waiting_now:?}");
                tokio::time::sleep(ms(25)).await;
            }
            let body = json!({"model": MODEL, "prompt": "after", "max_tokens": 1});
            let reply = stack
                .http
                .post(&stack.url("/v1/completions"), &body, &[])
                .await;
            assert_eq!(reply.status, 200, "{}", reply.describe());
        })
        .await;
    }
}
