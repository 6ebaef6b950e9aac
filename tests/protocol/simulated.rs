//! End to end in one process: `epp --simulate-endpoints` starts simulated vLLM servers,
//! scrapes their real `/metrics` pages, and picks as the queue and KV scorers say.

use std::time::Duration;

use epp_extproc::BodyMode;
use epp_sim::FakeMetrics;
use epp_testkit::driver::{Request, send_request};
use epp_testkit::messages::completion_body;
use epp_testkit::prometheus::sample;

use crate::TestEpp;

const CONFIG: &str = "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n- type: prefix-cache-scorer\n";

async fn simulated(count: usize, simulator_args: &str) -> TestEpp {
    let args = simulator_args.to_owned();
    TestEpp::start_with(&[], CONFIG, move |o| {
        o.endpoint_source = epp::cli::EndpointSource::Simulated(count);
        o.simulate_endpoints = count;
        o.simulator_config = epp_sim::SimArgs::parse(&args.split_whitespace().collect::<Vec<_>>())
            .expect("simulator args")
            .config;
        o.refresh_metrics_interval = Duration::from_millis(20);
        o.refresh_prometheus_metrics_interval = Duration::from_millis(50);
    })
    .await
}

fn fake(waiting: u64, kv: f64) -> Option<FakeMetrics> {
    FakeMetrics::from_json(&format!(
        r#"{{"waiting-requests":{waiting},"kv-cache-usage":{kv}}}"#
    ))
    .ok()
}

/// Waits until the EPP has scraped `waiting` for the endpoint at `index`.
async fn until_scraped(epp: &TestEpp, index: usize, waiting: u64) {
    let address = epp.running.simulated[index].address();
    for _ in 0..500 {
        let snapshot = epp.datastore().snapshot();
        if snapshot
            .get(address)
            .is_some_and(|e| e.metrics_updated_at().is_some() && e.waiting_queue_size() == waiting)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("endpoint {index} never showed a queue of {waiting}");
}

async fn pick(epp: &TestEpp, prompt: &str) -> String {
    let mut stream = epp.stream().await;
    send_request(
        &mut stream,
        BodyMode::FullDuplexStreamed,
        &Request::new(
            &[],
            completion_body("meta-llama/Llama-3.1-8B-Instruct", prompt),
        ),
    )
    .await
    .destination()
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picks_follow_scraped_queue_and_kv() {
    let epp = simulated(3, "").await;
    let sims = &epp.running.simulated;
    let loads = [(5, 0.5), (0, 0.1), (9, 0.9)];
    for (sim, (waiting, kv)) in sims.iter().zip(loads) {
        sim.set_fake_metrics(fake(waiting, kv));
    }
    for (i, (waiting, _)) in loads.iter().enumerate() {
        until_scraped(&epp, i, *waiting).await;
    }
    assert_eq!(pick(&epp, "short").await, sims[1].address().to_string());

    // The load moves: the next scrapes change the pick.
    sims[1].set_fake_metrics(fake(20, 0.95));
    sims[2].set_fake_metrics(fake(0, 0.05));
    until_scraped(&epp, 1, 20).await;
    until_scraped(&epp, 2, 0).await;
    assert_eq!(pick(&epp, "short").await, sims[2].address().to_string());
    // Pool gauges over the fresh endpoints: queues 5, 20, 0 average 25 / 3 = 8 (integer).
    for _ in 0..200 {
        if epp.running.pool_gauges.get().average_queue_size == 8.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gauges = epp.running.pool_gauges.get();
    assert_eq!(
        (gauges.ready_endpoints, gauges.average_queue_size),
        (3, 8.0)
    );
    assert!((gauges.average_kv_cache_utilization - (0.5 + 0.95 + 0.05) / 3.0).abs() < 1e-9);

    // The same values, and the scrapes behind them, on the Prometheus page.
    let page = epp.running.metrics.render();
    let value = |series: &str| -> f64 {
        sample(&page, series).unwrap_or_else(|| panic!("{series} missing:\n{page}"))
    };
    assert!(value("inference_extension_model_server_scrapes_total") >= 6.0);
    assert!(page.contains("inference_pool_ready_pods{name=\""), "{page}");
    assert!(value("inference_extension_model_server_scrape_duration_seconds_count") >= 6.0);
    assert_eq!(
        value(r#"inference_extension_model_server_scrape_failures_total{reason="parse"}"#),
        0.0
    );
    let address = sims[0].address().to_string();
    let age = value(&format!(
        "inference_extension_endpoint_metrics_age_seconds{{endpoint=\"{address}\",model_server_pod=\"{address}\"}}"
    ));
    assert!(age < 2.0, "scraped every 50ms, yet {age}s old");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_queueing_on_one_server_steers_traffic_away() {
    // One sequence at a time and slow decode: a few direct requests build a real queue.
    let epp = simulated(2, "--max-num-seqs 1 --step-base-ms 20").await;
    let busy = epp.running.simulated[0].address();
    epp_net::tls::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut load = Vec::new();
    for _ in 0..4 {
        let client = client.clone();
        load.push(tokio::spawn(async move {
            let body =
                r#"{"model":"meta-llama/Llama-3.1-8B-Instruct","prompt":"load","max_tokens":200}"#;
            let _ = client
                .post(format!("http://{busy}/v1/completions"))
                .body(body)
                .header("content-type", "application/json")
                .send()
                .await;
        }));
    }
    until_scraped(&epp, 0, 3).await;
    until_scraped(&epp, 1, 0).await;
    for i in 0..5 {
        assert_eq!(
            pick(&epp, &format!("request {i}")).await,
            epp.running.simulated[1].address().to_string()
        );
    }
    for task in load {
        task.abort();
    }
}
