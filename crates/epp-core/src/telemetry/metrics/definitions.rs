//! Every metric the EPP exports: name, type, label names, help text and buckets.
//!
//! The upstream part mirrors v1.0.1 `pkg/epp/metrics/metrics.go` and
//! `collectors/inference_pool.go` byte for byte (help texts carry the `[ALPHA] ` prefix that
//! `metricsutil.HelpMsgWithStability` adds). Label names are listed in sorted order, which is
//! the order the Go client writes them in; histograms add `le` last.

/// The Prometheus type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The word on the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// Full name, as scraped (counters keep their upstream `_total`).
    pub name: &'static str,
    /// Help text, `[ALPHA] ` included.
    pub help: &'static str,
    pub kind: Kind,
    /// Label names in sorted order (histograms: without `le`).
    pub labels: &'static [&'static str],
    /// Bucket upper bounds, ascending; empty unless `kind` is `Histogram`.
    pub buckets: &'static [f64],
}

const fn def(
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    buckets: &'static [f64],
) -> MetricDef {
    MetricDef {
        name,
        help,
        kind,
        labels,
        buckets,
    }
}

const MODEL_PAIR: &[&str] = &["model_name", "target_model_name"];

// === buckets (v1.0.1 metrics.go) ===

/// `inference_model_request_duration_seconds`, seconds.
pub const REQUEST_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 480.0, 600.0, 900.0,
    1200.0, 1800.0, 2700.0, 3600.0,
];

/// `inference_model_request_sizes`, bytes: ×2 up to 64 KiB, then to 8 MiB, then to 1 GiB.
pub const REQUEST_SIZE_BUCKETS: &[f64] = &[
    64.0,
    128.0,
    256.0,
    512.0,
    1024.0,
    2048.0,
    4096.0,
    8192.0,
    16384.0,
    32768.0,
    65536.0,
    131072.0,
    262144.0,
    524288.0,
    1048576.0,
    2097152.0,
    4194304.0,
    8388608.0,
    16777216.0,
    33554432.0,
    67108864.0,
    134217728.0,
    268435456.0,
    536870912.0,
    1073741824.0,
];

/// `inference_model_response_sizes`, bytes. `32778` (not 32768) is upstream's typo, kept so
/// that bucket series keep the same `le` values.
pub const RESPONSE_SIZE_BUCKETS: &[f64] = &[
    1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
    32778.0, 65536.0,
];

/// `inference_model_input_tokens`, tokens (the response-size buckets, `32778` included, then
/// up to 2^20).
pub const INPUT_TOKEN_BUCKETS: &[f64] = &[
    1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
    32778.0, 65536.0, 131072.0, 262144.0, 524288.0, 1048576.0,
];

/// `inference_model_output_tokens`, tokens.
pub const OUTPUT_TOKEN_BUCKETS: &[f64] = &[
    1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
];

/// `inference_model_normalized_time_per_output_token_seconds`, seconds per token.
pub const NTPOT_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Scheduler and plugin latencies, seconds (100 µs to 100 ms).
pub const SCHEDULER_BUCKETS: &[f64] = &[
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
];

/// `inference_extension_prefix_indexer_hit_ratio`, 0 to 1.
pub const PREFIX_HIT_RATIO_BUCKETS: &[f64] =
    &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// `inference_extension_prefix_indexer_hit_bytes`, bytes.
pub const PREFIX_HIT_BYTES_BUCKETS: &[f64] = &[
    0.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0,
    65536.0,
];

// === buckets of this EPP's own metrics ===

/// EPP phase times, seconds: 10 µs (parse, schedule) to 10 s (waiting for a long body).
pub const PHASE_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Model-server scrape latency, seconds (0.5 ms to the 5 s timeout and beyond).
pub const SCRAPE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

// === upstream families ===

