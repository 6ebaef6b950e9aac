//! Runs a whole experiment: every (policy, seed) pair on a pool of threads, a progress bar
//! on stderr, then the report.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::experiment::Experiment;
use crate::report::{self, ReportContext};
use crate::results::RunResult;
use crate::sim::{self, RunOptions, engine_config};
use crate::workload::Workload;

/// How an experiment is run.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Worker threads (≥ 1).
    pub threads: usize,
    /// Keep and write decision records.
    pub decisions: bool,
    /// Draw the PNG plots.
    pub plots: bool,
    /// Show a progress bar on stderr (after the first second).
    pub progress: bool,
    /// Check engine invariants after every step (slow).
    pub check_invariants: bool,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            decisions: false,
            plots: true,
            progress: true,
            check_invariants: false,
        }
    }
}

/// Runs `experiment` and writes its report into `out`; returns the summary.
pub fn run_experiment(
    experiment: &Experiment,
    out: &Path,
    options: &RunnerOptions,
) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let workloads = experiment
        .seeds
        .iter()
        .map(|&seed| experiment.generate(seed))
        .collect::<Result<Vec<_>, _>>()?;
    let runs = run_all(experiment, &workloads, options)?;
    let wall_s = started.elapsed().as_secs_f64();
    let resolved = experiment.resolved_json();
    let policies: Vec<String> = experiment.policies.iter().map(|p| p.name.clone()).collect();
    let workload_name = workloads.first().map_or("", |w| w.name.as_str());
    let revision = option_env!("EPP_LAB_GIT_REVISION");
    let context = ReportContext {
        experiment: &resolved,
        workload: workload_name,
        policies: &policies,
        seeds: &experiment.seeds,
        wall_s,
        git_revision: revision,
        coefficients: coefficients(experiment),
        plots: options.plots,
    };
    Ok(report::write_all(out, &context, &runs)?)
}

/// Every (policy, seed) run, on `options.threads` threads; results in (policy, seed) order.
pub fn run_all(
    experiment: &Experiment,
    workloads: &[Workload],
    options: &RunnerOptions,
) -> anyhow::Result<Vec<RunResult>> {
    let jobs: Vec<(usize, usize)> = (0..experiment.policies.len())
        .flat_map(|p| (0..workloads.len()).map(move |s| (p, s)))
        .collect();
    let total: u64 = jobs
        .iter()
        .map(|&(p, s)| {
            experiment
                .workload_for(p, &workloads[s])
                .map_or(workloads[s].requests.len(), |w| w.requests.len()) as u64
        })
        .sum();
    let next = AtomicUsize::new(0);
    let resolved = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let results: Mutex<Vec<Option<anyhow::Result<RunResult>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        let bar = options
            .progress
            .then(|| scope.spawn(|| progress_bar(&resolved, total, &finished)));
        let workers: Vec<_> = (0..options.threads.clamp(1, jobs.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    loop {
                        let job = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(policy, seed_index)) = jobs.get(job) else {
                            break;
                        };
                        let run_options = RunOptions {
                            progress: Some(&resolved),
                            record_decisions: options.decisions,
                            check_invariants: options.check_invariants,
                        };
                        let seed = experiment.seeds[seed_index];
                        let only = experiment.workload_for(policy, &workloads[seed_index]);
                        let result = sim::run(
                            experiment,
                            policy,
                            only.as_ref().unwrap_or(&workloads[seed_index]),
                            seed,
                            run_options,
                        )
                        .map_err(anyhow::Error::from);
                        if let Ok(mut slots) = results.lock() {
                            slots[job] = Some(result);
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            let _ = worker.join();
        }
        finished.store(true, Ordering::Relaxed);
        if let Some(bar) = bar {
            let _ = bar.join();
        }
    });
    let slots = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a run panicked"))?;
    slots
        .into_iter()
        .map(|slot| slot.unwrap_or_else(|| Err(anyhow::anyhow!("a run did not finish"))))
        .collect()
}

/// Redraws `[####    ] 41% 14,352/35,000 requests` on stderr every 200 ms once the run has
/// taken a second, and clears it at the end.
fn progress_bar(resolved: &AtomicU64, total: u64, finished: &AtomicBool) {
    let started = Instant::now();
    let mut drawn = false;
    while !finished.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        if started.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let done = resolved.load(Ordering::Relaxed).min(total);
        let fraction = if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        };
        let filled = (fraction * 30.0) as usize;
        eprint!(
            "\r[{}{}] {:3.0}% {done}/{total} requests, {:.0} s",
            "#".repeat(filled),
            " ".repeat(30 - filled),
            fraction * 100.0,
            started.elapsed().as_secs_f64()
        );
        drawn = true;
    }
    if drawn {
        eprintln!();
    }
}

/// The step-time model's coefficients, for the manifest.
fn coefficients(experiment: &Experiment) -> serde_json::Value {
    match &engine_config(experiment).step_time {
        epp_engine::StepTime::Roofline(model) => serde_json::json!({
            "model": "roofline",
            "profile": model.profile(),
            "coefficients": model.coefficients(),
        }),
        epp_engine::StepTime::Linear(model) => serde_json::json!({
            "model": "linear",
            "base_s": model.base.as_secs_f64(),
            "per_prefill_token_s": model.per_prefill_token.as_secs_f64(),
            "per_decode_seq_s": model.per_decode_seq.as_secs_f64(),
            "per_context_token_s": model.per_context_token.as_secs_f64(),
        }),
        epp_engine::StepTime::Constant(model) => serde_json::json!({
            "model": "constant",
            "coefficients": model,
        }),
        epp_engine::StepTime::Table(table) => serde_json::json!({
            "model": "table",
            "samples": table,
        }),
    }
}
