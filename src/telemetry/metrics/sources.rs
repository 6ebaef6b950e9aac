//! What the scrape-time metrics read: the datastore, the pool gauges, the scraper's stats and
//! the prefix indexes, plus the bookkeeping that keeps scrape counters monotonic.

use std::collections::HashMap;
use std::sync::Arc;

use crate::datalayer::pool_gauges::PoolGaugesCell;
use crate::datalayer::scraper::{ScrapeFailure, ScrapeStats, ScrapeStatsMap};
use crate::datastore::{Datastore, EndpointId};
use crate::prefix::PrefixIndex;

/// Sources of the metrics computed when Prometheus scrapes.
#[derive(Debug, Clone)]
pub struct MetricSources {
    /// Endpoints (per-pod queue, metric ages) and the pool, whose name labels the pool
    /// gauges (v1.0.1 `PoolGet`; without a pool no pool metric is exported).
    pub datastore: Arc<Datastore>,
    /// The pool averages, recomputed every `--refresh-prometheus-metrics-interval`.
    pub pool_gauges: Arc<PoolGaugesCell>,
    /// Scrape counters per endpoint; `None` when nothing is scraped.
    pub scrape_stats: Option<ScrapeStatsMap>,
    /// The indexes of every `prefix-cache-scorer`; empty when none is configured (then the
    /// prefix size gauges are absent, as upstream).
    pub prefix_indexes: Vec<Arc<PrefixIndex>>,
}

/// Scrapes, then failures in `ScrapeFailure::ALL` order.
pub(crate) type ScrapeCounts = [u64; 1 + ScrapeFailure::ALL.len()];

fn read_counts(stats: &ScrapeStats) -> ScrapeCounts {
    let mut counts = [0; 1 + ScrapeFailure::ALL.len()];
    counts[0] = stats.scrapes.load(std::sync::atomic::Ordering::Relaxed);
    for (slot, kind) in counts[1..].iter_mut().zip(ScrapeFailure::ALL) {
        *slot = stats.failures(kind);
    }
    counts
}

fn add(into: &mut ScrapeCounts, counts: &ScrapeCounts) {
    for (total, n) in into.iter_mut().zip(counts) {
        *total = total.saturating_add(*n);
    }
}

/// Totals over every endpoint ever scraped. The scraper forgets an endpoint's stats when it
/// leaves the pool; its counts as of the last render are kept here, so the exported
/// counters never go down (increments after that render are lost).
#[derive(Debug, Default)]
pub(crate) struct ScrapeTotals {
    last_seen: HashMap<EndpointId, ScrapeCounts>,
    retired: ScrapeCounts,
}

impl ScrapeTotals {
    /// Folds in the current stats and returns the totals.
    pub(crate) fn update(&mut self, stats: &ScrapeStatsMap) -> ScrapeCounts {
        let current: HashMap<EndpointId, ScrapeCounts> = stats
            .read()
            .iter()
            .map(|(id, s)| (*id, read_counts(s)))
            .collect();
        for (id, counts) in self.last_seen.drain() {
            if !current.contains_key(&id) {
                add(&mut self.retired, &counts);
            }
        }
        let mut totals = self.retired;
        for counts in current.values() {
            add(&mut totals, counts);
        }
        self.last_seen = current;
        totals
    }
}

/// Per-endpoint scrape stats by id, for the per-endpoint gauges.
pub(crate) fn stats_by_id(stats: &ScrapeStatsMap) -> HashMap<EndpointId, Arc<ScrapeStats>> {
    stats
        .read()
        .iter()
        .map(|(id, s)| (*id, Arc::clone(s)))
        .collect()
}

/// `model_server_pod` of an endpoint: its name without the `namespace/` prefix (v1.0.1 uses
/// the pod's `NamespacedName.Name`); standalone names (`ip:port`) are kept.
pub(crate) fn pod_name(endpoint_name: &str) -> &str {
    endpoint_name
        .rsplit_once('/')
        .map_or(endpoint_name, |(_, name)| name)
}
