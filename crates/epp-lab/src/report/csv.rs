//! The CSV files: per-request and per-pod records of one run, and the tidy sweep table.
//! Written by hand: every value is a number or a fixed word except names, which are quoted.

use std::fmt::Write as _;

use super::PolicyRuns;
use super::metrics::StageMetrics;
use super::summary::run_stage_metrics;
use crate::results::{FinishReason, PodSample, RequestRecord};

/// A number as Rust prints it (shortest round-trip form, never exponent notation).
fn num(v: f64) -> String {
    format!("{v}")
}

/// An optional cell: empty for `None`.
fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// A name, always quoted, with quotes doubled (RFC 4180).
pub(crate) fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn finish(f: FinishReason) -> &'static str {
    f.label()
}

pub(crate) const REQUESTS_HEADER: &str = "id,stage,group,session,round,pod,arrival_s,scheduled_s,\
first_token_s,completed_s,input_tokens,cached_tokens,output_tokens,queue_wait_s,ttft_s,tpot_s,\
e2e_s,preemptions,finish";

/// Extra columns of a run with classes or flow control.
pub(crate) const FLOW_COLUMNS: &str = ",class,flow,dispatched_s,epp_wait_s";

/// `requests.csv`: one row per request, empty cells for unknowns; `flows` adds the class,
/// flow and waiting-room columns (runs with classes or flow control only, so other runs'
/// files stay as they were).
pub(crate) fn requests_csv(reqs: &[RequestRecord], flows: bool) -> String {
    let mut out = String::from(REQUESTS_HEADER);
    if flows {
        out.push_str(FLOW_COLUMNS);
    }
    out.push('\n');
    for r in reqs {
        let cells = [
            r.id.to_string(),
            r.stage.to_string(),
            opt(r.group),
            opt(r.session),
            opt(r.round),
            opt(r.pod),
            num(r.arrival_s),
            opt(r.scheduled_s),
            opt(r.first_token_s),
            opt(r.completed_s),
            r.input_tokens.to_string(),
            r.cached_tokens.to_string(),
            r.output_tokens.to_string(),
            opt(r.queue_wait_s()),
            opt(r.ttft_s()),
            opt(r.tpot_s()),
            opt(r.e2e_s()),
            r.preemptions.to_string(),
            finish(r.finish).to_string(),
        ];
        out.push_str(&cells.join(","));
        if flows {
            let extra = [
                opt(r.class),
                opt(r.flow),
                opt(r.dispatched_s),
                opt(r.epp_wait_s()),
            ];
            out.push(',');
            out.push_str(&extra.join(","));
        }
        out.push('\n');
    }
    out
}

/// `pods.csv`: one row per pod sample.
pub(crate) fn pods_csv(samples: &[PodSample]) -> String {
    let mut out = String::from(
        "time_s,pod,waiting,running,kv_usage,prefix_queries,prefix_hits,preemptions\n",
    );
    for p in samples {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            num(p.time_s),
            p.pod,
            p.waiting,
            p.running,
            num(p.kv_usage),
            p.prefix_queries,
            p.prefix_hits,
            p.preemptions
        );
    }
    out
}

/// Reads one number out of a stage's metrics.
type Getter = fn(&StageMetrics) -> Option<f64>;

/// The metrics of the tidy table, in row order.
const TIDY_METRICS: [(&str, Getter); 9] = [
    ("ttft_p50_ms", |m| m.ttft_ms.as_ref().map(|q| q.p50)),
    ("ttft_p90_ms", |m| m.ttft_ms.as_ref().map(|q| q.p90)),
    ("ttft_p99_ms", |m| m.ttft_ms.as_ref().map(|q| q.p99)),
    ("tpot_p50_ms", |m| m.tpot_ms.as_ref().map(|q| q.p50)),
    ("e2e_p50_ms", |m| m.e2e_ms.as_ref().map(|q| q.p50)),
    ("output_tokens_per_s", |m| m.output_tokens_per_s),
    ("requests_per_s", |m| m.requests_per_s),
    ("prefix_hit_rate", |m| m.prefix_hit_rate),
    ("jain_index", |m| m.jain_index),
];

/// `tidy.csv`: one row per (policy, stage, seed, metric), warm-up stages left out; an
/// unknown value is an empty cell.
pub(crate) fn tidy_csv(policies: &[PolicyRuns<'_>], workload: &str) -> String {
    let mut out = String::from("policy,workload,qps,seed,metric,value\n");
    for p in policies {
        let per_run: Vec<_> = p
            .runs
            .iter()
            .map(|r| (r.seed, run_stage_metrics(r)))
            .collect();
        let mut stages: Vec<(u32, Option<f64>)> = per_run
            .iter()
            .flat_map(|(_, st)| {
                st.iter()
                    .filter(|(s, _)| !s.warmup)
                    .map(|(s, _)| (s.index, s.rate))
            })
            .collect();
        stages.sort_by_key(|s| s.0);
        stages.dedup_by_key(|s| s.0);
        for (index, rate) in stages {
            for (seed, st) in &per_run {
                let Some((_, m)) = st.iter().find(|(s, _)| s.index == index) else {
                    continue;
                };
                for (name, get) in TIDY_METRICS {
                    let _ = writeln!(
                        out,
                        "{},{},{},{seed},{name},{}",
                        quoted(&p.name),
                        quoted(workload),
                        opt(rate),
                        opt(get(m))
                    );
                }
            }
        }
    }
    out
}
