//! Saturation detectors: whether the pool can take another request now, or it should wait
//! in the EPP. A plugin point: each detector reads the pool snapshot (scraped metrics and
//! this EPP's in-flight counts) and gives a [`Saturation`].

use std::time::Duration;

use crate::datastore::{Endpoint, EndpointSet, LoadSignal};
use crate::director::SaturationThresholds;

/// What a detector concluded about the pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Saturation {
    /// 0 idle, 1 at the detector's limit, above 1 over it (for the metric).
    pub level: f64,
    /// Requests must wait: the pool is at or over its limit on evidence the detector trusts.
    pub hold: bool,
}

impl Saturation {
    const EMPTY_POOL: Saturation = Saturation {
        level: 1.0,
        hold: true,
    };
}

/// Decides whether the pool is saturated; see the module docs.
pub trait SaturationDetector: Send + Sync {
    /// The config and metric name.
    fn name(&self) -> &'static str;
    fn saturation(&self, pool: &EndpointSet, now: Duration) -> Saturation;
}

// === utilization ===

/// From the model servers' own metrics: each endpoint's load is the larger of its waiting
/// queue over `queue_depth` and its KV-cache usage over `kv_cache_util`; the pool's is the
/// mean over endpoints whose metrics are fresh. Stale endpoints are left out; when all are
/// stale the level reads 1 (saturated, so sheddable traffic is shed as v1.0.1 does), but
/// requests are not held: a pool whose metrics are all stale still routes.
#[derive(Debug, Clone)]
pub struct UtilizationDetector {
    pub thresholds: SaturationThresholds,
}

pub const UTILIZATION: &str = "utilization";

impl SaturationDetector for UtilizationDetector {
    fn name(&self) -> &'static str {
        UTILIZATION
    }

    fn saturation(&self, pool: &EndpointSet, now: Duration) -> Saturation {
        if pool.is_empty() {
            return Saturation::EMPTY_POOL;
        }
        let (mut sum, mut fresh) = (0.0, 0u32);
        for endpoint in pool.endpoints() {
            if let Some(load) = self.load(endpoint, now) {
                sum += load;
                fresh += 1;
            }
        }
        if fresh == 0 {
            return Saturation {
                level: 1.0,
                hold: false,
            };
        }
        let level = sum / f64::from(fresh);
        Saturation {
            level,
            hold: level >= 1.0,
        }
    }
}

impl UtilizationDetector {
    /// The endpoint's load, or `None` when neither signal is fresh. A signal never reported
    /// (the engine's mapping lacks it) counts as 0; one that went stale leaves it out.
    fn load(&self, endpoint: &Endpoint, now: Duration) -> Option<f64> {
        let t = &self.thresholds;
        let fresh = |signal| {
            endpoint
                .signal_updated_at(signal)
                .map(|at| now.saturating_sub(at) <= t.metrics_staleness)
        };
        let (queue, kv) = (fresh(LoadSignal::Queue), fresh(LoadSignal::KvUsage));
        if queue == Some(false) || kv == Some(false) || (queue.is_none() && kv.is_none()) {
            return None;
        }
        let queue_load = match queue {
            Some(true) => endpoint.waiting_queue_size() as f64 / (t.queue_depth.max(1) as f64),
            _ => 0.0,
        };
        let kv_load = match kv {
            Some(true) => endpoint.kv_cache_usage() / t.kv_cache_util,
            _ => 0.0,
        };
        Some(queue_load.max(kv_load))
    }
}

// === concurrency ===

/// From what this EPP has in flight: an endpoint is full at `max_requests` requests or
/// `max_tokens` prompt tokens in flight; the pool holds when every endpoint is full. The
/// level is that of the least loaded endpoint. Needs no scraped metrics, so it also works
/// where the servers expose none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencyDetector {
    pub max_requests: u32,
    pub max_tokens: u64,
}

pub const CONCURRENCY: &str = "concurrency";

impl Default for ConcurrencyDetector {
    fn default() -> Self {
        ConcurrencyDetector {
            max_requests: 100,
            max_tokens: 1_000_000,
        }
    }
}

