//! The `/metrics` page in Prometheus text format 0.0.4, with vLLM V1's names and labels
//! (`model_name`, `engine="0"`). Rendering copies the engine's numbers under its lock and then
//! formats without it; constant label sets are built once per server.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{KvUsageMetric, SimConfig};
use crate::fake::FakeMetrics;
use crate::kv_events::{DropReason, KvEventsCounters};
use epp_engine::EngineSnapshot;
use epp_engine::histogram::Histogram;

/// The `text/plain` content type of format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Label strings fixed for a server's lifetime.
#[derive(Debug)]
pub struct MetricsLabels {
    /// `model_name="…",engine="0"`.
    common: String,
    /// The whole `vllm:cache_config_info` sample line.
    cache_config: String,
    kv_usage_metric: KvUsageMetric,
}

impl MetricsLabels {
    /// Labels for a server with `config`.
    pub fn new(config: &SimConfig) -> Self {
        let common = format!("model_name=\"{}\",engine=\"0\"", escape(&config.model));
        let cache_config = format!(
            "vllm:cache_config_info{{block_size=\"{}\",cache_dtype=\"auto\",\
             enable_prefix_caching=\"True\",engine=\"0\",gpu_memory_utilization=\"0.9\",\
             num_cpu_blocks=\"0\",num_gpu_blocks=\"{}\"}} 1.0\n",
            config.block_size, config.num_gpu_blocks
        );
        Self {
            common,
            cache_config,
            kv_usage_metric: config.kv_usage_metric,
        }
    }
}

/// Renders the page from `snapshot`, with `fake` values in place of the real ones.
pub fn render(
    labels: &MetricsLabels,
    snapshot: &EngineSnapshot,
    fake: Option<&FakeMetrics>,
) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let none = FakeMetrics::default();
    let fake = fake.unwrap_or(&none);
    render_gauges(&mut out, labels, snapshot, fake);
    render_lora(&mut out, snapshot, fake);
    render_counters(&mut out, labels, snapshot);
    let c = &labels.common;
    histogram(
        &mut out,
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        c,
        &snapshot.ttft,
    );
    histogram(
        &mut out,
        "vllm:e2e_request_latency_seconds",
        "Histogram of e2e request latency in seconds.",
        c,
        &snapshot.e2e,
    );
    out
}

fn render_gauges(out: &mut String, labels: &MetricsLabels, s: &EngineSnapshot, fake: &FakeMetrics) {
    let c = &labels.common;
    let running = fake.running_requests.unwrap_or(s.running as u64);
    let waiting = fake.waiting_requests.unwrap_or(s.waiting as u64);
    let kv = fake.kv_cache_usage.unwrap_or(s.kv_usage);
    gauge(
        out,
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        c,
        running as f64,
    );
    gauge(
        out,
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        c,
        waiting as f64,
    );
    gauge(
        out,
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
        c,
        kv,
    );
    if labels.kv_usage_metric == KvUsageMetric::BothNames {
        gauge(
            out,
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage.",
            c,
            kv,
        );
    }
    header(
        out,
        "vllm:cache_config_info",
        "Information of the LLMEngine CacheConfig",
        "gauge",
    );
    out.push_str(&labels.cache_config);
}

fn render_lora(out: &mut String, s: &EngineSnapshot, fake: &FakeMetrics) {
    header(
        out,
        "vllm:lora_requests_info",
        "Running stats on lora requests.",
        "gauge",
    );
    let max = s.max_loras;
    match &fake.loras {
        Some(loras) => {
            for l in loras {
                lora_line(
                    out,
                    max,
                    &escape(&l.running),
                    &escape(&l.waiting),
                    l.timestamp,
                );
            }
        }
        None => lora_line(
            out,
            max,
            &escape(&s.running_loras),
            &escape(&s.waiting_loras),
            unix_now(),
        ),
    }
}

fn lora_line(out: &mut String, max: usize, running: &str, waiting: &str, value: f64) {
    let _ = writeln!(
        out,
        "vllm:lora_requests_info{{max_lora=\"{max}\",running_lora_adapters=\"{running}\",\
         waiting_lora_adapters=\"{waiting}\"}} {}",
        Num(value)
    );
}

#[rustfmt::skip]
fn render_counters(out: &mut String, labels: &MetricsLabels, s: &EngineSnapshot) {
    let c = &labels.common;
    let k = &s.counters;
    counter(out, "vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.", c, k.prefix_queries);
    counter(out, "vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.", c, k.prefix_hits);
    counter(out, "vllm:num_preemptions_total", "Cumulative number of preemption from the engine.", c, k.preemptions);
    counter(out, "vllm:prompt_tokens_total", "Number of prefill tokens processed.", c, k.prompt_tokens);
    counter(out, "vllm:generation_tokens_total", "Number of generation tokens processed.", c, k.generation_tokens);
    header(out, "vllm:request_success_total", "Count of successfully processed requests.", "counter");
    for (reason, value) in ["length", "stop", "abort"].iter().zip(k.finished) {
        let value = Num(value as f64);
        let _ = writeln!(out, "vllm:request_success_total{{{c},finished_reason=\"{reason}\"}} {value}");
    }
}

/// The sim's own KV-event counters (not vLLM's: it exports none for its publisher).
pub fn render_kv_events(out: &mut String, counters: &KvEventsCounters) {
    let name = "epp_sim_kv_events_published_total";
    header(
        out,
        name,
        "KV-event batches handed to the ZMQ PUB socket.",
        "counter",
    );
    let _ = writeln!(out, "{name} {}", Num(counters.published() as f64));
    let name = "epp_sim_kv_events_dropped_total";
    header(
        out,
        name,
        "KV-event batches not sent, by reason (fault, queue_full, delay_full).",
        "counter",
    );
    for reason in DropReason::ALL {
        let value = Num(counters.dropped(reason) as f64);
        let _ = writeln!(out, "{name}{{reason=\"{}\"}} {value}", reason.label());
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, labels: &str, value: f64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name}{{{labels}}} {}", Num(value));
}

fn counter(out: &mut String, name: &str, help: &str, labels: &str, value: u64) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{name}{{{labels}}} {}", Num(value as f64));
}

fn histogram(out: &mut String, name: &str, help: &str, labels: &str, h: &Histogram) {
    header(out, name, help, "histogram");
    let mut cumulative = 0u64;
    for (bound, count) in h.bounds().iter().zip(h.counts()) {
        cumulative += count;
        let (le, n) = (Num(*bound), Num(cumulative as f64));
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
    }
    let total = Num(h.count() as f64);
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", Num(h.sum()));
    let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
}

/// A value as vLLM's Python client prints it: integers keep a `.0` (counters too).
/// Formats in place, without allocating.
struct Num(f64);

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.0;
        if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
            write!(f, "{value:.1}")
        } else {
            write!(f, "{value}")
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Escapes a label value (`\`, `"`, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
