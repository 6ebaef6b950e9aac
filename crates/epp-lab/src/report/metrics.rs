//! The per-stage numbers of `summary.json`, for one run and then combined over seeds.
//!
//! Requests belong to the stage in which they were *sent* (inference-perf semantics), so a
//! request sent late in stage 3 and finished in stage 4 counts for stage 3.

use serde::Serialize;

use super::stats::{ci95, jain, mean, percentile_sorted, sorted};
use crate::results::{RequestRecord, RunResult};

/// Mean and tail of one latency, milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quad {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Quad {
    /// `None` for an empty set: unknown, not zero.
    fn of(values: &[f64]) -> Option<Self> {
        let s = sorted(values);
        Some(Self {
            mean: mean(&s)?,
            p50: percentile_sorted(&s, 50.0)?,
            p90: percentile_sorted(&s, 90.0)?,
            p99: percentile_sorted(&s, 99.0)?,
        })
    }
}

/// The numbers of one stage (or of `overall`). Every field is a mean over seeds once
/// combined; `None` is printed as `null` and means "no data", never zero.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageMetrics {
    /// Requests sent in the stage.
    pub requests: f64,
    /// Of those, rejected or unfinished.
    pub failures: f64,
    pub ttft_ms: Option<Quad>,
    pub tpot_ms: Option<Quad>,
    pub e2e_ms: Option<Quad>,
    pub queue_ms: Option<Quad>,
    /// Σ output tokens of successes ÷ (last end − first start), inference-perf's definition.
    pub output_tokens_per_s: Option<f64>,
    /// Successes ÷ (last end − first start).
    pub requests_per_s: Option<f64>,
    /// Σ cached ÷ Σ input tokens over the requests an engine admitted.
    pub prefix_hit_rate: Option<f64>,
    /// Fraction of the routed requests per pod (index = pod).
    pub load_split: Option<Vec<f64>>,
    pub jain_index: Option<f64>,
}

/// When a request stopped mattering to the client: its last token, or for a failure the
/// last thing that happened to it (a rejection ends at its arrival).
pub(crate) fn end_time(r: &RequestRecord) -> f64 {
    r.completed_s
        .or(r.first_token_s)
        .or(r.scheduled_s)
        .unwrap_or(r.arrival_s)
}

/// Last end − first start over `reqs`, as inference-perf's `total_time`; `None` when not
/// positive.
pub(crate) fn span_s(reqs: &[&RequestRecord]) -> Option<f64> {
    let start = reqs.iter().map(|r| r.arrival_s).reduce(f64::min)?;
    let end = reqs.iter().map(|r| end_time(r)).reduce(f64::max)?;
    (end > start).then_some(end - start)
}

/// Number of pods a run had: the highest pod index seen in samples or requests, plus one.
pub(crate) fn pod_count(run: &RunResult) -> usize {
    let samples = run.pods.iter().map(|p| p.pod);
    let routed = run.requests.iter().filter_map(|r| r.pod);
    samples.chain(routed).max().map_or(0, |m| m as usize + 1)
}

fn ms(reqs: &[&RequestRecord], f: impl Fn(&RequestRecord) -> Option<f64>) -> Option<Quad> {
    let v: Vec<f64> = reqs
        .iter()
        .filter_map(|r| f(r))
        .map(|s| s * 1000.0)
        .collect();
    Quad::of(&v)
}

