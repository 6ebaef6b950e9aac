//! Runs of the simulator on small experiments: invariants, determinism, routing effects.

use std::path::Path;

use super::*;
use crate::experiment::Experiment;

fn quick() -> Experiment {
    Experiment::preset("quick").expect("the quick preset")
}

fn run_policy(experiment: &Experiment, policy: &str, seed: u64) -> RunResult {
    let index = experiment
        .policies
        .iter()
        .position(|p| p.name == policy)
        .expect("policy");
    let workload =
        Workload::generate(&experiment.workload, seed, Path::new(".")).expect("workload");
    let options = RunOptions {
        record_decisions: true,
        check_invariants: true,
        progress: None,
    };
    run(experiment, index, &workload, seed, options).expect("run")
}

#[test]
fn every_request_completes_with_ordered_times() {
    let experiment = quick();
    let result = run_policy(&experiment, "approximate", 1);
    assert!(!result.requests.is_empty());
    for r in &result.requests {
        assert_eq!(r.finish, FinishReason::Length, "{r:?}");
        let scheduled = r.scheduled_s.expect("scheduled");
        let first = r.first_token_s.expect("first token");
        let done = r.completed_s.expect("completed");
        assert!(r.arrival_s <= scheduled, "{r:?}");
        assert!(scheduled <= first && first <= done, "{r:?}");
        assert!(r.cached_tokens < r.input_tokens, "{r:?}");
    }
    let times: Vec<f64> = result.pods.iter().map(|s| s.time_s).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "samples in time order"
    );
    let records = result.decision_records.expect("records");
    assert_eq!(records.len(), result.requests.len());
}

#[test]
fn the_same_seed_gives_the_same_run_and_another_seed_another() {
    let experiment = quick();
    let a = run_policy(&experiment, "approximate", 7);
    let b = run_policy(&experiment, "approximate", 7);
    assert_eq!(a.requests, b.requests);
    assert_eq!(a.pods, b.pods);
    assert_eq!(a.decision_records, b.decision_records);
    let c = run_policy(&experiment, "approximate", 8);
    assert_ne!(a.requests, c.requests);
}

#[test]
fn prefix_affinity_raises_the_hit_rate_over_random() {
    let experiment = quick();
    let hit_rate = |result: &RunResult| {
        let cached: u64 = result
            .requests
            .iter()
            .map(|r| u64::from(r.cached_tokens))
            .sum();
        let input: u64 = result
            .requests
            .iter()
            .map(|r| u64::from(r.input_tokens))
            .sum();
        cached as f64 / input as f64
    };
    let approximate = hit_rate(&run_policy(&experiment, "approximate", 1));
    let random = hit_rate(&run_policy(&experiment, "random", 1));
    assert!(
        approximate > random + 0.05,
        "approximate {approximate:.3} vs random {random:.3}"
    );
}

#[test]
fn work_is_conserved_every_output_token_is_produced_once() {
    let experiment = quick();
    let workload = Workload::generate(&experiment.workload, 1, Path::new(".")).expect("workload");
    let result = run_policy(&experiment, "load", 1);
    for (spec, record) in workload.requests.iter().zip(&result.requests) {
        assert_eq!(record.output_tokens, spec.output_tokens.max(1));
    }
}

#[test]
fn a_request_longer_than_max_model_len_fails_alone_without_blocking_the_queue() {
    let experiment = quick();
    let mut workload =
        Workload::generate(&experiment.workload, 1, Path::new(".")).expect("workload");
    // Every fourth request asks for more output than any pod's KV cache holds.
    for spec in workload.requests.iter_mut().step_by(4) {
        spec.output_tokens = 10_000_000;
    }
    let result = run(&experiment, 0, &workload, 1, RunOptions::default()).expect("run");
    let count = |finish| {
        result
            .requests
            .iter()
            .filter(|r| r.finish == finish)
            .count()
    };
    let (too_long, completed) = (count(FinishReason::TooLong), count(FinishReason::Length));
    assert_eq!(too_long, workload.requests.len().div_ceil(4));
    assert_eq!(
        too_long + completed,
        result.requests.len(),
        "no request is stuck"
    );
}
