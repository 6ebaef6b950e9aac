//! The EPP's own Prometheus metrics, served on `--metrics-port` with the names, types, labels,
//! buckets and help texts of the Go EPP v1.0.1, so its dashboards and alerts keep working.
//!
//! # Exported metrics
//!
//! Upstream (v1.0.1 `pkg/epp/metrics`), recorded through [`EppMetrics`] on the request path:
//!
//! | name | type | labels |
//! |---|---|---|
//! | `inference_model_request_total` | counter | model_name, target_model_name |
//! | `inference_model_request_error_total` | counter | error_code, model_name, target_model_name |
//! | `inference_model_request_duration_seconds` | histogram | model_name, target_model_name |
//! | `inference_model_request_sizes` | histogram | model_name, target_model_name |
//! | `inference_model_response_sizes` | histogram | model_name, target_model_name |
//! | `inference_model_input_tokens` | histogram | model_name, target_model_name |
//! | `inference_model_output_tokens` | histogram | model_name, target_model_name |
//! | `inference_model_normalized_time_per_output_token_seconds` | histogram | model_name, target_model_name |
//! | `inference_model_running_requests` | gauge | model_name |
//! | `inference_extension_scheduler_e2e_duration_seconds` | histogram | — |
//! | `inference_extension_plugin_duration_seconds` | histogram | extension_point, plugin_name, plugin_type |
//! | `inference_extension_prefix_indexer_hit_ratio` | histogram | — |
//! | `inference_extension_prefix_indexer_hit_bytes` | histogram | — |
//! | `inference_extension_info` | gauge (= 1) | build_ref, commit |
//!
//! Upstream, collected when Prometheus scrapes (by the [`Collector`]s the `epp` wiring registers):
//!
//! | name | type | labels | source |
//! |---|---|---|---|
//! | `inference_pool_average_kv_cache_utilization` | gauge | name | `PoolGaugesCell` |
//! | `inference_pool_average_queue_size` | gauge | name | `PoolGaugesCell` |
//! | `inference_pool_ready_pods` | gauge | name | `PoolGaugesCell` |
//! | `inference_pool_per_pod_queue_size` | gauge | model_server_pod, name | every datastore endpoint |
//! | `inference_extension_prefix_indexer_size` | gauge | — | entries of every `PrefixIndex` |
//!
//! This EPP's own (not in v1.0.1):
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `inference_extension_request_phase_duration_seconds` | histogram | phase | EPP time per [`Phase`]: body_wait, parse, tokenize, schedule, respond |
//! | `inference_extension_picks_total` | counter | reason | picks by `PickReason::as_str` (scheduled, random_bodyless, …) |
//! | `inference_extension_ext_proc_streams` | gauge | — | open ext_proc streams |
//! | `inference_extension_prefix_indexer_memory_bytes` | gauge | — | `PrefixIndex::memory_bytes`, summed |
//! | `inference_extension_model_server_scrapes_total` | counter | — | model-server scrapes |
//! | `inference_extension_model_server_scrape_failures_total` | counter | reason | transport, timeout, status, too_large, parse |
//! | `inference_extension_model_server_scrape_duration_seconds` | histogram | — | fed by [`EppMetrics::scrape_duration`] |
//! | `inference_extension_endpoint_metrics_age_seconds` | gauge | endpoint, model_server_pod | age of each endpoint's metrics, `+Inf` if never scraped |
//! | `inference_extension_endpoint_last_scrape_duration_seconds` | gauge | endpoint, model_server_pod | duration of each endpoint's last scrape |
//! | `inference_extension_endpoint_in_flight_requests` | gauge | endpoint, model_server_pod | requests this EPP has in flight per endpoint (pick to end of stream) |
//! | `inference_extension_metric_label_overflow_total` | counter | label_set | lookups folded into `other` (model_pair, model, plugin) |
//! | `inference_extension_model_server_unusable_metrics_total` | counter | reason | scrapes whose load metrics were unusable: invalid_value, no_configured_metrics, missing_metric |
//! | `inference_extension_buffered_request_bytes` | gauge | — | request-body bytes buffered by all streams |
//! | `inference_extension_buffer_budget_rejections_total` | counter | — | 503s for `--max-buffered-request-bytes` |
//! | `inference_extension_precise_prefix_index_entries` | gauge | — | (key, endpoint) entries held by the precise prefix index (from KV-cache events). |
//! | `inference_extension_precise_prefix_index_memory_bytes` | gauge | — | Memory held by the precise prefix index, in bytes (estimated from table capacities). |
//! | `inference_extension_precise_prefix_unreliable_endpoints` | gauge | — | Endpoints whose KV-event view is not trusted now and that are scored by the approximate index. |
//! | `inference_extension_kv_event_batches_total` | counter | — | KV-event batches received from model servers. |
//! | `inference_extension_kv_events_total` | counter | outcome | KV-cache events from model servers, by outcome (received, applied). |
//! | `inference_extension_kv_events_dropped_total` | counter | reason | KV-cache events (or undecodable messages) not applied, by reason. |
//! | `inference_extension_kv_event_gaps_total` | counter | — | Sequence gaps in KV-event streams (lost batches). |
//! | `inference_extension_kv_event_missed_batches_total` | counter | — | KV-event batches skipped by sequence gaps. |
//! | `inference_extension_precise_prefix_fallback_switches_total` | counter | reason | Switches of an endpoint from precise to approximate prefix scoring, by reason (gap, reconnect, silence, all_blocks_cleared, block_size_mismatch, over_budget). |
//! | `inference_extension_precise_prefix_predicted_cached_tokens_total` | counter | — | Prompt tokens the precise index predicted cached on the picked endpoint, for responses that reported cached_tokens. |
//! | `inference_extension_precise_prefix_observed_cached_tokens_total` | counter | — | Prompt tokens the model servers reported cached (usage.prompt_tokens_details.cached_tokens) for the same responses. |
//! | `inference_extension_precise_prefix_observed_prompt_tokens_total` | counter | — | Prompt tokens of the same responses. |
//! | `inference_extension_kv_event_intake_total` | counter | event | What the KV-event intake did, by event (messages, decode_errors, rank_mismatches, flood_drops, reorders_resolved, replays_requested, replays_succeeded, replays_failed, replayed_batches, connects, connect_failures, reconnects). |
//! | `inference_extension_kv_event_subscriptions` | gauge | — | Endpoints whose KV-cache events are subscribed to now. |
//! | `inference_extension_tokenize_total` | counter | outcome | Token lookups for the precise prefix scorer, by outcome (cache_hit, tokenizer, coalesced, passthrough). |
//! | `inference_extension_tokenize_errors_total` | counter | reason | Token lookups that failed (the request was scored without tokens), by reason (timeout, unavailable, bad_response, unsupported). |
//! | `inference_extension_tokenize_cache_entries` | gauge | — | Prompts whose tokens are cached now. |
//! | `inference_extension_flow_control_queue_size` | gauge | priority | Requests waiting in flow control, by priority band. |
//! | `inference_extension_flow_control_queue_bytes` | gauge | priority | Request-body bytes waiting in flow control, by priority band. |
//! | `inference_extension_flow_control_queue_duration_seconds` | histogram | priority, outcome | Time waited in flow control, by band and outcome (dispatched, expired, displaced). |
//! | `inference_extension_flow_control_dispatches_total` | counter | priority | Requests that waited and were then routed. |
//! | `inference_extension_flow_control_rejections_total` | counter | priority, reason | Requests flow control refused (band_full, queue_full, displaced, expired). |
//! | `inference_extension_pool_saturation` | gauge | detector | The pool's saturation as the detector last saw it (1 = at its limit). |
//!
//! Per-endpoint series exist only as gauges: endpoints are bounded by `--max-endpoints`.
//! `endpoint` is `ip:port`; `model_server_pod` is the pod name (the endpoint name without its
//! `namespace/`), as upstream's per-pod gauge.
//!
//! # Bounded labels
//!
//! `model_name` and `target_model_name` come from clients. At most
//! [`MetricsLimits::max_model_pairs`] distinct pairs (and as many models for the running
//! gauge) get their own series; later ones are recorded under `model_name="other",
//! target_model_name="other"` and counted in `inference_extension_metric_label_overflow_total`
//! (one per lookup). Plugin series are capped the same way.
//!
//! # Compatibility notes
//!
//! * The page is text format 0.0.4 written as Go's `expfmt` does (see `exposition`), not
//!   OpenMetrics: `le="1"`, `1.048576e+06`, counters named `…_total` on `# TYPE` lines.
//! * As in Go, a labelled series appears once first recorded; the pool gauges appear after
//!   the first refresh that found a fresh endpoint; nothing pool-related appears without a
//!   pool. This EPP's own unlabelled metrics and enumerated labels are always present.
//! * Go's registry also carries `go_*`, `process_*` and controller-runtime metrics; they have
//!   no equivalent here.
//!
//! # Hot path
//!
//! Recording is synchronous, lock-free for unlabelled metrics, and for a known label set
//! costs one read lock and one hash lookup by `&str` with no allocation. Resolve
//! [`EppMetrics::model`] once per request and record through the [`ModelMetrics`] handle to
//! skip the lookup entirely.

