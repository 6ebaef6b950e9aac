//! `/metrics`: format, families, labels and the fake-metrics override.

use serde_json::json;

use super::*;

const FAMILIES: [&str; 13] = [
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "vllm:lora_requests_info",
    "vllm:cache_config_info",
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
    "vllm:num_preemptions_total",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:request_success_total",
    "vllm:time_to_first_token_seconds_bucket",
];

#[tokio::test]
async fn the_page_parses_and_has_every_family() {
    let config = SimConfig {
        lora_modules: vec!["a".into()],
        max_loras: 2,
        ..fast()
    };
    let sim = start_local(config).await;
    post(
        &sim,
        "/v1/completions",
        &json!({"prompt": "warm up", "max_tokens": 2}),
    )
    .await;
    let reply = get(&sim, "/metrics").await;
    assert_eq!(reply.server, sim.address().port().to_string());
    let samples = parse_metrics(&reply.body);
    for family in FAMILIES
        .iter()
        .chain(&["vllm:e2e_request_latency_seconds_count"])
    {
        assert!(
            samples.iter().any(|s| s.name == *family),
            "{family} missing"
        );
    }
    let model = sim.config().model.as_str();
    let common = [("model_name", model), ("engine", "0")];
    assert_eq!(
        sample_value(&samples, "vllm:num_requests_running", &common),
        Some(0.0)
    );
    assert_eq!(
        sample_value(&samples, "vllm:generation_tokens_total", &common),
        Some(2.0)
    );
    assert_eq!(
        sample_value(&samples, "vllm:prompt_tokens_total", &common),
        Some(2.0)
    );
    let success = [("model_name", model), ("finished_reason", "length")];
    assert_eq!(
        sample_value(&samples, "vllm:request_success_total", &success),
        Some(1.0)
    );
    let cache = [("block_size", "16"), ("num_gpu_blocks", "6250")];
    assert_eq!(
        sample_value(&samples, "vllm:cache_config_info", &cache),
        Some(1.0)
    );
    let lora = samples
        .iter()
        .find(|s| s.name == "vllm:lora_requests_info")
        .unwrap();
    assert_eq!(lora.labels["max_lora"], "2");
    assert!(lora.value > 1.6e9, "a Unix time");
    // Histograms: +Inf bucket equals the count; buckets are vLLM's.
    let ttft_inf = [("le", "+Inf")];
    assert_eq!(
        sample_value(
            &samples,
            "vllm:time_to_first_token_seconds_bucket",
            &ttft_inf
        ),
        Some(1.0)
    );
    assert_eq!(
        sample_value(&samples, "vllm:time_to_first_token_seconds_count", &[]),
        Some(1.0)
    );
    let first_le = [("le", "0.001")];
    assert!(
        sample_value(
            &samples,
            "vllm:time_to_first_token_seconds_bucket",
            &first_le
        )
        .is_some()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_old_gpu_cache_gauge_can_be_turned_off() {
    let sim = start_local(SimConfig {
        kv_usage_metric: KvUsageMetric::KvCacheOnly,
        ..fast()
    })
    .await;
    let samples = scrape(&sim).await;
    assert!(sample_value(&samples, "vllm:kv_cache_usage_perc", &[]).is_some());
    assert!(sample_value(&samples, "vllm:gpu_cache_usage_perc", &[]).is_none());
    sim.shutdown().await;
}

fn loaded() -> FakeMetrics {
    FakeMetrics {
        running_requests: Some(10),
        waiting_requests: Some(30),
        kv_cache_usage: Some(0.4),
        loras: Some(vec![FakeLora {
            running: "a,b".into(),
            waiting: "c".into(),
            timestamp: 1.7e9,
        }]),
    }
}

#[tokio::test]
async fn fake_metrics_override_and_reset_through_the_api() {
    let sim = start_local(fast()).await;
    sim.set_fake_metrics(Some(loaded()));
    let samples = scrape(&sim).await;
    assert_eq!(
        sample_value(&samples, "vllm:num_requests_running", &[]),
        Some(10.0)
    );
    assert_eq!(
        sample_value(&samples, "vllm:num_requests_waiting", &[]),
        Some(30.0)
    );
    assert_eq!(
        sample_value(&samples, "vllm:kv_cache_usage_perc", &[]),
        Some(0.4)
    );
    assert_eq!(
        sample_value(&samples, "vllm:gpu_cache_usage_perc", &[]),
        Some(0.4)
    );
    let lora = [
        ("running_lora_adapters", "a,b"),
        ("waiting_lora_adapters", "c"),
    ];
    assert_eq!(
        sample_value(&samples, "vllm:lora_requests_info", &lora),
        Some(1.7e9)
    );
    // The engine still serves, and its real stats are untouched.
    let reply = post(
        &sim,
        "/v1/completions",
        &json!({"prompt": "x", "max_tokens": 1}),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(sim.stats().running, 0);

    sim.set_fake_metrics(None);
    assert_eq!(gauge(&sim, "vllm:num_requests_waiting").await, 0.0);
    assert_eq!(gauge(&sim, "vllm:kv_cache_usage_perc").await, 0.0);
    sim.shutdown().await;
}

#[tokio::test]
async fn fake_metrics_fields_are_optional_and_settable_over_http() {
    let fake = FakeMetrics::from_json(r#"{"waiting-requests": 7}"#).unwrap();
    let sim = start_local(SimConfig {
        fake_metrics: Some(fake),
        ..fast()
    })
    .await;
    assert_eq!(gauge(&sim, "vllm:num_requests_waiting").await, 7.0);
    assert_eq!(
        gauge(&sim, "vllm:num_requests_running").await,
        0.0,
        "absent: real value"
    );

    let put = |body: &'static str| {
        client()
            .put(format!("{}/sim/fake-metrics", sim.url()))
            .body(body)
    };
    assert_eq!(send(put(r#"{"kv-cache-usage": 0.9}"#)).await.status, 200);
    assert_eq!(gauge(&sim, "vllm:kv_cache_usage_perc").await, 0.9);
    assert_eq!(
        gauge(&sim, "vllm:num_requests_waiting").await,
        0.0,
        "replaced, not merged"
    );
    assert_eq!(send(put(r#"{"kv-cache-usage": 2}"#)).await.status, 400);
    assert_eq!(send(put(r#"{"bogus": 1}"#)).await.status, 400);
    assert_eq!(
        get(&sim, "/sim/fake-metrics").await.json(),
        json!({"kv-cache-usage": 0.9})
    );
    assert_eq!(
        send(client().delete(format!("{}/sim/fake-metrics", sim.url())))
            .await
            .status,
        200
    );
    assert_eq!(sim.fake_metrics(), None);
    sim.shutdown().await;
}