impl SaturationDetector for ConcurrencyDetector {
    fn name(&self) -> &'static str {
        CONCURRENCY
    }

    fn saturation(&self, pool: &EndpointSet, _now: Duration) -> Saturation {
        let level = pool
            .endpoints()
            .iter()
            .map(|e| {
                let requests = f64::from(e.in_flight()) / f64::from(self.max_requests.max(1));
                let tokens = e.in_flight_tokens() as f64 / (self.max_tokens.max(1) as f64);
                requests.max(tokens)
            })
            .fold(None, |least: Option<f64>, load| {
                Some(least.map_or(load, |l| l.min(load)))
            });
        match level {
            None => Saturation::EMPTY_POOL,
            Some(level) => Saturation {
                level,
                hold: level >= 1.0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::datastore::Datastore;
    use crate::datastore::fixtures::TestEndpoint;
    use crate::time::ManualClock;

    use crate::datastore::fixtures::datastore_on as pool;

    fn utilization(store: &Datastore) -> Saturation {
        let detector = UtilizationDetector {
            thresholds: SaturationThresholds::default(),
        };
        detector.saturation(&store.snapshot(), store.clock().now())
    }

    #[test]
    fn utilization_is_the_mean_of_fresh_endpoint_loads() {
        let clock = Arc::new(ManualClock::new());
        let e = |i: u8, q: u64, kv: f64| {
            TestEndpoint::new(&format!("10.0.0.{i}:8000"))
                .queue(q)
                .kv(kv)
        };
        // Queue 5 of 5 is 1.0; KV 0.4 of 0.8 is 0.5; the pool is at 0.75.
        let store = pool(&clock, &[e(1, 5, 0.1), e(2, 0, 0.4)]);
        assert_eq!(
            utilization(&store),
            Saturation {
                level: 0.75,
                hold: false
            }
        );
        let store = pool(&clock, &[e(1, 10, 0.1), e(2, 0, 0.8)]);
        assert_eq!(
            utilization(&store),
            Saturation {
                level: 1.5,
                hold: true
            }
        );
    }

    #[test]
    fn stale_endpoints_are_left_out_and_all_stale_still_routes() {
        let clock = Arc::new(ManualClock::new());
        let store = pool(
            &clock,
            &[TestEndpoint::new("10.0.0.1:8000").queue(50).kv(0.9)],
        );
        clock.advance(Duration::from_secs(1));
        store
            .upsert_endpoint(TestEndpoint::new("10.0.0.2:8000").spec())
            .expect("add")
            .store_metrics(TestEndpoint::new("x:1").queue(0).kv(0.2).metrics());
        // The saturated endpoint's metrics are a second old: only the fresh one counts.
        assert_eq!(utilization(&store).level, 0.25);
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            utilization(&store),
            Saturation {
                level: 1.0,
                hold: false
            }
        );
    }

    #[test]
    fn an_empty_pool_holds() {
        let clock = Arc::new(ManualClock::new());
        let store = pool(&clock, &[]);
        assert!(utilization(&store).hold);
        let detector = ConcurrencyDetector::default();
        assert!(detector.saturation(&store.snapshot(), Duration::ZERO).hold);
    }

    #[test]
    fn concurrency_holds_when_every_endpoint_is_full() {
        let clock = Arc::new(ManualClock::new());
        let store = pool(
            &clock,
            &[
                TestEndpoint::new("10.0.0.1:8000"),
                TestEndpoint::new("10.0.0.2:8000"),
            ],
        );
        let detector = ConcurrencyDetector {
            max_requests: 2,
            max_tokens: 1_000,
        };
        let check = |store: &Datastore| detector.saturation(&store.snapshot(), Duration::ZERO);
        let endpoints = store.snapshot().endpoints().to_vec();
        let _a = [endpoints[0].start_request(), endpoints[0].start_request()];
        assert_eq!(check(&store).level, 0.0);
        let b = endpoints[1].start_request_with_tokens(999);
        assert!(!check(&store).hold, "{:?}", check(&store));
        let c = endpoints[1].start_request_with_tokens(1);
        assert_eq!(
            check(&store),
            Saturation {
                level: 1.0,
                hold: true
            }
        );
        drop(c);
        assert_eq!(endpoints[1].in_flight_tokens(), 999);
        drop(b);
        assert_eq!(
            (endpoints[1].in_flight(), endpoints[1].in_flight_tokens()),
            (0, 0)
        );
        assert!(!check(&store).hold);
    }
}
