//! `manifest.json`: what it takes to reproduce a run, and what it cost in wall time.

use super::ReportContext;
use super::stats::{percentile_sorted, sorted};
use crate::results::RunResult;

#[derive(serde::Serialize)]
struct DecisionCost {
    /// Decisions measured.
    count: usize,
    p50: Option<f64>,
    p99: Option<f64>,
}

#[derive(serde::Serialize)]
pub(crate) struct Manifest<'a> {
    tool: &'static str,
    tool_version: &'static str,
    git_revision: Option<&'a str>,
    experiment: &'a serde_json::Value,
    seeds: &'a [u64],
    coefficients: &'a serde_json::Value,
    wall_seconds: f64,
    /// Σ simulated seconds over all runs ÷ wall seconds of the whole experiment.
    simulated_seconds_per_wall_second: Option<f64>,
    /// Wall-clock microseconds per scheduling decision, over every run.
    scheduler_us_per_decision: DecisionCost,
}

pub(crate) fn manifest<'a>(ctx: &'a ReportContext<'a>, runs: &[RunResult]) -> Manifest<'a> {
    let us: Vec<f64> = sorted(
        &runs
            .iter()
            .flat_map(|r| r.decision_us.iter().copied())
            .collect::<Vec<_>>(),
    );
    let simulated: f64 = runs.iter().map(|r| r.simulated_s).sum();
    Manifest {
        tool: "epp-lab",
        tool_version: env!("CARGO_PKG_VERSION"),
        git_revision: ctx.git_revision,
        experiment: ctx.experiment,
        seeds: ctx.seeds,
        coefficients: &ctx.coefficients,
        wall_seconds: ctx.wall_s,
        simulated_seconds_per_wall_second: (ctx.wall_s > 0.0).then(|| simulated / ctx.wall_s),
        scheduler_us_per_decision: DecisionCost {
            count: us.len(),
            p50: percentile_sorted(&us, 50.0),
            p99: percentile_sorted(&us, 99.0),
        },
    }
}