pub mod definitions;
pub mod exposition;
mod flow_control;
mod labels;
mod primitives;
mod recording;
mod render;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;

use crate::telemetry::metrics::definitions::{
    PHASE_BUCKETS, PREFIX_HIT_BYTES_BUCKETS, PREFIX_HIT_RATIO_BUCKETS, SCHEDULER_BUCKETS,
    SCRAPE_BUCKETS,
};
use crate::telemetry::metrics::labels::LabelCache;
use crate::telemetry::metrics::primitives::{Counter, Histogram, IntGauge};

pub use exposition::{CONTENT_TYPE, Exposition, FamilyWriter};
pub use flow_control::FlowMetrics;
pub use labels::OTHER;
pub use recording::{ErrorCode, ModelMetrics, PairMetrics, Phase, RunningGuard, StreamGuard};

/// Label-cardinality caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsLimits {
    /// Distinct (model, target model) pairs, and distinct models of the running gauge,
    /// with their own series; the rest share `other`.
    pub max_model_pairs: usize,
    /// Distinct (extension point, plugin type, plugin name) sets; the rest share `other`.
    pub max_plugin_series: usize,
}

impl Default for MetricsLimits {
    fn default() -> Self {
        MetricsLimits {
            max_model_pairs: 1000,
            max_plugin_series: 1000,
        }
    }
}

