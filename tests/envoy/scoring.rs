//! Scoring through the proxy with the upstream default plugins (queue, KV cache, prefix
//! cache) and the default 50 ms metrics refresh: load on the simulators and shared prompt
//! prefixes steer where Envoy sends requests.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::client::{assert_routed, completion, sample};
use crate::harness::{MODEL, POLL, Setup, Stack, TEST_TIMEOUT, within};

/// The KV-cache usage (0..1) that simulator `i` reports.
async fn kv_usage(stack: &Stack, i: usize) -> f64 {
    let page = stack.http.fetch_text(&stack.sim_url(i, "/metrics")).await;
    page.and_then(|p| sample(&p, "vllm:gpu_cache_usage_perc", &[]))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_endpoint_gets_more_traffic() {
    // Real time and a small KV cache (16,000 tokens), so a few long requests fill half of it.
    let stack = Setup::new("full-duplex.yaml")
        .sim_args(&["--time-scale", "1", "--num-gpu-blocks", "1000"])
        .start()
        .await;
    within(TEST_TIMEOUT, async {
        // Load simulators 0 and 1 directly: two requests each with 4000-token prompts that
        // generate for about 15 s. They run batched, so a request the EPP sends there
        // before it sees the load is only slowed, not queued behind them.
        let mut load = tokio::task::JoinSet::new();
        for i in 0..2 {
            for n in 0..2 {
                let (http, url) = (stack.http.clone(), stack.sim_url(i, "/v1/completions"));
                let prompt = format!("load {n} ").repeat(2_000);
                let body =
                    json!({"model": MODEL, "prompt": prompt, "sim": {"output_tokens": 2000}});
                load.spawn(async move { http.post(&url, &body, &[]).await });
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while kv_usage(&stack, 0).await < 0.4 || kv_usage(&stack, 1).await < 0.4 {
            assert!(
                Instant::now() < deadline,
                "the simulators did not take the load"
            );
            tokio::time::sleep(POLL).await;
        }

        // Requests through Envoy: the EPP scrapes every 50 ms, so after the first one or
        // two it sees the KV usage and sends everything to simulator 2.
        let mut served = [0; 3];
        for n in 0..20 {
            let body = completion(&format!("idle or busy? {n}"), 1);
            let reply = stack
                .http
                .post(&stack.url("/v1/completions"), &body, &[])
                .await;
            served[stack.sim_index(assert_routed(&reply))] += 1;
        }
        assert!(served[2] >= 15, "served per simulator: {served:?}");
        load.abort_all();
    })
    .await;
}

/// A long, group-specific system prompt (about 2000 characters, 30 prefix blocks).
fn group_prefix(group: usize) -> String {
    (0..250).map(|w| format!("g{group}w{w} ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_prefix_sticks_to_one_endpoint() {
    let stack = Setup::new("full-duplex.yaml").start().await;
    within(TEST_TIMEOUT, async {
        // Four prefix groups, interleaved, five questions each.
        const GROUPS: usize = 4;
        let mut served: Vec<Vec<u16>> = vec![Vec::new(); GROUPS];
        for round in 0..5 {
            for (group, ports) in served.iter_mut().enumerate() {
                let prompt = format!("{}\nQuestion {round}: which dish?", group_prefix(group));
                let reply = stack
                    .http
                    .post(&stack.url("/v1/completions"), &completion(&prompt, 2), &[])
                    .await;
                ports.push(assert_routed(&reply));
            }
        }
        for (group, ports) in served.iter().enumerate() {
            assert!(
                ports.iter().all(|&p| p == ports[0]),
                "group {group} moved between endpoints: {served:?}"
            );
        }
    })
    .await;
}
