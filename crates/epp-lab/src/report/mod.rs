//! Outputs of a lab experiment, all under one directory:
//!
//! ```text
//! DIR/summary.json                 per policy: stages and overall, mean over seeds + ci95
//! DIR/tidy.csv                     policy,workload,qps,seed,metric,value
//! DIR/manifest.json                experiment, seeds, git revision, coefficients, wall costs
//! DIR/<policy>/seed-<N>/summary_lifecycle_metrics.json   inference-perf shape
//! DIR/<policy>/seed-<N>/stage_<i>_lifecycle_metrics.json inference-perf shape
//! DIR/<policy>/seed-<N>/requests.csv, pods.csv, decisions.jsonl (when recorded)
//! DIR/plots/ttft_vs_qps.png, throughput_vs_qps.png, <policy>_queue.png, <policy>_kv.png
//! ```
//!
//! Everything except `wall_seconds` (summary.json) and `manifest.json` is a pure function of
//! the runs, so the same inputs give byte-identical files. Percentiles interpolate linearly
//! between closest ranks (NumPy's default, as inference-perf).

pub mod classes;
mod csv;
mod font;
mod lifecycle;
mod manifest;
pub mod metrics;
mod plots;
mod precise;
mod stats;
pub mod summary;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::results::RunResult;
use summary::{Ordered, PolicySummary, Summary};

/// What the report needs besides the runs.
pub struct ReportContext<'a> {
    /// The experiment as resolved (goes into summary.json and the manifest).
    pub experiment: &'a serde_json::Value,
    /// Workload name for the tidy CSV.
    pub workload: &'a str,
    /// Policy names in experiment order.
    pub policies: &'a [String],
    pub seeds: &'a [u64],
    /// Wall seconds of the whole experiment.
    pub wall_s: f64,
    pub git_revision: Option<&'a str>,
    /// Step-time model coefficients for the manifest.
    pub coefficients: serde_json::Value,
    /// Draw PNGs.
    pub plots: bool,
}

/// A report file that could not be written; names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot draw {}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
}

/// One policy's runs, seeds in experiment order.
pub(crate) struct PolicyRuns<'a> {
    pub name: String,
    pub runs: Vec<&'a RunResult>,
}

/// Writes every output file into `dir` (created if missing) and returns the summary.
pub fn write_all(
    dir: &Path,
    ctx: &ReportContext<'_>,
    runs: &[RunResult],
) -> Result<serde_json::Value, ReportError> {
    mkdir(dir)?;
    let policies = group(ctx, runs);
    let priority = |objective: Option<&str>| objective_priority(ctx.experiment, objective);
    let summaries: Vec<(String, PolicySummary)> = policies
        .iter()
        .map(|p| (p.name.clone(), summary::policy_summary(p, &priority)))
        .collect();
    let summary = Summary {
        experiment: ctx.experiment,
        seeds: ctx.seeds,
        wall_seconds: ctx.wall_s,
        simulated_seconds: runs.iter().map(|r| r.simulated_s).fold(0.0, f64::max),
        policies: Ordered(&summaries),
    };
    write_json(&dir.join("summary.json"), &summary)?;
    for p in &policies {
        for run in &p.runs {
            write_run(
                &dir.join(sanitize(&p.name))
                    .join(format!("seed-{}", run.seed)),
                run,
            )?;
        }
    }
    write_text(
        &dir.join("tidy.csv"),
        &csv::tidy_csv(&policies, ctx.workload),
    )?;
    write_json(&dir.join("manifest.json"), &manifest::manifest(ctx, runs))?;
    if ctx.plots {
        plots::draw_all(
            &dir.join("plots"),
            &summaries,
            &policies,
            font::ensure_font(),
        )?;
    }
    serde_json::to_value(&summary).map_err(|source| ReportError::Json {
        path: dir.join("summary.json"),
        source,
    })
}

/// An objective's priority as the resolved experiment lists it (0 for none or unknown).
fn objective_priority(experiment: &serde_json::Value, objective: Option<&str>) -> i32 {
    let Some(name) = objective else {
        return 0;
    };
    experiment["objectives"]
        .as_array()
        .and_then(|list| list.iter().find(|o| o["name"] == name))
        .and_then(|o| o["priority"].as_i64())
        .and_then(|p| i32::try_from(p).ok())
        .unwrap_or(0)
}

/// The summary without wall-clock numbers (`wall_seconds`, and any `*_us` or `*_us_*` field
/// such as scheduler microseconds per decision), for
/// comparing two runs of the same experiment.
pub fn deterministic_view(summary: &serde_json::Value) -> serde_json::Value {
    match summary {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .filter(|(k, _)| !is_wall_clock(k))
                .map(|(k, v)| (k.clone(), deterministic_view(v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(deterministic_view).collect())
        }
        other => other.clone(),
    }
}

fn is_wall_clock(key: &str) -> bool {
    key == "wall_seconds" || key.ends_with("_us") || key.contains("_us_")
}

/// A policy name made safe as a path component: `[A-Za-z0-9._-]` kept, anything else `_`.
pub fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        format!("_{s}")
    } else {
        s
    }
}

/// Runs by policy: the experiment's order first, then any other policy by name; seeds in
/// the experiment's order, then by value.
fn group<'a>(ctx: &ReportContext<'_>, runs: &'a [RunResult]) -> Vec<PolicyRuns<'a>> {
    let mut names: Vec<String> = ctx.policies.to_vec();
    let mut extra: Vec<String> = runs
        .iter()
        .map(|r| r.policy.clone())
        .filter(|p| !names.contains(p))
        .collect();
    extra.sort();
    extra.dedup();
    names.extend(extra);
    let seed_rank = |s: u64| ctx.seeds.iter().position(|&x| x == s).unwrap_or(usize::MAX);
    names
        .into_iter()
        .map(|name| {
            let mut mine: Vec<&RunResult> = runs.iter().filter(|r| r.policy == name).collect();
            mine.sort_by_key(|r| (seed_rank(r.seed), r.seed));
            PolicyRuns { name, runs: mine }
        })
        .collect()
}

/// The per-seed directory: inference-perf files, requests, pod samples, decisions.
fn write_run(dir: &Path, run: &RunResult) -> Result<(), ReportError> {
    mkdir(dir)?;
    let all: Vec<_> = run.requests.iter().collect();
    if let Some(l) = lifecycle::lifecycle(&all, None) {
        write_json(&dir.join("summary_lifecycle_metrics.json"), &l)?;
    }
    for (stage, reqs) in summary::run_stages(run) {
        if let Some(l) = lifecycle::lifecycle(&reqs, Some(stage)) {
            let name = format!("stage_{}_lifecycle_metrics.json", stage.index);
            write_json(&dir.join(name), &l)?;
        }
    }
    write_text(
        &dir.join("requests.csv"),
        &csv::requests_csv(&run.requests, run.flow_control || !run.classes.is_empty()),
    )?;
    write_text(&dir.join("pods.csv"), &csv::pods_csv(&run.pods))?;
    if let Some(lines) = &run.decision_records {
        let text: String = lines
            .iter()
            .map(|l| format!("{}\n", l.trim_end()))
            .collect();
        write_text(&dir.join("decisions.jsonl"), &text)?;
    }
    Ok(())
}

fn mkdir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.into(),
        source,
    })
}

fn write_text(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Io {
        path: path.into(),
        source,
    })
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), ReportError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|source| ReportError::Json {
        path: path.into(),
        source,
    })?;
    text.push('\n');
    write_text(path, &text)
}
