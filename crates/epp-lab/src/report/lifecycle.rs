//! inference-perf's lifecycle-metrics files (`summary_lifecycle_metrics.json`,
//! `stage_<i>_lifecycle_metrics.json`), field for field as `inference_perf/reportgen/base.py`
//! `summarize_requests` writes them, so `inference-perf analyze` and llm-d-benchmark's
//! converters read our runs unchanged.
//!
//! Differences, all forced by what a simulation knows:
//! * `inter_token_latency`: we record one TPOT per request, not each token's time, so every
//!   request contributes `output_tokens − 1` gaps equal to its TPOT (token-weighted, as
//!   inference-perf pools all gaps).
//! * `schedule_delay` is 0: the simulated client always sends on time.
//! * Both the current field names (`prompt_tokens`, `output_tokens`) and the older ones that
//!   llm-d-benchmark reads (`prompt_len`, `output_len`) are written.
//! * Multimodal fields (images, video, audio) are left out.

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::metrics::{end_time, span_s};
use super::stats::weighted_percentile;
use crate::results::{FinishReason, RequestRecord, StageInfo};

/// inference-perf's default percentiles (`RequestLifecycleMetricsReportConfig`).
const PERCENTILES: [(f64, &str); 11] = [
    (0.1, "p0.1"),
    (1.0, "p1"),
    (5.0, "p5"),
    (10.0, "p10"),
    (25.0, "p25"),
    (50.0, "median"),
    (75.0, "p75"),
    (90.0, "p90"),
    (95.0, "p95"),
    (99.0, "p99"),
    (99.9, "p99.9"),
];

