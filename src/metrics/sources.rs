//! The families computed when Prometheus scrapes, from the datastore, the pool gauges, the
//! scraper's stats and the prefix indexes, plus the bookkeeping that keeps scrape counters
//! monotonic. Registered on [`EppMetrics`] by the wiring; the metrics module knows none of
//! these types.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use epp_core::datastore::{Datastore, EndpointId};
use epp_core::prefix::precise::PreciseStats;
use epp_core::prefix::{PreciseIndex, PrefixIndex};
use epp_core::telemetry::metrics::definitions as defs;
use epp_core::telemetry::metrics::{Collector, EppMetrics, Exposition};
use epp_datalayer::pool_gauges::PoolGaugesCell;
use epp_datalayer::scraper::{ScrapeFailure, ScrapeStats, ScrapeStatsMap};

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
    /// The indexes of every `precise-prefix-cache-scorer` (summed); empty: families absent.
    pub precise_indexes: Vec<Arc<PreciseIndex>>,
}

/// Scrapes, then failures in `ScrapeFailure::ALL` order.
type ScrapeCounts = [u64; 1 + ScrapeFailure::ALL.len()];

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
struct ScrapeTotals {
    last_seen: HashMap<EndpointId, ScrapeCounts>,
    retired: ScrapeCounts,
}

