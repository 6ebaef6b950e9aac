//! Precise prefix routing through a real Envoy: the simulators publish their KV-cache events
//! over ZMQ, the EPP subscribes and asks their `/tokenize`, and a prompt that one simulator
//! already ran (sent to it directly, so only its events tell) is routed there, in both body
//! modes. The EPP's metrics then show the events and a prediction that matches the server's
//! reported `cached_tokens`.

use std::time::{Duration, Instant};

use epp_testkit::ports::free_port_run;
use serde_json::json;

use crate::client::{assert_routed, completion, sample};
use crate::harness::{MODEL, POLL, Setup, Stack, TEST_TIMEOUT, within};

/// One test of this file at a time: each picks a run of free ports for its simulators'
/// event sockets, which another's processes could otherwise take in between.
static PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(kv_port: u16) -> String {
    format!(
        "apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-scorer
  parameters:
    blockSize: 16
    kvEventsPort: {kv_port}
    tokenizer: {{source: model-server, timeout: 1s}}
- type: queue-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: precise-prefix-cache-scorer
    weight: 3
  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
"
    )
}

async fn epp_metric(stack: &Stack, name: &str) -> f64 {
    let url = format!("http://127.0.0.1:{}/metrics", stack.epp.metrics_port);
    let page = stack.http.fetch_text(&url).await.unwrap_or_default();
    sample(&page, name, &[]).unwrap_or(0.0)
}

/// Waits until the EPP's precise index holds more than `entries` entries.
async fn until_indexed(stack: &Stack, entries: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = epp_metric(stack, "inference_extension_precise_prefix_index_entries").await;
        if now > entries {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the index stayed at {now} entries"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn precise_routing(envoy_config: &'static str) {
    let _serial = PORTS.lock().await;
    let kv_port = free_port_run(3);
    let stack = Setup::new(envoy_config)
        .sim_args(&["--kv-events-port", &kv_port.to_string()])
        .plugins_text(&config(kv_port))
        .start()
        .await;
    within(TEST_TIMEOUT, async {
        // Let the EPP's subscriptions connect: ZMQ drops what is published before.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (target, topic) in [(2, "kilo"), (0, "lima"), (1, "mike")] {
            let prompt = format!("{topic} ").repeat(300);
            let before =
                epp_metric(&stack, "inference_extension_precise_prefix_index_entries").await;
            let warm = stack
                .http
                .post(
                    &stack.sim_url(target, "/v1/completions"),
                    &completion(&prompt, 1),
                    &[],
                )
                .await;
            assert_eq!(warm.status, 200, "{}", warm.describe());
            until_indexed(&stack, before).await;
            let reply = stack
                .http
                .post(&stack.url("/v1/completions"), &completion(&prompt, 1), &[])
                .await;
            assert_eq!(
                stack.sim_index(assert_routed(&reply)),
                target,
                "{topic}: only simulator {target}'s engine holds this prompt"
            );
            let cached = reply.json()["usage"]["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0);
            assert!(cached >= 16, "the server reported a cache hit: {cached}");
        }
        let applied = sample(
            &stack
                .http
                .fetch_text(&format!(
                    "http://127.0.0.1:{}/metrics",
                    stack.epp.metrics_port
                ))
                .await
                .unwrap_or_default(),
            "inference_extension_kv_events_total",
            &[("outcome", "applied")],
        )
        .unwrap_or(0.0);
        assert!(applied > 0.0, "events applied: {applied}");
        let predicted = epp_metric(
            &stack,
            "inference_extension_precise_prefix_predicted_cached_tokens_total",
        )
        .await;
        let observed = epp_metric(
            &stack,
            "inference_extension_precise_prefix_observed_cached_tokens_total",
        )
        .await;
        assert!(
            predicted > 0.0 && (predicted - observed).abs() <= 0.2 * observed,
            "predicted {predicted} vs observed {observed} cached tokens"
        );
        assert_eq!(
            epp_metric(&stack, "inference_extension_kv_event_gaps_total").await,
            0.0
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precise_routing_full_duplex() {
    precise_routing("full-duplex.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precise_routing_buffered() {
    precise_routing("buffered.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_requests_are_tokenized_and_routed_by_events() {
    // A chat request: the EPP tokenizes it through /tokenize's chat form.
    let _serial = PORTS.lock().await;
    let kv_port = free_port_run(3);
    let stack = Setup::new("full-duplex.yaml")
        .sim_args(&["--kv-events-port", &kv_port.to_string()])
        .plugins_text(&config(kv_port))
        .start()
        .await;
    within(TEST_TIMEOUT, async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "november ".repeat(300)}], "max_tokens": 1});
        let warm = stack
            .http
            .post(&stack.sim_url(1, "/v1/chat/completions"), &body, &[])
            .await;
        assert_eq!(warm.status, 200, "{}", warm.describe());
        until_indexed(&stack, 0.0).await;
        let reply = stack
            .http
            .post(&stack.url("/v1/chat/completions"), &body, &[])
            .await;
        assert_eq!(stack.sim_index(assert_routed(&reply)), 1);
    })
    .await;
}