/// Different pick reasons kept apart; more would be a bug in the caller.
const MAX_PICK_REASONS: usize = 64;

/// Different unusable-metrics reasons kept apart; more would be a bug in the caller.
const MAX_UNUSABLE_REASONS: usize = 64;

/// Writes families computed when Prometheus scrapes, from state the metrics do not own
/// (endpoints, scrape stats, prefix indexes). Registered with
/// [`EppMetrics::register_collector`].
pub trait Collector: Send + Sync + std::fmt::Debug {
    /// Adds this collector's families to `page`.
    fn collect(&self, page: &mut Exposition);
}

/// All EPP metrics. Share as `Arc<EppMetrics>`; every method takes `&self`.
#[derive(Debug)]
pub struct EppMetrics {
    pairs: LabelCache<2, PairMetrics>,
    running: LabelCache<1, IntGauge>,
    plugins: LabelCache<3, Histogram>,
    picks: LabelCache<1, Counter>,
    scheduler: Histogram,
    prefix_hit_ratio: Histogram,
    prefix_hit_bytes: Histogram,
    phases: [Histogram; Phase::ALL.len()],
    streams: Arc<IntGauge>,
    scrape_duration: Histogram,
    /// (commit, build_ref) of `inference_extension_info`.
    build: ArcSwapOption<(String, String)>,
    /// Families read at scrape time from state this module does not own.
    collectors: Mutex<Vec<Arc<dyn Collector>>>,
    /// By reason, as the scraper names them.
    unusable_metrics: LabelCache<1, Counter>,
    /// `inference_extension_buffered_request_bytes`.
    buffered_bytes: IntGauge,
    /// `inference_extension_buffer_budget_rejections_total`.
    budget_rejections: Counter,
}

impl EppMetrics {
    /// Empty metrics with these label caps.
    pub fn new(limits: MetricsLimits) -> Arc<Self> {
        let picks = LabelCache::new(MAX_PICK_REASONS, Counter::default);
        Arc::new(EppMetrics {
            pairs: LabelCache::new(limits.max_model_pairs, PairMetrics::new),
            running: LabelCache::new(limits.max_model_pairs, IntGauge::default),
            plugins: LabelCache::new(limits.max_plugin_series, || {
                Histogram::new(SCHEDULER_BUCKETS)
            }),
            picks,
            scheduler: Histogram::new(SCHEDULER_BUCKETS),
            prefix_hit_ratio: Histogram::new(PREFIX_HIT_RATIO_BUCKETS),
            prefix_hit_bytes: Histogram::new(PREFIX_HIT_BYTES_BUCKETS),
            phases: Phase::ALL.map(|_| Histogram::new(PHASE_BUCKETS)),
            streams: Arc::new(IntGauge::default()),
            scrape_duration: Histogram::new(SCRAPE_BUCKETS),
            build: ArcSwapOption::empty(),
            collectors: Mutex::new(Vec::new()),
            unusable_metrics: LabelCache::new(MAX_UNUSABLE_REASONS, Counter::default),
            buffered_bytes: IntGauge::default(),
            budget_rejections: Counter::default(),
        })
    }

    /// Sets `inference_extension_info{commit, build_ref} 1` (v1.0.1 logs and exports the
    /// git commit and build ref at startup).
    pub fn set_build_info(&self, commit: &str, build_ref: &str) {
        self.build
            .store(Some(Arc::new((commit.to_owned(), build_ref.to_owned()))));
    }