pub const REQUEST_TOTAL: MetricDef = def(
    "inference_model_request_total",
    "[ALPHA] Counter of inference model requests broken out for each model and target model.",
    Kind::Counter,
    MODEL_PAIR,
    &[],
);
pub const REQUEST_ERROR_TOTAL: MetricDef = def(
    "inference_model_request_error_total",
    "[ALPHA] Counter of inference model requests errors broken out for each model and target model.",
    Kind::Counter,
    &["error_code", "model_name", "target_model_name"],
    &[],
);
pub const REQUEST_DURATION: MetricDef = def(
    "inference_model_request_duration_seconds",
    "[ALPHA] Inference model response latency distribution in seconds for each model and target model.",
    Kind::Histogram,
    MODEL_PAIR,
    REQUEST_DURATION_BUCKETS,
);
pub const REQUEST_SIZES: MetricDef = def(
    "inference_model_request_sizes",
    "[ALPHA] Inference model requests size distribution in bytes for each model and target model.",
    Kind::Histogram,
    MODEL_PAIR,
    REQUEST_SIZE_BUCKETS,
);
pub const RESPONSE_SIZES: MetricDef = def(
    "inference_model_response_sizes",
    "[ALPHA] Inference model responses size distribution in bytes for each model and target model.",
    Kind::Histogram,
    MODEL_PAIR,
    RESPONSE_SIZE_BUCKETS,
);
pub const INPUT_TOKENS: MetricDef = def(
    "inference_model_input_tokens",
    "[ALPHA] Inference model input token count distribution for requests in each model.",
    Kind::Histogram,
    MODEL_PAIR,
    INPUT_TOKEN_BUCKETS,
);
pub const OUTPUT_TOKENS: MetricDef = def(
    "inference_model_output_tokens",
    "[ALPHA] Inference model output token count distribution for requests in each model.",
    Kind::Histogram,
    MODEL_PAIR,
    OUTPUT_TOKEN_BUCKETS,
);
pub const RUNNING_REQUESTS: MetricDef = def(
    "inference_model_running_requests",
    "[ALPHA] Inference model number of running requests in each model.",
    Kind::Gauge,
    &["model_name"],
    &[],
);
pub const NTPOT: MetricDef = def(
    "inference_model_normalized_time_per_output_token_seconds",
    "[ALPHA] Inference model latency divided by number of output tokens in seconds for each model and target model.",
    Kind::Histogram,
    MODEL_PAIR,
    NTPOT_BUCKETS,
);
pub const POOL_AVG_KV_CACHE: MetricDef = def(
    "inference_pool_average_kv_cache_utilization",
    "[ALPHA] The average kv cache utilization for an inference server pool.",
    Kind::Gauge,
    &["name"],
    &[],
);
pub const POOL_AVG_QUEUE_SIZE: MetricDef = def(
    "inference_pool_average_queue_size",
    "[ALPHA] The average number of requests pending in the model server queue.",
    Kind::Gauge,
    &["name"],
    &[],
);
pub const POOL_READY_PODS: MetricDef = def(
    "inference_pool_ready_pods",
    "[ALPHA] The number of ready pods in the inference server pool.",
    Kind::Gauge,
    &["name"],
    &[],
);
pub const POOL_PER_POD_QUEUE_SIZE: MetricDef = def(
    "inference_pool_per_pod_queue_size",
    "[ALPHA] The total number of requests pending in the model server queue for each underlying pod.",
    Kind::Gauge,
    &["model_server_pod", "name"],
    &[],
);
pub const SCHEDULER_E2E: MetricDef = def(
    "inference_extension_scheduler_e2e_duration_seconds",
    "[ALPHA] End-to-end scheduling latency distribution in seconds.",
    Kind::Histogram,
    &[],
    SCHEDULER_BUCKETS,
);
pub const PLUGIN_DURATION: MetricDef = def(
    "inference_extension_plugin_duration_seconds",
    "[ALPHA] Plugin processing latency distribution in seconds for each extension point, plugin type and plugin name.",
    Kind::Histogram,
    &["extension_point", "plugin_name", "plugin_type"],
    SCHEDULER_BUCKETS,
);
pub const PREFIX_INDEXER_SIZE: MetricDef = def(
    "inference_extension_prefix_indexer_size",
    "[ALPHA] Size of the prefix indexer.",
    Kind::Gauge,
    &[],
    &[],
);
pub const PREFIX_HIT_RATIO: MetricDef = def(
    "inference_extension_prefix_indexer_hit_ratio",
    "[ALPHA] Ratio of prefix length matched to total prefix length in the cache lookup.",
    Kind::Histogram,
    &[],
    PREFIX_HIT_RATIO_BUCKETS,
);
pub const PREFIX_HIT_BYTES: MetricDef = def(
    "inference_extension_prefix_indexer_hit_bytes",
    "[ALPHA] Length of the prefix match in number of bytes in the cache lookup.",
    Kind::Histogram,
    &[],
    PREFIX_HIT_BYTES_BUCKETS,
);
pub const INFO: MetricDef = def(
    "inference_extension_info",
    "[ALPHA] General information of the current build of Inference Extension.",
    Kind::Gauge,
    &["build_ref", "commit"],
    &[],
);

