//! `summary.json`: per policy, per stage and overall, mean over seeds with 95% CIs.

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::PolicyRuns;
use super::metrics::{StageMetrics, ci_of, mean_of, pod_count};
use crate::results::{RequestRecord, RunResult, StageInfo};

/// One stage (or `overall`, where `stage` and `rate` are null) of one policy.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StageSummary {
    pub stage: Option<u32>,
    /// Offered rate, requests per second.
    pub rate: Option<f64>,
    pub warmup: bool,
    #[serde(flatten)]
    pub metrics: StageMetrics,
    /// 95% confidence half-widths over seeds of every number above (0 with one seed).
    pub ci95: StageMetrics,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PolicySummary {
    pub stages: Vec<StageSummary>,
    pub overall: StageSummary,
    /// KV-event delivery and precise-index counters (policies with a precise scorer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precise: Option<serde_json::Value>,
    /// Per class and flow (multi-class workloads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<super::classes::ClassSummary>>,
}

/// Policies in experiment order (a JSON object whose key order we choose).
pub struct Ordered<'a, T>(pub &'a [(String, T)]);

impl<T: Serialize> Serialize for Ordered<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(serde::Serialize)]
pub struct Summary<'a> {
    pub experiment: &'a serde_json::Value,
    pub seeds: &'a [u64],
    pub wall_seconds: f64,
    pub simulated_seconds: f64,
    pub policies: Ordered<'a, PolicySummary>,
}

/// The stages of one run, by index, with the requests sent in each.
pub(crate) fn run_stages(run: &RunResult) -> Vec<(&StageInfo, Vec<&RequestRecord>)> {
    let mut stages: Vec<&StageInfo> = run.stages.iter().collect();
    stages.sort_by_key(|s| s.index);
    stages
        .into_iter()
        .map(|s| {
            (
                s,
                run.requests.iter().filter(|r| r.stage == s.index).collect(),
            )
        })
        .collect()
}

/// Requests outside warm-up stages (a request whose stage is unknown counts as measured).
pub(crate) fn measured_requests(run: &RunResult) -> Vec<&RequestRecord> {
    let warm = |i: u32| run.stages.iter().any(|s| s.index == i && s.warmup);
    run.requests.iter().filter(|r| !warm(r.stage)).collect()
}

/// Per-stage metrics of one run: (stage, metrics) in stage order.
pub(crate) fn run_stage_metrics(run: &RunResult) -> Vec<(&StageInfo, StageMetrics)> {
    let pods = pod_count(run);
    run_stages(run)
        .into_iter()
        .map(|(s, reqs)| (s, StageMetrics::of(&reqs, pods)))
        .collect()
}

fn combined(
    stage: Option<u32>,
    rate: Option<f64>,
    warmup: bool,
    per_seed: &[&StageMetrics],
) -> StageSummary {
    StageSummary {
        stage,
        rate,
        warmup,
        metrics: StageMetrics::combine(per_seed, mean_of),
        ci95: StageMetrics::combine(per_seed, ci_of),
    }
}

/// The summary of one policy over its seeds; `priority` gives an objective's priority.
pub(crate) fn policy_summary(
    p: &PolicyRuns<'_>,
    priority: &dyn Fn(Option<&str>) -> i32,
) -> PolicySummary {
    let per_run: Vec<Vec<(&StageInfo, StageMetrics)>> =
        p.runs.iter().map(|r| run_stage_metrics(r)).collect();
    let mut infos: Vec<&StageInfo> = per_run.iter().flatten().map(|(s, _)| *s).collect();
    infos.sort_by_key(|s| s.index);
    infos.dedup_by_key(|s| s.index);
    let stages = infos
        .iter()
        .map(|info| {
            let seeds: Vec<&StageMetrics> = per_run
                .iter()
                .filter_map(|stages| stages.iter().find(|(s, _)| s.index == info.index))
                .map(|(_, m)| m)
                .collect();
            combined(Some(info.index), info.rate, info.warmup, &seeds)
        })
        .collect();
    let overall: Vec<StageMetrics> = p
        .runs
        .iter()
        .map(|r| StageMetrics::of(&measured_requests(r), pod_count(r)))
        .collect();
    let overall_refs: Vec<&StageMetrics> = overall.iter().collect();
    PolicySummary {
        stages,
        overall: combined(None, None, false, &overall_refs),
        precise: super::precise::precise_summary(&p.runs),
        classes: super::classes::class_summaries(&p.runs, priority),
    }
}