    /// Adds a collector whose families join every page from now on. The wiring registers
    /// the ones that read the datastore, the scrape stats and the prefix indexes, so this
    /// module depends on none of them.
    pub fn register_collector(&self, collector: Arc<dyn Collector>) {
        self.collectors.lock().push(collector);
    }

    // === per (model, target model) ===

    /// The handle of a (model, target model) pair, or of `other` beyond the cap. Resolve it
    /// once per request (when the body is parsed) and record through it.
    pub fn model(&self, model: &str, target: &str) -> ModelMetrics {
        ModelMetrics(self.pairs.get([model, target]))
    }

    /// `inference_model_running_requests{model_name}` +1 until the guard drops. An empty
    /// `model` records nothing, as upstream.
    pub fn running_requests_inc(&self, model: &str) -> RunningGuard {
        if model.is_empty() {
            return RunningGuard::none();
        }
        let gauge = self.running.get([model]);
        gauge.inc();
        RunningGuard(Some(gauge))
    }

    // === scheduling ===

    /// `inference_extension_scheduler_e2e_duration_seconds`: one scheduling cycle, seconds.
    pub fn scheduler_duration(&self, seconds: f64) {
        self.scheduler.observe(seconds);
    }

    /// `inference_extension_plugin_duration_seconds`: one plugin call, in seconds.
    /// `plugin_type` is the registry name (`queue-scorer`), `plugin_name` the configured one.
    pub fn plugin_duration(
        &self,
        extension_point: &'static str,
        plugin_type: &'static str,
        plugin_name: &str,
        seconds: f64,
    ) {
        let labels = [extension_point, plugin_name, plugin_type];
        self.plugins.with(labels, |h| h.observe(seconds));
    }

    /// `inference_extension_prefix_indexer_hit_bytes` (always) and `_hit_ratio`
    /// (`matched_bytes / total_bytes`, when `total_bytes > 0`): one prefix lookup, as
    /// v1.0.1 `RecordPrefixCacheMatch(matchedBlocks*blockSize, totalBlocks*blockSize)`.
    pub fn prefix_match(&self, matched_bytes: u64, total_bytes: u64) {
        self.prefix_hit_bytes.observe(matched_bytes as f64);
        if total_bytes > 0 {
            self.prefix_hit_ratio
                .observe(matched_bytes as f64 / total_bytes as f64);
        }
    }

    /// Makes `inference_extension_picks_total{reason}` exist at 0 for each of `reasons`,
    /// so rates and alerts work before the first pick of that kind.
    pub fn declare_pick_reasons(&self, reasons: &[&'static str]) {
        for reason in reasons {
            self.picks.get([reason]);
        }
    }

    /// `inference_extension_picks_total{reason}` +1; `reason` from `PickReason::as_str`.
    pub fn pick(&self, reason: &'static str) {
        self.picks.with([reason], Counter::inc);
    }

    // === EPP overhead and streams ===

    /// `inference_extension_request_phase_duration_seconds{phase}`: seconds in one phase.
    pub fn phase(&self, phase: Phase, seconds: f64) {
        self.phases[phase as usize].observe(seconds);
    }

    /// `inference_extension_ext_proc_streams` +1 until the guard drops.
    pub fn stream_opened(&self) -> StreamGuard {
        self.streams.inc();
        StreamGuard(Arc::clone(&self.streams))
    }

    /// `inference_extension_model_server_scrape_duration_seconds`: one model-server scrape,
    /// in seconds, successful or not. The scraper must call this (its stats keep only the
    /// last duration).
    pub fn scrape_duration(&self, seconds: f64) {
        self.scrape_duration.observe(seconds);
    }

    /// Makes `inference_extension_model_server_unusable_metrics_total{reason}` exist at 0
    /// for each of `reasons` (the scraper declares its own).
    pub fn declare_unusable_reasons(&self, reasons: &[&'static str]) {
        for reason in reasons {
            self.unusable_metrics.get([reason]);
        }
    }

    /// `inference_extension_model_server_unusable_metrics_total{reason}` +1: one scrape
    /// that parsed but left some load signal without a valid value.
    pub fn unusable_metrics(&self, reason: &'static str) {
        self.unusable_metrics.with([reason], Counter::inc);
    }

    // === request-body buffer budget ===

    /// `inference_extension_buffered_request_bytes` changed by `delta` bytes.
    pub fn buffered_request_bytes(&self, delta: i64) {
        self.buffered_bytes.add(delta);
    }

    /// `inference_extension_buffer_budget_rejections_total` +1.
    pub fn buffer_budget_rejected(&self) {
        self.budget_rejections.inc();
    }
}

#[cfg(test)]
mod tests;