impl StageMetrics {
    /// The numbers of one run over `reqs` (the requests sent in one stage, or in all
    /// non-warm-up stages).
    pub fn of(reqs: &[&RequestRecord], pods: usize) -> Self {
        let ok: Vec<&RequestRecord> = reqs.iter().copied().filter(|r| r.succeeded()).collect();
        let span = span_s(reqs);
        // A fold from +0.0: `f64::sum` of nothing is -0.0, which would print as "-0".
        let out = ok
            .iter()
            .fold(0.0, |sum, r| sum + f64::from(r.output_tokens));
        let admitted = reqs.iter().filter(|r| r.scheduled_s.is_some());
        let (cached, input) = admitted.fold((0.0, 0.0), |(c, i), r| {
            (
                c + f64::from(r.cached_tokens),
                i + f64::from(r.input_tokens),
            )
        });
        let mut counts = vec![0.0; pods];
        for p in reqs.iter().filter_map(|r| r.pod) {
            if let Some(c) = counts.get_mut(p as usize) {
                *c += 1.0;
            }
        }
        let routed: f64 = counts.iter().sum();
        Self {
            requests: reqs.len() as f64,
            failures: (reqs.len() - ok.len()) as f64,
            ttft_ms: ms(&ok, RequestRecord::ttft_s),
            tpot_ms: ms(&ok, RequestRecord::tpot_s),
            e2e_ms: ms(&ok, RequestRecord::e2e_s),
            queue_ms: ms(&ok, RequestRecord::queue_wait_s),
            output_tokens_per_s: span.map(|t| out / t),
            requests_per_s: span.map(|t| ok.len() as f64 / t),
            prefix_hit_rate: (input > 0.0).then(|| cached / input),
            load_split: (routed > 0.0).then(|| counts.iter().map(|c| c / routed).collect()),
            jain_index: jain(&counts),
        }
    }

    /// Combines the same stage of several seeds field by field with `f` (mean or 95% CI
    /// half-width) over the seeds where the field is known. `None` when no seed knows it.
    pub fn combine(seeds: &[&Self], f: fn(&[f64]) -> Option<f64>) -> Self {
        let num = |g: fn(&Self) -> f64| {
            let v: Vec<f64> = seeds.iter().map(|s| g(s)).collect();
            f(&v).unwrap_or(0.0)
        };
        let opt = |g: &dyn Fn(&Self) -> Option<f64>| {
            let v: Vec<f64> = seeds.iter().filter_map(|s| g(s)).collect();
            f(&v)
        };
        let quad = |g: fn(&Self) -> Option<&Quad>| {
            let known: Vec<&Quad> = seeds.iter().filter_map(|s| g(s)).collect();
            let field = |h: fn(&Quad) -> f64| f(&known.iter().map(|q| h(q)).collect::<Vec<_>>());
            Some(Quad {
                mean: field(|q| q.mean)?,
                p50: field(|q| q.p50)?,
                p90: field(|q| q.p90)?,
                p99: field(|q| q.p99)?,
            })
        };
        Self {
            requests: num(|s| s.requests),
            failures: num(|s| s.failures),
            ttft_ms: quad(|s| s.ttft_ms.as_ref()),
            tpot_ms: quad(|s| s.tpot_ms.as_ref()),
            e2e_ms: quad(|s| s.e2e_ms.as_ref()),
            queue_ms: quad(|s| s.queue_ms.as_ref()),
            output_tokens_per_s: opt(&|s| s.output_tokens_per_s),
            requests_per_s: opt(&|s| s.requests_per_s),
            prefix_hit_rate: opt(&|s| s.prefix_hit_rate),
            load_split: combine_split(seeds, f),
            jain_index: opt(&|s| s.jain_index),
        }
    }
}

/// Element-wise over the seeds that routed anything; a pod a seed lacks counts as 0.
fn combine_split(seeds: &[&StageMetrics], f: fn(&[f64]) -> Option<f64>) -> Option<Vec<f64>> {
    let known: Vec<&Vec<f64>> = seeds.iter().filter_map(|s| s.load_split.as_ref()).collect();
    let width = known.iter().map(|v| v.len()).max()?;
    (0..width)
        .map(|i| {
            f(&known
                .iter()
                .map(|v| v.get(i).copied().unwrap_or(0.0))
                .collect::<Vec<_>>())
        })
        .collect()
}

/// Mean over seeds (the `f` for [`StageMetrics::combine`]).
pub(crate) fn mean_of(v: &[f64]) -> Option<f64> {
    mean(v)
}

/// 95% CI half-width over seeds (the `f` for [`StageMetrics::combine`]).
pub(crate) fn ci_of(v: &[f64]) -> Option<f64> {
    ci95(v)
}