// === this EPP's own families (not in v1.0.1) ===

pub const PHASE_DURATION: MetricDef = def(
    "inference_extension_request_phase_duration_seconds",
    "[ALPHA] Time the EPP spends in each phase of a request, in seconds: body_wait (first to last request-body chunk), parse, tokenize (precise prefix scorer only), schedule, respond.",
    Kind::Histogram,
    &["phase"],
    PHASE_BUCKETS,
);
pub const PICKS_TOTAL: MetricDef = def(
    "inference_extension_picks_total",
    "[ALPHA] Endpoint picks broken out by how the endpoint was chosen.",
    Kind::Counter,
    &["reason"],
    &[],
);
pub const EXT_PROC_STREAMS: MetricDef = def(
    "inference_extension_ext_proc_streams",
    "[ALPHA] Open ext_proc streams (one per HTTP exchange in flight through the gateway).",
    Kind::Gauge,
    &[],
    &[],
);
pub const PREFIX_INDEXER_MEMORY: MetricDef = def(
    "inference_extension_prefix_indexer_memory_bytes",
    "[ALPHA] Memory held by the prefix indexer, in bytes.",
    Kind::Gauge,
    &[],
    &[],
);
pub const SCRAPES_TOTAL: MetricDef = def(
    "inference_extension_model_server_scrapes_total",
    "[ALPHA] Scrapes of model-server metrics pages, successful or not.",
    Kind::Counter,
    &[],
    &[],
);
pub const SCRAPE_FAILURES_TOTAL: MetricDef = def(
    "inference_extension_model_server_scrape_failures_total",
    "[ALPHA] Failed scrapes of model-server metrics pages, by reason (transport, timeout, status, too_large, parse).",
    Kind::Counter,
    &["reason"],
    &[],
);
pub const SCRAPE_DURATION: MetricDef = def(
    "inference_extension_model_server_scrape_duration_seconds",
    "[ALPHA] Duration of scrapes of model-server metrics pages, in seconds.",
    Kind::Histogram,
    &[],
    SCRAPE_BUCKETS,
);
pub const ENDPOINT_METRICS_AGE: MetricDef = def(
    "inference_extension_endpoint_metrics_age_seconds",
    "[ALPHA] Seconds since the endpoint's metrics were last refreshed (+Inf if never).",
    Kind::Gauge,
    &["endpoint", "model_server_pod"],
    &[],
);
pub const ENDPOINT_LAST_SCRAPE_DURATION: MetricDef = def(
    "inference_extension_endpoint_last_scrape_duration_seconds",
    "[ALPHA] Duration of the endpoint's last metrics scrape, in seconds.",
    Kind::Gauge,
    &["endpoint", "model_server_pod"],
    &[],
);
pub const ENDPOINT_IN_FLIGHT: MetricDef = def(
    "inference_extension_endpoint_in_flight_requests",
    "[ALPHA] Requests this EPP sent to the endpoint that have not finished (pick to end of stream).",
    Kind::Gauge,
    &["endpoint", "model_server_pod"],
    &[],
);
pub const LABEL_OVERFLOW_TOTAL: MetricDef = def(
    "inference_extension_metric_label_overflow_total",
    "[ALPHA] Recordings folded into the \"other\" label value because a label cap was reached, by label set (model_pair, model, plugin).",
    Kind::Counter,
    &["label_set"],
    &[],
);
pub const BUFFERED_REQUEST_BYTES: MetricDef = def(
    "inference_extension_buffered_request_bytes",
    "[ALPHA] Request-body bytes buffered across all ext_proc streams (bounded by --max-buffered-request-bytes).",
    Kind::Gauge,
    &[],
    &[],
);
pub const BUFFER_BUDGET_REJECTIONS: MetricDef = def(
    "inference_extension_buffer_budget_rejections_total",
    "[ALPHA] Requests answered 503 because buffering their body would pass --max-buffered-request-bytes.",
    Kind::Counter,
    &[],
    &[],
);