impl ScrapeTotals {
    /// Folds in the current stats and returns the totals.
    fn update(&mut self, stats: &ScrapeStatsMap) -> ScrapeCounts {
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
fn stats_by_id(stats: &ScrapeStatsMap) -> HashMap<EndpointId, Arc<ScrapeStats>> {
    stats
        .read()
        .iter()
        .map(|(id, s)| (*id, Arc::clone(s)))
        .collect()
}

/// `model_server_pod` of an endpoint: its name without the `namespace/` prefix (v1.0.1 uses
/// the pod's `NamespacedName.Name`); standalone names (`ip:port`) are kept.
fn pod_name(endpoint_name: &str) -> &str {
    endpoint_name
        .rsplit_once('/')
        .map_or(endpoint_name, |(_, name)| name)
}

/// The [`Collector`] of [`MetricSources`].
#[derive(Debug)]
pub struct SourcesCollector {
    sources: MetricSources,
    /// Keeps the scrape counters monotonic when endpoints (and their stats) go away.
    totals: Mutex<ScrapeTotals>,
}

impl SourcesCollector {
    /// Registers `sources` on `metrics`: from now on every page carries their families.
    pub fn register(metrics: &EppMetrics, sources: MetricSources) {
        metrics.register_collector(Arc::new(SourcesCollector {
            sources,
            totals: Mutex::new(ScrapeTotals::default()),
        }));
    }
}

impl Collector for SourcesCollector {
    fn collect(&self, page: &mut Exposition) {
        let sources = &self.sources;
        let endpoints = sources.datastore.snapshot();
        if let Some(pool) = sources.datastore.pool() {
            let gauges = sources.pool_gauges.get();
            // Set only by a refresh that found a fresh endpoint (v1.0.1 sets nothing before).
            if gauges.ready_endpoints > 0 {
                let name = [pool.name.as_str()];
                page.family(&defs::POOL_AVG_KV_CACHE)
                    .sample(&name, gauges.average_kv_cache_utilization);
                page.family(&defs::POOL_AVG_QUEUE_SIZE)
                    .sample(&name, gauges.average_queue_size);
                page.family(&defs::POOL_READY_PODS)
                    .sample(&name, gauges.ready_endpoints as f64);
            }
            let mut per_pod = page.family(&defs::POOL_PER_POD_QUEUE_SIZE);
            for endpoint in endpoints.endpoints() {
                let name = endpoint.name();
                per_pod.sample(
                    &[pod_name(&name), pool.name.as_str()],
                    endpoint.waiting_queue_size() as f64,
                );
            }
        }

        let stats = sources.scrape_stats.as_ref().map(stats_by_id);
        let mut age = page.family(&defs::ENDPOINT_METRICS_AGE);
        for endpoint in endpoints.endpoints() {
            let name = endpoint.name();
            let seconds = endpoint
                .metrics_age()
                .map_or(f64::INFINITY, |age| age.as_secs_f64());
            age.sample(&[endpoint.address_text(), pod_name(&name)], seconds);
        }
        let mut in_flight = page.family(&defs::ENDPOINT_IN_FLIGHT);
        for endpoint in endpoints.endpoints() {
            let name = endpoint.name();
            in_flight.sample(
                &[endpoint.address_text(), pod_name(&name)],
                f64::from(endpoint.in_flight()),
            );
        }
        if let Some(stats) = &stats {
            let mut last = page.family(&defs::ENDPOINT_LAST_SCRAPE_DURATION);
            for endpoint in endpoints.endpoints() {
                let Some(stat) = stats.get(&endpoint.id()) else {
                    continue;
                };
                if stat.scrapes.load(Ordering::Relaxed) == 0 {
                    continue;
                }
                let micros = stat.last_duration_micros.load(Ordering::Relaxed);
                let name = endpoint.name();
                last.sample(
                    &[endpoint.address_text(), pod_name(&name)],
                    micros as f64 / 1e6,
                );
            }
        }
        if let Some(map) = &sources.scrape_stats {
            let totals = self.totals.lock().update(map);
            page.family(&defs::SCRAPES_TOTAL)
                .sample(&[], totals[0] as f64);
            let mut failures = page.family(&defs::SCRAPE_FAILURES_TOTAL);
            for (kind, count) in ScrapeFailure::ALL.iter().zip(&totals[1..]) {
                failures.sample(&[kind.as_str()], *count as f64);
            }
        }

        if !sources.prefix_indexes.is_empty() {
            let entries: usize = sources.prefix_indexes.iter().map(|i| i.len()).sum();
            let bytes: usize = sources
                .prefix_indexes
                .iter()
                .map(|i| i.memory_bytes())
                .sum();
            page.family(&defs::PREFIX_INDEXER_SIZE)
                .sample(&[], entries as f64);
            page.family(&defs::PREFIX_INDEXER_MEMORY)
                .sample(&[], bytes as f64);
        }
        if !sources.precise_indexes.is_empty() {
            let now = sources.datastore.clock().now();
            render_precise(page, sources.precise_indexes.iter().map(|i| i.stats(now)));
        }
    }
}

/// The precise prefix families, summed over the configured precise scorers.
fn render_precise(page: &mut Exposition, all: impl Iterator<Item = PreciseStats>) {
    let mut sum = PreciseStats::default();
    for s in all {
        sum.entries += s.entries;
        sum.bytes += s.bytes;
        sum.unreliable_endpoints += s.unreliable_endpoints;
        sum.batches += s.batches;
        sum.events_received += s.events_received;
        sum.events_applied += s.events_applied;
        sum.gaps += s.gaps;
        sum.missed_batches += s.missed_batches;
        sum.predicted_cached_tokens += s.predicted_cached_tokens;
        sum.observed_cached_tokens += s.observed_cached_tokens;
        sum.observed_prompt_tokens += s.observed_prompt_tokens;
        for (reason, n) in s.events_dropped {
            *sum.events_dropped.entry(reason).or_default() += n;
        }
        for (reason, n) in s.fallback_switches {
            *sum.fallback_switches.entry(reason).or_default() += n;
        }
    }
    let gauges = [
        (&defs::PRECISE_INDEX_ENTRIES, sum.entries),
        (&defs::PRECISE_INDEX_MEMORY, sum.bytes),
        (
            &defs::PRECISE_UNRELIABLE_ENDPOINTS,
            sum.unreliable_endpoints,
        ),
    ];
    for (def, value) in gauges {
        page.family(def).sample(&[], value as f64);
    }
    let counters = [
        (&defs::KV_EVENT_BATCHES, sum.batches),
        (&defs::KV_EVENT_GAPS, sum.gaps),
        (&defs::KV_EVENT_MISSED_BATCHES, sum.missed_batches),
        (
            &defs::PRECISE_PREDICTED_CACHED_TOKENS,
            sum.predicted_cached_tokens,
        ),
        (
            &defs::PRECISE_OBSERVED_CACHED_TOKENS,
            sum.observed_cached_tokens,
        ),
        (
            &defs::PRECISE_OBSERVED_PROMPT_TOKENS,
            sum.observed_prompt_tokens,
        ),
    ];
    for (def, value) in counters {
        page.family(def).sample(&[], value as f64);
    }
    let mut events = page.family(&defs::KV_EVENTS);
    events.sample(&["received"], sum.events_received as f64);
    events.sample(&["applied"], sum.events_applied as f64);
    let mut dropped = page.family(&defs::KV_EVENTS_DROPPED);
    for (reason, n) in &sum.events_dropped {
        dropped.sample(&[reason], *n as f64);
    }
    let mut switches = page.family(&defs::PRECISE_FALLBACK_SWITCHES);
    for (reason, n) in &sum.fallback_switches {
        switches.sample(&[reason], *n as f64);
    }
}
