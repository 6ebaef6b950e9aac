//! The pool gauges of v1.0.1 (`inference_pool_average_kv_cache_utilization`,
//! `inference_pool_average_queue_size`, `inference_pool_ready_pods`), recomputed every
//! `--refresh-prometheus-metrics-interval` and kept for the metrics exporter.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

#[cfg(doc)]
use epp_core::datastore::Endpoint;
use epp_core::datastore::{Datastore, EndpointSet, LoadSignal};

/// One computation of the pool gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PoolGauges {
    /// Mean KV-cache usage (0..1) over endpoints with a fresh KV usage; 0 when none has.
    pub average_kv_cache_utilization: f64,
    /// Total waiting requests divided by the count of endpoints with a fresh queue,
    /// rounded down (v1.0.1 uses integer division); 0 when none has.
    pub average_queue_size: f64,
    /// Endpoints with fresh metrics: some load signal no older than
    /// `--metrics-staleness-threshold` ([`Endpoint::metrics_age`]).
    pub ready_endpoints: usize,
}

/// v1.0.1 `logger.go` `flushPrometheusMetricsOnce`: the gauges over fresh endpoints, or
/// `None` when no endpoint is fresh (the previous values are then kept). Each average
/// reads only the endpoints whose value of that signal is fresh, so a stale or invalid
/// reading does not count as a real one.
pub fn compute(endpoints: &EndpointSet, staleness: Duration) -> Option<PoolGauges> {
    let is_fresh = |age: Option<Duration>| age.is_some_and(|age| age <= staleness);
    let ready = endpoints
        .endpoints()
        .iter()
        .filter(|e| is_fresh(e.metrics_age()))
        .count();
    if ready == 0 {
        return None;
    }
    let fresh = |signal: LoadSignal| {
        endpoints
            .endpoints()
            .iter()
            .filter(move |e| is_fresh(e.signal_age(signal)))
    };
    let (mut kv, mut kv_count) = (0.0, 0u32);
    for e in fresh(LoadSignal::KvUsage) {
        kv += e.kv_cache_usage();
        kv_count += 1;
    }
    let (mut queue, mut queue_count) = (0u64, 0u64);
    for e in fresh(LoadSignal::Queue) {
        queue = queue.saturating_add(e.waiting_queue_size());
        queue_count += 1;
    }
    Some(PoolGauges {
        average_kv_cache_utilization: if kv_count == 0 {
            0.0
        } else {
            kv / f64::from(kv_count)
        },
        average_queue_size: queue.checked_div(queue_count).unwrap_or(0) as f64,
        ready_endpoints: ready,
    })
}

/// The latest gauges, shared with whoever exports them.
#[derive(Debug, Default)]
pub struct PoolGaugesCell(ArcSwap<PoolGauges>);

impl PoolGaugesCell {
    pub fn get(&self) -> PoolGauges {
        **self.0.load()
    }

    pub fn set(&self, gauges: PoolGauges) {
        self.0.store(Arc::new(gauges));
    }
}

/// Recomputes the gauges every `interval` until dropped.
pub async fn run(
    datastore: Arc<Datastore>,
    cell: Arc<PoolGaugesCell>,
    interval: Duration,
    staleness: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Some(gauges) = compute(&datastore.snapshot(), staleness) {
            cell.set(gauges);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use epp_core::datastore::fixtures::TestEndpoint;

    fn store(endpoints: &[TestEndpoint]) -> Arc<Datastore> {
        let store = Arc::new(Datastore::new(10));
        for e in endpoints {
            store
                .upsert_endpoint(e.spec())
                .expect("add")
                .store_metrics(e.metrics());
        }
        store
    }

    #[tokio::test(start_paused = true)]
    async fn averages_over_fresh_endpoints_with_integer_queue_division() {
        let s = store(&[
            TestEndpoint::new("10.0.0.1:8000").queue(3).kv(0.2),
            TestEndpoint::new("10.0.0.2:8000").queue(4).kv(0.4),
        ]);
        let gauges = compute(&s.snapshot(), Duration::from_secs(2)).expect("fresh");
        assert_eq!(gauges.ready_endpoints, 2);
        assert!((gauges.average_kv_cache_utilization - 0.3).abs() < 1e-12);
        assert_eq!(gauges.average_queue_size, 3.0, "7 / 2 rounds down");
    }

    #[tokio::test(start_paused = true)]
    async fn each_average_reads_fresh_values_of_its_signal_only() {
        let s = store(&[
            TestEndpoint::new("10.0.0.1:8000").queue(3).kv(0.2),
            TestEndpoint::new("10.0.0.2:8000").queue(9).kv(0.9),
        ]);
        tokio::time::advance(Duration::from_secs(3)).await;
        // The first keeps reporting both; the second only its queue (its KV went invalid),
        // and a third never reported anything valid.
        let snapshot = s.snapshot();
        snapshot.endpoints()[0].store_metrics(
            TestEndpoint::new("10.0.0.1:8000")
                .queue(1)
                .kv(0.4)
                .metrics(),
        );
        snapshot.endpoints()[1]
            .store_metrics(TestEndpoint::new("10.0.0.2:8000").queue(5).metrics());
        s.upsert_endpoint(TestEndpoint::new("10.0.0.3:8000").spec())
            .expect("add");
        let gauges = compute(&s.snapshot(), Duration::from_secs(2)).expect("fresh");
        assert_eq!(gauges.ready_endpoints, 2);
        assert!(
            (gauges.average_kv_cache_utilization - 0.4).abs() < 1e-12,
            "{gauges:?}"
        );
        assert_eq!(gauges.average_queue_size, 3.0);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_pool_keeps_previous_values() {
        let s = store(&[TestEndpoint::new("10.0.0.1:8000").queue(5).kv(0.5)]);
        let cell = Arc::new(PoolGaugesCell::default());
        let task = tokio::spawn(run(
            Arc::clone(&s),
            Arc::clone(&cell),
            Duration::from_secs(5),
            Duration::from_secs(2),
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(cell.get().ready_endpoints, 1);
        assert_eq!(cell.get().average_queue_size, 5.0);
        // Metrics go stale: the next ticks find no fresh endpoint and keep the values.
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(cell.get().ready_endpoints, 1);
        assert!(compute(&s.snapshot(), Duration::from_secs(2)).is_none());
        task.abort();
    }
}
