//! In-flight accounting: a burst that arrives between two scrapes spreads out when the
//! `inflight-load-scorer` is configured, and herds onto one endpoint without it.

use std::collections::HashMap;

use epp_extproc::BodyMode;
use epp_testkit::driver::{Request, send_request};
use epp_testkit::{ExtProcStream, metrics};

use crate::TestEpp;

const PODS: [&str; 4] = [
    "10.0.0.1:8000",
    "10.0.0.2:8000",
    "10.0.0.3:8000",
    "10.0.0.4:8000",
];
const BURST: usize = 40;

const WITHOUT_IN_FLIGHT: &str = "
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
  - pluginRef: kv-cache-utilization-scorer
";

/// Weight 2: one more request in flight outweighs the full point the queue scorer gives
/// an endpoint whose last scraped queue was one request shorter.
const WITH_IN_FLIGHT: &str = "
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: inflight-load-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
  - pluginRef: kv-cache-utilization-scorer
  - pluginRef: inflight-load-scorer
    weight: 2
";

/// Sends a burst of concurrent requests whose streams stay open (responses not yet
/// back), and counts where they went.
async fn burst(config: &str) -> HashMap<String, usize> {
    let epp = TestEpp::start(&PODS, config).await;
    // The last scrape said endpoint 1 is slightly less loaded than the others.
    epp.set_metrics(PODS[0], metrics(0, 0.2, &[]));
    for pod in &PODS[1..] {
        epp.set_metrics(pod, metrics(1, 0.2, &[]));
    }
    let client = epp.client().await;
    let mut tasks = Vec::new();
    for i in 0..BURST {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = ExtProcStream::open(client).await;
            let body = format!(r#"{{"model":"m","prompt":"request {i}"}}"#).into_bytes();
            let outcome = send_request(
                &mut stream,
                BodyMode::FullDuplexStreamed,
                &Request::new(&[], body),
            )
            .await;
            (outcome.destination().to_owned(), stream)
        }));
    }
    let mut counts = HashMap::new();
    let mut open_streams = Vec::new();
    for task in tasks {
        let (destination, stream) = task.await.expect("request task");
        *counts.entry(destination).or_insert(0) += 1;
        open_streams.push(stream);
    }
    let in_flight: u32 = epp
        .datastore()
        .snapshot()
        .endpoints()
        .iter()
        .map(|e| e.in_flight())
        .sum();
    assert_eq!(in_flight as usize, BURST, "every open stream is counted");
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_herds_without_in_flight_accounting() {
    let counts = burst(WITHOUT_IN_FLIGHT).await;
    assert_eq!(
        counts.get(PODS[0]),
        Some(&BURST),
        "upstream behaviour: the whole burst hits one endpoint: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_spreads_with_in_flight_accounting() {
    let counts = burst(WITH_IN_FLIGHT).await;
    assert_eq!(
        counts.len(),
        PODS.len(),
        "every endpoint gets some: {counts:?}"
    );
    let max = counts.values().copied().max().unwrap_or(0);
    assert!(max <= BURST / 4 + 3, "close to an even spread: {counts:?}");
}
