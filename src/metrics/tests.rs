//! The scrape-time families: pool gauges, per-endpoint gauges, scrape counters.

use std::sync::Arc;
use std::time::Duration;

use epp_core::datastore::fixtures::TestEndpoint;
use epp_core::datastore::{Datastore, MetricsUpdate, PoolInfo};
use epp_core::telemetry::metrics::{EppMetrics, MetricsLimits};
use epp_datalayer::pool_gauges::PoolGaugesCell;

use super::{MetricSources, SourcesCollector};

#[test]
fn pool_and_endpoint_gauges_come_from_the_sources() {
    let metrics = EppMetrics::new(MetricsLimits::default());
    let datastore = Arc::new(Datastore::new(100));
    datastore.set_pool(PoolInfo {
        name: "pool".into(),
        namespace: "default".into(),
        target_ports: vec![8000],
    });
    let add = |address: &str, name: &str| {
        let mut spec = TestEndpoint::new(address).spec();
        spec.name = name.to_owned();
        datastore
            .upsert_endpoint(spec)
            .expect("room for the endpoint")
    };
    add("10.0.0.1:8000", "default/vllm-0").store_metrics(MetricsUpdate {
        waiting_queue_size: Some(3),
        kv_cache_usage: Some(0.25),
        ..MetricsUpdate::default()
    });
    let second = add("10.0.0.2:8000", "default/vllm-1");
    let in_flight = [second.start_request(), second.start_request()];
    let gauges = Arc::new(PoolGaugesCell::default());
    SourcesCollector::register(
        &metrics,
        MetricSources {
            datastore: Arc::clone(&datastore),
            pool_gauges: Arc::clone(&gauges),
            scrape_stats: None,
            prefix_indexes: Vec::new(),
            precise_indexes: Vec::new(),
        },
    );
    let page = metrics.render();
    // No refresh has found a fresh endpoint yet: the pool averages are absent.
    assert!(!page.contains("inference_pool_ready_pods"), "{page}");
    assert!(page.contains(
        "inference_pool_per_pod_queue_size{model_server_pod=\"vllm-0\",name=\"pool\"} 3\n"
    ));
    assert!(page.contains(
        "inference_extension_endpoint_metrics_age_seconds{endpoint=\"10.0.0.2:8000\",model_server_pod=\"vllm-1\"} +Inf\n"
    ));
    assert!(!page.contains("inference_extension_prefix_indexer_size"));
    assert!(page.contains(
        "inference_extension_endpoint_in_flight_requests{endpoint=\"10.0.0.2:8000\",model_server_pod=\"vllm-1\"} 2\n"
    ));
    drop(in_flight);

    let computed =
        epp_datalayer::pool_gauges::compute(&datastore.snapshot(), Duration::from_secs(5));
    gauges.set(computed.expect("one endpoint is fresh"));
    let page = metrics.render();
    assert!(
        page.contains("inference_pool_ready_pods{name=\"pool\"} 1\n"),
        "{page}"
    );
    assert!(page.contains("inference_pool_average_queue_size{name=\"pool\"} 3\n"));
    assert!(page.contains("inference_pool_average_kv_cache_utilization{name=\"pool\"} 0.25\n"));
}