pub const UNUSABLE_METRICS_TOTAL: MetricDef = def(
    "inference_extension_model_server_unusable_metrics_total",
    "[ALPHA] Scrapes of model-server metrics pages that parsed but gave no valid queue, running or KV-usage value, by reason (invalid_value, no_configured_metrics, missing_metric).",
    Kind::Counter,
    &["reason"],
    &[],
);
pub const PRECISE_INDEX_ENTRIES: MetricDef = def(
    "inference_extension_precise_prefix_index_entries",
    "[ALPHA] (key, endpoint) entries held by the precise prefix index (from KV-cache events).",
    Kind::Gauge,
    &[],
    &[],
);
pub const PRECISE_INDEX_MEMORY: MetricDef = def(
    "inference_extension_precise_prefix_index_memory_bytes",
    "[ALPHA] Memory held by the precise prefix index, in bytes (estimated from table capacities).",
    Kind::Gauge,
    &[],
    &[],
);
pub const PRECISE_UNRELIABLE_ENDPOINTS: MetricDef = def(
    "inference_extension_precise_prefix_unreliable_endpoints",
    "[ALPHA] Endpoints whose KV-event view is not trusted now and that are scored by the approximate index.",
    Kind::Gauge,
    &[],
    &[],
);
pub const KV_EVENT_BATCHES: MetricDef = def(
    "inference_extension_kv_event_batches_total",
    "[ALPHA] KV-event batches received from model servers.",
    Kind::Counter,
    &[],
    &[],
);
pub const KV_EVENTS: MetricDef = def(
    "inference_extension_kv_events_total",
    "[ALPHA] KV-cache events from model servers, by outcome (received, applied).",
    Kind::Counter,
    &["outcome"],
    &[],
);
pub const KV_EVENTS_DROPPED: MetricDef = def(
    "inference_extension_kv_events_dropped_total",
    "[ALPHA] KV-cache events (or undecodable messages) not applied, by reason.",
    Kind::Counter,
    &["reason"],
    &[],
);
pub const KV_EVENT_GAPS: MetricDef = def(
    "inference_extension_kv_event_gaps_total",
    "[ALPHA] Sequence gaps in KV-event streams (lost batches).",
    Kind::Counter,
    &[],
    &[],
);
pub const KV_EVENT_MISSED_BATCHES: MetricDef = def(
    "inference_extension_kv_event_missed_batches_total",
    "[ALPHA] KV-event batches skipped by sequence gaps.",
    Kind::Counter,
    &[],
    &[],
);
pub const PRECISE_FALLBACK_SWITCHES: MetricDef = def(
    "inference_extension_precise_prefix_fallback_switches_total",
    "[ALPHA] Switches of an endpoint from precise to approximate prefix scoring, by reason (gap, reconnect, silence, all_blocks_cleared, block_size_mismatch, over_budget).",
    Kind::Counter,
    &["reason"],
    &[],
);
pub const PRECISE_PREDICTED_CACHED_TOKENS: MetricDef = def(
    "inference_extension_precise_prefix_predicted_cached_tokens_total",
    "[ALPHA] Prompt tokens the precise index predicted cached on the picked endpoint, for responses that reported cached_tokens.",
    Kind::Counter,
    &[],
    &[],
);
pub const PRECISE_OBSERVED_CACHED_TOKENS: MetricDef = def(
    "inference_extension_precise_prefix_observed_cached_tokens_total",
    "[ALPHA] Prompt tokens the model servers reported cached (usage.prompt_tokens_details.cached_tokens) for the same responses.",
    Kind::Counter,
    &[],
    &[],
);
pub const PRECISE_OBSERVED_PROMPT_TOKENS: MetricDef = def(
    "inference_extension_precise_prefix_observed_prompt_tokens_total",
    "[ALPHA] Prompt tokens of the same responses.",
    Kind::Counter,
    &[],
    &[],
);
pub const FLOW_QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
pub const FLOW_CONTROL_QUEUE_SIZE: MetricDef = def(
    "inference_extension_flow_control_queue_size",
    "[ALPHA] Requests waiting in the EPP's flow control, by priority band.",
    Kind::Gauge,
    &["priority"],
    &[],
);
pub const FLOW_CONTROL_QUEUE_BYTES: MetricDef = def(
    "inference_extension_flow_control_queue_bytes",
    "[ALPHA] Request-body bytes waiting in the EPP's flow control, by priority band.",
    Kind::Gauge,
    &["priority"],
    &[],
);
pub const FLOW_CONTROL_QUEUE_DURATION: MetricDef = def(
    "inference_extension_flow_control_queue_duration_seconds",
    "[ALPHA] Time requests waited in flow control, by priority band and outcome (dispatched, expired, displaced).",
    Kind::Histogram,
    &["priority", "outcome"],
    FLOW_QUEUE_WAIT_BUCKETS,
);
pub const FLOW_CONTROL_DISPATCHES: MetricDef = def(
    "inference_extension_flow_control_dispatches_total",
    "[ALPHA] Requests that waited in flow control and were then routed, by priority band.",
    Kind::Counter,
    &["priority"],
    &[],
);
pub const FLOW_CONTROL_REJECTIONS: MetricDef = def(
    "inference_extension_flow_control_rejections_total",
    "[ALPHA] Requests flow control refused, by priority band and reason (band_full, queue_full, displaced, expired).",
    Kind::Counter,
    &["priority", "reason"],
    &[],
);
pub const POOL_SATURATION: MetricDef = def(
    "inference_extension_pool_saturation",
    "[ALPHA] The pool's saturation as flow control's detector last saw it (1 = at its limit), by detector.",
    Kind::Gauge,
    &["detector"],
    &[],
);
pub const KV_EVENT_INTAKE: MetricDef = def(
    "inference_extension_kv_event_intake_total",
    "[ALPHA] What the KV-event intake did, by event (messages, decode_errors, rank_mismatches, flood_drops, reorders_resolved, replays_requested, replays_succeeded, replays_failed, replayed_batches, connects, connect_failures, reconnects).",
    Kind::Counter,
    &["event"],
    &[],
);
pub const KV_EVENT_SUBSCRIPTIONS: MetricDef = def(
    "inference_extension_kv_event_subscriptions",
    "[ALPHA] Endpoints whose KV-cache events are subscribed to now.",
    Kind::Gauge,
    &[],
    &[],
);
pub const TOKENIZE_CALLS: MetricDef = def(
    "inference_extension_tokenize_total",
    "[ALPHA] Token lookups for the precise prefix scorer, by outcome (cache_hit, tokenizer, coalesced, passthrough).",
    Kind::Counter,
    &["outcome"],
    &[],
);
pub const TOKENIZE_ERRORS: MetricDef = def(
    "inference_extension_tokenize_errors_total",
    "[ALPHA] Token lookups that failed (the request was scored without tokens), by reason (timeout, unavailable, bad_response, unsupported).",
    Kind::Counter,
    &["reason"],
    &[],
);
pub const TRACE_SPANS: MetricDef = def(
    "inference_extension_trace_spans_total",
    "[ALPHA] Trace spans handed to the OTLP exporter, by outcome (exported, dropped: the export queue was full, failed: the collector refused or did not answer).",
    Kind::Counter,
    &["outcome"],
    &[],
);
pub const TOKENIZE_CACHE_ENTRIES: MetricDef = def(
    "inference_extension_tokenize_cache_entries",
    "[ALPHA] Prompts whose tokens are cached now.",
    Kind::Gauge,
    &[],
    &[],
);

