//! Per class (objective) and per flow numbers of a multi-class run, for `summary.json`:
//! completions, failures by reason, TTFT and waits, served output tokens per second, and
//! Jain's index over the flows of each class (on served throughput, so a starved flow
//! pulls it down).
//!
//! Only measured stages count (warm-up left out), and every throughput divides by the
//! run's measured span (first arrival to last end over all classes), so the classes'
//! throughputs add up to the run's.

use std::collections::BTreeMap;

use serde::Serialize;

use super::metrics::span_s;
use super::stats::{jain, mean, percentile_sorted, sorted};
use super::summary::measured_requests;
use crate::results::{RequestRecord, RunResult};

/// p50, p90 and p99 of one latency, milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tail {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Tail {
    fn of(seconds: impl Iterator<Item = f64>) -> Option<Tail> {
        let ms: Vec<f64> = seconds.map(|s| s * 1000.0).collect();
        let s = sorted(&ms);
        Some(Tail {
            p50: percentile_sorted(&s, 50.0)?,
            p90: percentile_sorted(&s, 90.0)?,
            p99: percentile_sorted(&s, 99.0)?,
        })
    }
}

/// The numbers of one class or flow (a mean over seeds once combined).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupMetrics {
    /// Requests sent (measured stages).
    pub requests: f64,
    pub completed: f64,
    /// Requests that did not complete, by reason (`expired`, `displaced`, `band_full`,
    /// `queue_full`, `rejected`, `too_long`, `unfinished`).
    pub failed: BTreeMap<String, f64>,
    /// Of completed requests, from the arrival at the EPP (queue wait included).
    pub ttft_ms: Option<Tail>,
    /// Time in the EPP's waiting room, of requests routed (flow control only).
    pub epp_wait_ms: Option<Tail>,
    /// Arrival at the EPP to the first engine step (EPP wait + frontend + engine queue).
    pub queue_ms: Option<Tail>,
    /// Σ output tokens of completed requests ÷ the run's measured span.
    pub output_tokens_per_s: Option<f64>,
}

/// One class of one policy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassSummary {
    pub name: String,
    pub objective: Option<String>,
    pub priority: i32,
    #[serde(flatten)]
    pub metrics: GroupMetrics,
    /// Jain's index over the class's flows, on served output tokens per second.
    pub jain_flows: Option<f64>,
    /// Per flow, in flow order.
    pub flows: Vec<GroupMetrics>,
}

impl GroupMetrics {
    fn of(reqs: &[&RequestRecord], span: Option<f64>) -> GroupMetrics {
        let ok: Vec<&RequestRecord> = reqs.iter().copied().filter(|r| r.succeeded()).collect();
        let mut failed = BTreeMap::new();
        for r in reqs.iter().filter(|r| !r.succeeded()) {
            *failed.entry(r.finish.label().to_string()).or_insert(0.0) += 1.0;
        }
        let output = ok
            .iter()
            .fold(0.0, |sum, r| sum + f64::from(r.output_tokens));
        GroupMetrics {
            requests: reqs.len() as f64,
            completed: ok.len() as f64,
            failed,
            ttft_ms: Tail::of(ok.iter().filter_map(|r| r.ttft_s())),
            epp_wait_ms: Tail::of(reqs.iter().filter_map(|r| r.epp_wait_s())),
            queue_ms: Tail::of(ok.iter().filter_map(|r| r.queue_wait_s())),
            output_tokens_per_s: span.map(|t| output / t),
        }
    }

