//! Admission: sheddable requests (priority < 0) are dropped while the pool is saturated.

use std::time::Duration;

use crate::datastore::{Endpoint, EndpointSet, LoadSignal};

/// Saturation thresholds (v1.0.1 env `SD_QUEUE_DEPTH_THRESHOLD`,
/// `SD_KV_CACHE_UTIL_THRESHOLD`, `SD_METRICS_STALENESS_THRESHOLD`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SaturationThresholds {
    /// An endpoint with more waiting requests than this is saturated (default 5).
    pub queue_depth: u64,
    /// An endpoint with a higher KV-cache usage fraction is saturated (default 0.8).
    pub kv_cache_util: f64,
    /// Metrics older than this do not count as evidence of headroom (default 200ms).
    pub metrics_staleness: Duration,
}

impl Default for SaturationThresholds {
    fn default() -> Self {
        SaturationThresholds {
            queue_depth: 5,
            kv_cache_util: 0.8,
            metrics_staleness: Duration::from_millis(200),
        }
    }
}

/// v1.0.1 `SaturationDetector.IsSaturated`: the pool has headroom if **any** endpoint has
/// metrics no older than the staleness threshold, a queue no deeper than the threshold and
/// a KV-cache usage no higher than the threshold. An empty pool is saturated.
///
/// Freshness is judged per signal (see `has_headroom`).
pub fn is_saturated(endpoints: &EndpointSet, thresholds: &SaturationThresholds) -> bool {
    !endpoints
        .endpoints()
        .iter()
        .any(|endpoint| has_headroom(endpoint, thresholds))
}

/// Whether `endpoint` shows headroom: its queue and its KV usage are each either fresh and
/// within the threshold, or never reported (the mapping may not scrape that signal), and
/// at least one of them is fresh. A signal that went stale (scrapes failing, or pages that
/// now lack it or report NaN, negative or infinite values) is no evidence of headroom.
fn has_headroom(endpoint: &Endpoint, thresholds: &SaturationThresholds) -> bool {
    let within = |signal: LoadSignal, ok: bool| match endpoint.signal_age(signal) {
        None => Some(true),
        Some(age) if age <= thresholds.metrics_staleness && ok => Some(true),
        Some(_) => None,
    };
    let queue = within(
        LoadSignal::Queue,
        endpoint.waiting_queue_size() <= thresholds.queue_depth,
    );
    let kv = within(
        LoadSignal::KvUsage,
        endpoint.kv_cache_usage() <= thresholds.kv_cache_util,
    );
    let any_reported = [LoadSignal::Queue, LoadSignal::KvUsage]
        .into_iter()
        .any(|s| endpoint.signal_updated_at(s).is_some());
    queue.is_some() && kv.is_some() && any_reported
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::fixtures::TestEndpoint;
    use crate::datastore::{Datastore, MetricsUpdate};

    fn pool(endpoints: &[TestEndpoint]) -> Datastore {
        let store = Datastore::new(100);
        for e in endpoints {
            let added = store.upsert_endpoint(e.spec()).expect("add");
            if e.metrics() != MetricsUpdate::default() {
                added.store_metrics(e.metrics());
            }
        }
        store
    }

    #[tokio::test(start_paused = true)]
    async fn saturation_table() {
        let t = SaturationThresholds::default();
        let e = |q: u64, kv: f64| TestEndpoint::new("10.0.0.1:8000").queue(q).kv(kv);
        let cases = [
            (vec![], true),
            (vec![e(0, 0.1)], false),
            (vec![e(5, 0.8)], false),
            (vec![e(6, 0.1)], true),
            (vec![e(0, 0.81)], true),
            (
                vec![
                    e(6, 0.1),
                    TestEndpoint::new("10.0.0.2:8000").queue(1).kv(0.2),
                ],
                false,
            ),
            (vec![TestEndpoint::new("10.0.0.1:8000")], true),
        ];
        for (i, (endpoints, saturated)) in cases.into_iter().enumerate() {
            assert_eq!(
                is_saturated(&pool(&endpoints).snapshot(), &t),
                saturated,
                "case {i}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stale_metrics_do_not_count() {
        let t = SaturationThresholds::default();
        let store = pool(&[TestEndpoint::new("10.0.0.1:8000").queue(0).kv(0.0)]);
        assert!(!is_saturated(&store.snapshot(), &t));
        tokio::time::advance(Duration::from_millis(201)).await;
        assert!(is_saturated(&store.snapshot(), &t));
    }

    #[tokio::test(start_paused = true)]
    async fn each_signal_must_be_fresh_or_never_reported() {
        let t = SaturationThresholds::default();
        // A fresh, short queue but a KV usage that stopped being valid 201 ms ago.
        let store = pool(&[TestEndpoint::new("10.0.0.1:8000").queue(0).kv(0.1)]);
        tokio::time::advance(Duration::from_millis(201)).await;
        let endpoint = std::sync::Arc::clone(&store.snapshot().endpoints()[0]);
        endpoint.store_metrics(MetricsUpdate {
            waiting_queue_size: Some(0),
            ..MetricsUpdate::default()
        });
        assert!(is_saturated(&store.snapshot(), &t));
        // A server that never reports KV usage (not mapped) is judged by its queue.
        let queue_only = pool(&[TestEndpoint::new("10.0.0.1:8000").queue(0)]);
        assert!(!is_saturated(&queue_only.snapshot(), &t));
    }
}
