//! Engine behaviour seen over HTTP: queueing, prefix caching, KV usage, LoRA, independence,
//! determinism, aborts.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::*;

/// Sends `count` requests concurrently, each forced to `output` tokens.
fn spawn_requests(
    sim: &RunningSim,
    count: usize,
    model: Option<&str>,
    output: usize,
) -> JoinSet<Reply> {
    let mut tasks = JoinSet::new();
    for i in 0..count {
        let url = sim.url();
        let mut body = json!({"prompt": format!("request {i}"), "sim": {"output_tokens": output}});
        if let Some(model) = model {
            body["model"] = json!(model);
        }
        tasks.spawn(async move { post_url(&url, "/v1/completions", &body).await });
    }
    tasks
}

async fn join_ok(tasks: JoinSet<Reply>) {
    for reply in tasks.join_all().await {
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
}

#[tokio::test]
async fn requests_beyond_max_num_seqs_wait() {
    let sim = start_local(SimConfig {
        max_num_seqs: 2,
        ..fast()
    })
    .await;
    let tasks = spawn_requests(&sim, 5, None, 500);
    wait_until("2 running and 3 waiting on /metrics", || async {
        let samples = scrape(&sim).await;
        let running = sample_value(&samples, "vllm:num_requests_running", &[]);
        let waiting = sample_value(&samples, "vllm:num_requests_waiting", &[]);
        (running, waiting) == (Some(2.0), Some(3.0))
    })
    .await;
    join_ok(tasks).await;
    let stats = sim.stats();
    assert_eq!(
        (stats.running, stats.waiting, stats.requests_finished),
        (0, 0, 5)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_repeated_long_prompt_hits_the_prefix_cache_and_starts_sooner() {
    // Real time: a cold 8000-token prefill is modelled at 287 ms, a cached one at about 8 ms.
    let sim = start_local(SimConfig::default()).await;
    let prompt: String = (0..4000).map(|i| format!("w{i:06} ")).collect(); // 8000 tokens
    let body = json!({"prompt": prompt, "max_tokens": 1, "stream": true});

    stream(&sim, "/v1/completions", &body).await.chunks();
    let cold = sim.stats();
    assert_eq!(cold.prefix_cache_hits, 0);
    stream(&sim, "/v1/completions", &body).await.chunks();
    let warm = sim.stats();
    assert_eq!(
        warm.prefix_cache_hits,
        8000 - 16,
        "all full blocks but the last token's"
    );
    assert_eq!(warm.prefix_cache_queries, 16_000);
    assert_eq!(gauge(&sim, "vllm:prefix_cache_hits_total").await, 7984.0);
    // Times to first token as the server measured them (client timing is too noisy on a
    // loaded machine).
    let cold_ttft = cold.ttft_sum_seconds;
    let warm_ttft = warm.ttft_sum_seconds - cold.ttft_sum_seconds;
    assert!(
        cold_ttft > 0.25,
        "cold TTFT {cold_ttft}s is modelled at 0.287s"
    );
    assert!(
        warm_ttft * 2.0 < cold_ttft,
        "cached TTFT {warm_ttft}s vs cold {cold_ttft}s"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn kv_usage_rises_with_load_and_falls_back() {
    let sim = start_local(SimConfig {
        num_gpu_blocks: 1000,
        ..fast()
    })
    .await;
    let mut tasks = JoinSet::new();
    for i in 0..4 {
        let url = sim.url();
        let prompt = format!("{i}{}", "y".repeat(8000)); // 2001 tokens
        let body = json!({"prompt": prompt, "sim": {"output_tokens": 300}});
        tasks.spawn(async move { post_url(&url, "/v1/completions", &body).await });
    }
    wait_until("KV usage above 0.4", || async {
        gauge(&sim, "vllm:kv_cache_usage_perc").await > 0.4
    })
    .await;
    assert!(sim.stats().kv_cache_usage > 0.4);
    join_ok(tasks).await;
    assert_eq!(gauge(&sim, "vllm:kv_cache_usage_perc").await, 0.0);
    assert_eq!(gauge(&sim, "vllm:gpu_cache_usage_perc").await, 0.0);
    assert!(sim.stats().cached_blocks > 0, "freed blocks stay cached");
    sim.check_invariants().unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn a_second_adapter_waits_for_the_only_lora_slot() {
    let config = SimConfig {
        lora_modules: vec!["a".into(), "b".into()],
        max_loras: 1,
        ..fast()
    };
    let sim = start_local(config).await;
    let first = spawn_requests(&sim, 1, Some("a"), 400);
    wait_until("adapter a running", || async {
        sim.stats().running_loras == "a"
    })
    .await;
    let second = spawn_requests(&sim, 1, Some("b"), 5);
    wait_until("b waiting behind a", || async {
        let samples = scrape(&sim).await;
        let labels = [
            ("max_lora", "1"),
            ("running_lora_adapters", "a"),
            ("waiting_lora_adapters", "b"),
        ];
        sample_value(&samples, "vllm:lora_requests_info", &labels).is_some()
            && sample_value(&samples, "vllm:num_requests_waiting", &[]) == Some(1.0)
    })
    .await;
    join_ok(second).await;
    assert_eq!(
        sim.stats().requests_finished,
        2,
        "b ran only after a finished"
    );
    join_ok(first).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn servers_in_one_process_have_independent_state() {
    let sims = start_many(fast(), IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 2)
        .await
        .unwrap();
    let (a, b) = (&sims[0], &sims[1]);
    assert_ne!(a.address().port(), b.address().port());
    for _ in 0..3 {
        let reply = post(
            a,
            "/v1/completions",
            &json!({"prompt": "same text for both", "max_tokens": 2}),
        )
        .await;
        assert_eq!(reply.server, a.address().port().to_string());
    }
    let reply = post(
        b,
        "/v1/completions",
        &json!({"prompt": "same text for both", "max_tokens": 2}),
    )
    .await;
    assert_eq!(reply.server, b.address().port().to_string());
    assert_eq!(
        reply.json()["usage"]["prompt_tokens_details"]["cached_tokens"],
        0,
        "b has its own cache"
    );
    assert_eq!(
        (a.stats().requests_finished, b.stats().requests_finished),
        (3, 1)
    );

    b.set_fake_metrics(Some(FakeMetrics {
        waiting_requests: Some(9),
        ..FakeMetrics::default()
    }));
    assert_eq!(gauge(a, "vllm:num_requests_waiting").await, 0.0);
    assert_eq!(gauge(b, "vllm:num_requests_waiting").await, 9.0);
    for sim in sims {
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn the_same_seed_and_requests_give_the_same_outputs() {
    let config = |seed| SimConfig {
        seed,
        output_length: OutputLength::Random,
        ..fast()
    };
    let (a, b, c) = (
        start_local(config(7)).await,
        start_local(config(7)).await,
        start_local(config(8)).await,
    );
    let mut outputs: [Vec<Value>; 3] = Default::default();
    for i in 0..5 {
        let body = json!({"prompt": format!("prompt {i}"), "max_tokens": 40});
        for (sim, out) in [&a, &b, &c].into_iter().zip(outputs.iter_mut()) {
            let v = post(sim, "/v1/completions", &body).await.json();
            out.push(json!([
                v["choices"][0]["text"],
                v["usage"]["completion_tokens"]
            ]));
        }
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_ne!(outputs[0], outputs[2], "another seed gives other outputs");
    let lengths: Vec<u64> = outputs[0].iter().map(|o| o[1].as_u64().unwrap()).collect();
    assert!(
        lengths.iter().all(|&n| (1..=40).contains(&n)),
        "{lengths:?}"
    );
    for sim in [a, b, c] {
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_client_that_leaves_aborts_its_request() {
    let sim = start_local(fast()).await;
    let body = json!({"prompt": "long", "stream": true, "sim": {"output_tokens": 3000}});
    let response = client()
        .post(format!("{}/v1/completions", sim.url()))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let mut chunks = response.bytes_stream();
    assert!(chunks.next().await.is_some(), "the stream started");
    drop(chunks);
    wait_until("the abort", || async { sim.stats().requests_aborted == 1 }).await;
    let stats = sim.stats();
    assert_eq!((stats.running, stats.kv_cache_usage), (0, 0.0));
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_in_flight_requests() {
    let sim = start_local(fast()).await;
    let request = client()
        .post(format!("{}/v1/completions", sim.url()))
        .body(json!({"prompt": "long", "sim": {"output_tokens": 4000}}).to_string());
    let pending = tokio::spawn(request.send());
    wait_until("the request running", || async { sim.stats().running == 1 }).await;
    tokio::time::timeout(TIMEOUT, sim.shutdown()).await.unwrap();
    let outcome = pending.await.unwrap();
    assert!(outcome.is_err(), "no answer after shutdown: {outcome:?}");
}