    /// Field by field mean over seeds (a reason missing in a seed counts 0 there).
    fn mean(seeds: &[&GroupMetrics]) -> GroupMetrics {
        let avg = |f: &dyn Fn(&GroupMetrics) -> Option<f64>| {
            mean(&seeds.iter().filter_map(|s| f(s)).collect::<Vec<_>>())
        };
        let tail = |f: fn(&GroupMetrics) -> Option<&Tail>| {
            let known: Vec<&Tail> = seeds.iter().filter_map(|s| f(s)).collect();
            let field = |g: fn(&Tail) -> f64| mean(&known.iter().map(|t| g(t)).collect::<Vec<_>>());
            Some(Tail {
                p50: field(|t| t.p50)?,
                p90: field(|t| t.p90)?,
                p99: field(|t| t.p99)?,
            })
        };
        let mut failed = BTreeMap::new();
        for seed in seeds {
            for (reason, n) in &seed.failed {
                *failed.entry(reason.clone()).or_insert(0.0) += n / seeds.len() as f64;
            }
        }
        GroupMetrics {
            requests: avg(&|s| Some(s.requests)).unwrap_or(0.0),
            completed: avg(&|s| Some(s.completed)).unwrap_or(0.0),
            failed,
            ttft_ms: tail(|s| s.ttft_ms.as_ref()),
            epp_wait_ms: tail(|s| s.epp_wait_ms.as_ref()),
            queue_ms: tail(|s| s.queue_ms.as_ref()),
            output_tokens_per_s: avg(&|s| s.output_tokens_per_s),
        }
    }
}

/// One run's classes: (class metrics, per-flow metrics, Jain over flows).
fn run_classes(run: &RunResult) -> Vec<(GroupMetrics, Vec<GroupMetrics>, Option<f64>)> {
    let measured = measured_requests(run);
    let span = span_s(&measured);
    run.classes
        .iter()
        .enumerate()
        .map(|(index, class)| {
            let mine: Vec<&RequestRecord> = measured
                .iter()
                .copied()
                .filter(|r| r.class == Some(index as u32))
                .collect();
            let flows: Vec<GroupMetrics> = (0..class.flows)
                .map(|flow| {
                    let reqs: Vec<&RequestRecord> = mine
                        .iter()
                        .copied()
                        .filter(|r| r.flow == Some(flow))
                        .collect();
                    GroupMetrics::of(&reqs, span)
                })
                .collect();
            let served: Vec<f64> = flows
                .iter()
                .map(|f| f.output_tokens_per_s.unwrap_or(0.0))
                .collect();
            (GroupMetrics::of(&mine, span), flows, jain(&served))
        })
        .collect()
}