/// One distribution: mean, min, max, then the percentiles (`median` for p50), seconds or
/// tokens. Written as `null` when empty, as inference-perf does.
#[derive(Clone, Debug)]
pub(crate) struct Dist(Vec<(&'static str, f64)>);

impl Serialize for Dist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Distribution of a multiset given as (value, how many times).
pub(crate) fn dist_weighted(mut pairs: Vec<(f64, u64)>) -> Option<Dist> {
    pairs.retain(|&(_, w)| w > 0);
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n: u64 = pairs.iter().map(|&(_, w)| w).sum();
    if n == 0 {
        return None;
    }
    let mean = pairs.iter().map(|&(v, w)| v * w as f64).sum::<f64>() / n as f64;
    let mut out = vec![
        ("mean", mean),
        ("min", pairs[0].0),
        ("max", pairs[pairs.len() - 1].0),
    ];
    for (p, key) in PERCENTILES {
        out.push((key, weighted_percentile(&pairs, p)?));
    }
    Some(Dist(out))
}

pub(crate) fn dist(values: impl IntoIterator<Item = f64>) -> Option<Dist> {
    dist_weighted(values.into_iter().map(|v| (v, 1)).collect())
}

#[derive(serde::Serialize)]
struct StageLoad {
    send_duration: f64,
    requested_rate: Option<f64>,
    achieved_rate: f64,
}

#[derive(serde::Serialize)]
struct LoadSummary {
    count: usize,
    schedule_delay: Option<Dist>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    stage: Option<StageLoad>,
}

#[derive(serde::Serialize)]
struct Latency {
    request_latency: Option<Dist>,
    normalized_time_per_output_token: Option<Dist>,
    time_per_output_token: Option<Dist>,
    time_to_first_token: Option<Dist>,
    inter_token_latency: Option<Dist>,
}

#[derive(serde::Serialize)]
struct Throughput {
    input_tokens_per_sec: f64,
    output_tokens_per_sec: f64,
    total_tokens_per_sec: f64,
    requests_per_sec: f64,
}

#[derive(serde::Serialize)]
struct PromptTokens {
    total: f64,
    cached: f64,
    uncached: f64,
    #[serde(flatten)]
    dist: Option<Dist>,
}

#[derive(serde::Serialize)]
struct OutputTokens {
    total: f64,
    #[serde(flatten)]
    dist: Option<Dist>,
}

#[derive(serde::Serialize)]
struct Successes {
    count: usize,
    latency: Latency,
    throughput: Throughput,
    prompt_len: Option<Dist>,
    prompt_tokens: PromptTokens,
    output_len: Option<Dist>,
    output_tokens: OutputTokens,
    token_count_mismatches: u64,
}

#[derive(serde::Serialize)]
struct Label {
    count: usize,
    messages: Vec<serde_json::Value>,
}

#[derive(serde::Serialize)]
struct Failures {
    count: usize,
    request_latency: Option<Dist>,
    prompt_len: Option<Dist>,
    prompt_tokens: PromptTokens,
    by_label: std::collections::BTreeMap<&'static str, Label>,
}

/// One lifecycle-metrics file.
#[derive(serde::Serialize)]
pub(crate) struct Lifecycle {
    benchmark_time_seconds: f64,
    load_summary: LoadSummary,
    successes: Successes,
    failures: Failures,
}

fn prompt_tokens(reqs: &[&RequestRecord]) -> PromptTokens {
    let total: f64 = reqs.iter().map(|r| f64::from(r.input_tokens)).sum();
    let cached: f64 = reqs.iter().map(|r| f64::from(r.cached_tokens)).sum();
    PromptTokens {
        total,
        cached,
        uncached: (total - cached).max(0.0),
        dist: dist(reqs.iter().map(|r| f64::from(r.input_tokens))),
    }
}

fn per_s(x: f64, t: f64) -> f64 {
    if t > 0.0 { x / t } else { 0.0 }
}

fn successes(ok: &[&RequestRecord], total_time: f64) -> Successes {
    // Folds from +0.0: `f64::sum` of nothing is -0.0.
    let input = ok
        .iter()
        .fold(0.0, |sum, r| sum + f64::from(r.input_tokens));
    let output = ok
        .iter()
        .fold(0.0, |sum, r| sum + f64::from(r.output_tokens));
    let ntpot = ok.iter().filter_map(|r| {
        let e2e = r.e2e_s()?;
        Some(if r.output_tokens > 0 {
            e2e / f64::from(r.output_tokens)
        } else {
            0.0
        })
    });
    let itl = ok
        .iter()
        .filter_map(|r| Some((r.tpot_s()?, u64::from(r.output_tokens.saturating_sub(1)))));
    Successes {
        count: ok.len(),
        latency: Latency {
            request_latency: dist(ok.iter().filter_map(|r| r.e2e_s())),
            normalized_time_per_output_token: dist(ntpot),
            time_per_output_token: dist(ok.iter().filter_map(|r| r.tpot_s())),
            time_to_first_token: dist(ok.iter().filter_map(|r| r.ttft_s())),
            inter_token_latency: dist_weighted(itl.collect()),
        },
        throughput: Throughput {
            input_tokens_per_sec: per_s(input, total_time),
            output_tokens_per_sec: per_s(output, total_time),
            total_tokens_per_sec: per_s(input + output, total_time),
            requests_per_sec: per_s(ok.len() as f64, total_time),
        },
        prompt_len: dist(ok.iter().map(|r| f64::from(r.input_tokens))),
        prompt_tokens: prompt_tokens(ok),
        output_len: dist(ok.iter().map(|r| f64::from(r.output_tokens))),
        output_tokens: OutputTokens {
            total: output,
            dist: dist(ok.iter().map(|r| f64::from(r.output_tokens))),
        },
        token_count_mismatches: 0,
    }
}

fn failures(failed: &[&RequestRecord]) -> Failures {
    let mut by_label = std::collections::BTreeMap::new();
    for (reason, label) in [
        (FinishReason::Rejected, "rejected: no endpoint"),
        (
            FinishReason::TooLong,
            "rejected by the server: longer than max_model_len",
        ),
        (FinishReason::Unfinished, "unfinished at end of run"),
        (FinishReason::BandFull, "flow control: band full"),
        (FinishReason::QueueFull, "flow control: queue full"),
        (FinishReason::Displaced, "flow control: displaced"),
        (FinishReason::Expired, "flow control: expired in queue"),
    ] {
        let count = failed.iter().filter(|r| r.finish == reason).count();
        if count > 0 {
            by_label.insert(
                label,
                Label {
                    count,
                    messages: Vec::new(),
                },
            );
        }
    }
    Failures {
        count: failed.len(),
        request_latency: dist(failed.iter().map(|r| end_time(r) - r.arrival_s)),
        prompt_len: dist(failed.iter().map(|r| f64::from(r.input_tokens))),
        prompt_tokens: prompt_tokens(failed),
        by_label,
    }
}

/// The lifecycle metrics of `reqs`; `stage` adds the offered-load fields of a stage file.
/// `None` for no requests (inference-perf writes no file then).
pub(crate) fn lifecycle(reqs: &[&RequestRecord], stage: Option<&StageInfo>) -> Option<Lifecycle> {
    let first = reqs.iter().map(|r| r.arrival_s).reduce(f64::min)?;
    let last = reqs.iter().map(|r| r.arrival_s).reduce(f64::max)?;
    let total_time = span_s(reqs).unwrap_or(0.0);
    let (ok, failed): (Vec<&RequestRecord>, Vec<&RequestRecord>) =
        reqs.iter().partition(|r| r.succeeded());
    let send_duration = last - first;
    Some(Lifecycle {
        benchmark_time_seconds: total_time,
        load_summary: LoadSummary {
            count: reqs.len(),
            schedule_delay: dist(reqs.iter().map(|_| 0.0)),
            stage: stage.map(|s| StageLoad {
                send_duration,
                requested_rate: s.rate,
                achieved_rate: per_s(reqs.len() as f64, send_duration),
            }),
        },
        successes: successes(&ok, total_time),
        failures: failures(&failed),
    })
}