/// Every family, for checks that dashboards and docs name only real metrics.
#[cfg(test)]
pub const ALL: &[&MetricDef] = &[
    &REQUEST_TOTAL,
    &REQUEST_ERROR_TOTAL,
    &REQUEST_DURATION,
    &REQUEST_SIZES,
    &RESPONSE_SIZES,
    &INPUT_TOKENS,
    &OUTPUT_TOKENS,
    &RUNNING_REQUESTS,
    &NTPOT,
    &POOL_AVG_KV_CACHE,
    &POOL_AVG_QUEUE_SIZE,
    &POOL_READY_PODS,
    &POOL_PER_POD_QUEUE_SIZE,
    &SCHEDULER_E2E,
    &PLUGIN_DURATION,
    &PREFIX_INDEXER_SIZE,
    &PREFIX_HIT_RATIO,
    &PREFIX_HIT_BYTES,
    &INFO,
    &PHASE_DURATION,
    &PICKS_TOTAL,
    &EXT_PROC_STREAMS,
    &PREFIX_INDEXER_MEMORY,
    &SCRAPES_TOTAL,
    &SCRAPE_FAILURES_TOTAL,
    &SCRAPE_DURATION,
    &ENDPOINT_METRICS_AGE,
    &ENDPOINT_LAST_SCRAPE_DURATION,
    &LABEL_OVERFLOW_TOTAL,
    &ENDPOINT_IN_FLIGHT,
    &UNUSABLE_METRICS_TOTAL,
    &BUFFERED_REQUEST_BYTES,
    &BUFFER_BUDGET_REJECTIONS,
    &PRECISE_INDEX_ENTRIES,
    &PRECISE_INDEX_MEMORY,
    &PRECISE_UNRELIABLE_ENDPOINTS,
    &KV_EVENT_BATCHES,
    &KV_EVENTS,
    &KV_EVENTS_DROPPED,
    &KV_EVENT_GAPS,
    &KV_EVENT_MISSED_BATCHES,
    &PRECISE_FALLBACK_SWITCHES,
    &PRECISE_PREDICTED_CACHED_TOKENS,
    &PRECISE_OBSERVED_CACHED_TOKENS,
    &PRECISE_OBSERVED_PROMPT_TOKENS,
    &KV_EVENT_INTAKE,
    &KV_EVENT_SUBSCRIPTIONS,
    &TOKENIZE_CALLS,
    &TOKENIZE_ERRORS,
    &TOKENIZE_CACHE_ENTRIES,
    &FLOW_CONTROL_QUEUE_SIZE,
    &FLOW_CONTROL_QUEUE_BYTES,
    &FLOW_CONTROL_QUEUE_DURATION,
    &FLOW_CONTROL_DISPATCHES,
    &FLOW_CONTROL_REJECTIONS,
    &POOL_SATURATION,
    &TRACE_SPANS,
];