/// The classes of one policy over its seeds; `None` for a single-workload experiment.
/// `priority` gives an objective's priority (0 for none or unknown).
pub(crate) fn class_summaries(
    runs: &[&RunResult],
    priority: &dyn Fn(Option<&str>) -> i32,
) -> Option<Vec<ClassSummary>> {
    let first = runs.first()?;
    if first.classes.is_empty() {
        return None;
    }
    let per_run: Vec<_> = runs.iter().map(|r| run_classes(r)).collect();
    let summaries = first
        .classes
        .iter()
        .enumerate()
        .map(|(index, class)| {
            let seeds: Vec<_> = per_run.iter().filter_map(|r| r.get(index)).collect();
            let metrics: Vec<&GroupMetrics> = seeds.iter().map(|(m, _, _)| m).collect();
            let flows = (0..class.flows as usize)
                .map(|flow| {
                    let per_seed: Vec<&GroupMetrics> =
                        seeds.iter().filter_map(|(_, f, _)| f.get(flow)).collect();
                    GroupMetrics::mean(&per_seed)
                })
                .collect();
            let jains: Vec<f64> = seeds.iter().filter_map(|(_, _, j)| *j).collect();
            ClassSummary {
                name: class.name.clone(),
                objective: class.objective.clone(),
                priority: priority(class.objective.as_deref()),
                metrics: GroupMetrics::mean(&metrics),
                jain_flows: mean(&jains),
                flows,
            }
        })
        .collect();
    Some(summaries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{FinishReason, StageInfo};
    use crate::workload::classes::ClassInfo;

    fn record(id: u64, class: u32, flow: u32, finish: FinishReason, output: u32) -> RequestRecord {
        let arrival = id as f64 * 0.1;
        let ok = finish == FinishReason::Length;
        RequestRecord {
            id,
            stage: 0,
            group: None,
            session: None,
            round: None,
            pod: ok.then_some(0),
            arrival_s: arrival,
            scheduled_s: ok.then_some(arrival + 0.5),
            first_token_s: ok.then_some(arrival + 0.6 + f64::from(class)),
            completed_s: ok.then_some(arrival + 2.0),
            input_tokens: 10,
            cached_tokens: 0,
            output_tokens: if ok { output } else { 0 },
            preemptions: 0,
            finish,
            class: Some(class),
            flow: Some(flow),
            dispatched_s: ok.then_some(arrival + 0.4),
        }
    }

    fn run(requests: Vec<RequestRecord>) -> RunResult {
        RunResult {
            policy: "p".into(),
            seed: 1,
            requests,
            pods: Vec::new(),
            stages: vec![StageInfo {
                index: 0,
                rate: Some(1.0),
                start_s: 0.0,
                duration_s: 1.0,
                warmup: false,
            }],
            simulated_s: 3.0,
            wall_s: 0.0,
            decision_us: Vec::new(),
            decision_records: None,
            precise: None,
            classes: vec![
                ClassInfo {
                    name: "chat".into(),
                    objective: Some("chat".into()),
                    flows: 1,
                },
                ClassInfo {
                    name: "batch".into(),
                    objective: None,
                    flows: 3,
                },
            ],
            flow_control: true,
        }
    }

    #[test]
    fn classes_count_failures_by_reason_and_jain_sees_a_starved_flow() {
        use FinishReason::*;
        let requests = vec![
            record(0, 0, 0, Length, 10),
            record(1, 1, 0, Length, 100),
            record(2, 1, 1, Length, 100),
            record(3, 1, 2, Expired, 0),
            record(4, 1, 2, Displaced, 0),
            record(5, 1, 0, Length, 100),
            record(6, 1, 1, Length, 100),
        ];
        let run = run(requests);
        let priority = |o: Option<&str>| if o == Some("chat") { 10 } else { 0 };
        let classes = class_summaries(&[&run], &priority).expect("classes");
        let (chat, batch) = (&classes[0], &classes[1]);
        assert_eq!((chat.priority, batch.priority), (10, 0));
        assert_eq!(chat.metrics.completed, 1.0);
        assert_eq!(batch.metrics.requests, 6.0);
        assert_eq!(batch.metrics.completed, 4.0);
        assert_eq!(batch.metrics.failed.get("expired"), Some(&1.0));
        assert_eq!(batch.metrics.failed.get("displaced"), Some(&1.0));
        // Span: 0 s to 2.6 s (request 6 ends at 0.6 + 2).
        let tput = batch.metrics.output_tokens_per_s.expect("tput");
        assert!((tput - 400.0 / 2.6).abs() < 1e-9, "{tput}");
        // Flows 0 and 1 served 200 tokens each, flow 2 nothing: (400)^2 / (3 * 80000) = 2/3.
        assert_eq!(batch.flows.len(), 3);
        let jain = batch.jain_flows.expect("jain");
        assert!((jain - 2.0 / 3.0).abs() < 1e-9, "{jain}");
        // TTFT from the arrival at the EPP; the wait in the room alone.
        let ttft = batch.metrics.ttft_ms.as_ref().expect("ttft");
        assert!((ttft.p50 - 1600.0).abs() < 1e-6, "{ttft:?}");
        let wait = chat.metrics.epp_wait_ms.as_ref().expect("wait");
        assert!((wait.p99 - 400.0).abs() < 1e-6, "{wait:?}");
        // A single-workload run has no class section.
        let mut single = run.clone();
        single.classes.clear();
        assert!(class_summaries(&[&single], &priority).is_none());
    }
}
