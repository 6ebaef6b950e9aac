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
/// Freshness is judged per signal (see `has_headroom`), as of `now` (a reading of the
/// datastore's clock).
pub fn is_saturated(
    endpoints: &EndpointSet,
    thresholds: &SaturationThresholds,
    now: Duration,
) -> bool {
    !endpoints
        .endpoints()
        .iter()
        .any(|endpoint| has_headroom(endpoint, thresholds, now))
}

/// Whether `endpoint` shows headroom: its queue and its KV usage are each either fresh and
/// within the threshold, or never reported (the mapping may not scrape that signal), and
/// at least one of them is fresh. A signal that went stale (scrapes failing, or pages that
/// now lack it or report NaN, negative or infinite values) is no evidence of headroom.
fn has_headroom(endpoint: &Endpoint, thresholds: &SaturationThresholds, now: Duration) -> bool {
    let age = |signal| {
        endpoint
            .signal_updated_at(signal)
            .map(|at| now.saturating_sub(at))
    };
    let within = |signal: LoadSignal, ok: bool| match age(signal) {
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
    use std::sync::Arc;

    use super::*;
    use crate::datastore::fixtures::TestEndpoint;
    use crate::datastore::{Datastore, MetricsUpdate};
    use crate::time::ManualClock;

    use crate::datastore::fixtures::datastore_on as pool;

    fn saturated(store: &Datastore, thresholds: &SaturationThresholds) -> bool {
        is_saturated(&store.snapshot(), thresholds, store.clock().now())
    }

    #[test]
    fn saturation_table() {
        let t = SaturationThresholds::default();
        let clock = Arc::new(ManualClock::new());
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
        for (i, (endpoints, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                saturated(&pool(&clock, &endpoints), &t),
                expected,
                "case {i}"
            );
        }
    }

    #[test]
    fn stale_metrics_do_not_count() {
        let t = SaturationThresholds::default();
        let clock = Arc::new(ManualClock::new());
        let store = pool(
            &clock,
            &[TestEndpoint::new("10.0.0.1:8000").queue(0).kv(0.0)],
        );
        assert!(!saturated(&store, &t));
        clock.advance(Duration::from_millis(201));
        assert!(saturated(&store, &t));
    }

    #[test]
    fn each_signal_must_be_fresh_or_never_reported() {
        let t = SaturationThresholds::default();
        let clock = Arc::new(ManualClock::new());
        // A fresh, short queue but a KV usage that stopped being valid 201 ms ago.
        let store = pool(
            &clock,
            &[TestEndpoint::new("10.0.0.1:8000").queue(0).kv(0.1)],
        );
        clock.advance(Duration::from_millis(201));
        let endpoint = Arc::clone(&store.snapshot().endpoints()[0]);
        endpoint.store_metrics(MetricsUpdate {
            waiting_queue_size: Some(0),
            ..MetricsUpdate::default()
        });
        assert!(saturated(&store, &t));
        // A server that never reports KV usage (not mapped) is judged by its queue.
        let queue_only = pool(&clock, &[TestEndpoint::new("10.0.0.1:8000").queue(0)]);
        assert!(!saturated(&queue_only, &t));
    }
}
