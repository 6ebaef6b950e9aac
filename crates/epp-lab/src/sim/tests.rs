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

// === flow control ===

/// One pod that runs one request at a time as far as the EPP is concerned (concurrency
/// detector, maxConcurrency 1), with a fast constant step time; two classes, `high`
/// (priority 10) and `low` (priority 0, two flows). `flow_control` is the policy's
/// `flowControl:` section.
fn held_experiment(flow_control: &str) -> Experiment {
    let text = format!(
        r#"
name: held
cluster:
  profile: llama-3.1-8b-h100-tp1
  pods: 1
  step_time: {{constant: {{base_ms: 1, prefill_per_token_ms: 0.01, decode_step_ms: 10}}}}
  overheads: {{frontend_ms: 1, per_token_us: 0, end_ms: 0}}
objectives: [{{name: high, priority: 10}}, {{name: low, priority: 0}}]
workloads:
  - {{name: high, objective: high, data: {{type: random}}, load: {{stages: [{{rate: 1, duration: 1}}]}}}}
  - {{name: low, objective: low, flows: 2, data: {{type: random}}, load: {{stages: [{{rate: 1, duration: 1}}]}}}}
policies:
  - name: fc
    config: |
      apiVersion: inference.networking.x-k8s.io/v1alpha1
      kind: EndpointPickerConfig
      plugins:
      - type: queue-scorer
      - type: max-score-picker
      schedulingProfiles:
      - name: default
        plugins:
        - pluginRef: queue-scorer
        - pluginRef: max-score-picker
      saturationDetector: {{type: concurrency, maxConcurrency: 1}}
      flowControl: {flow_control}
"#
    );
    Experiment::from_yaml(&text, Path::new(".")).expect("held experiment")
}

/// Requests (class, flow, arrival s, output tokens), prompts of 100 tokens.
fn held_workload(experiment: &Experiment, requests: &[(u32, u32, f64, u32)]) -> Workload {
    let mut workload = experiment.generate(1).expect("workload");
    let template = workload.requests[0].clone();
    workload.requests = requests
        .iter()
        .enumerate()
        .map(
            |(i, &(class, flow, at, output))| crate::workload::RequestSpec {
                arrival: Arrival::At(at),
                prompt: std::sync::Arc::new(crate::workload::Prompt::new(
                    (0..100).map(|t| t + 1000 * i as u32).collect(),
                )),
                output_tokens: output,
                output_key: i as u64,
                flow: Some(crate::workload::FlowTag { class, flow }),
                ..template.clone()
            },
        )
        .collect();
    workload
}

fn held_run(experiment: &Experiment, workload: &Workload) -> RunResult {
    let options = RunOptions {
        check_invariants: true,
        ..RunOptions::default()
    };
    run(experiment, 0, workload, 1, options).expect("run")
}

const HIGH: u32 = 0;
const LOW: u32 = 1;

#[test]
fn the_waiting_room_dispatches_the_high_band_first_each_time_a_stream_ends() {
    let experiment = held_experiment("{}");
    // r0 (low) finds the room empty and the pod free: routed at once. r1..r3 (low) and r4
    // (high, last to arrive) wait while r0 holds the pod's only slot.
    let workload = held_workload(
        &experiment,
        &[
            (LOW, 0, 0.0, 20),
            (LOW, 1, 0.010, 20),
            (LOW, 0, 0.020, 20),
            (LOW, 1, 0.030, 20),
            (HIGH, 0, 0.040, 20),
        ],
    );
    let result = held_run(&experiment, &workload);
    let r = &result.requests;
    assert!(r.iter().all(|r| r.succeeded()), "{r:?}");
    assert_eq!(r[0].dispatched_s, Some(0.0), "routed at once");
    assert_eq!(r[0].epp_wait_s(), Some(0.0));
    let order = {
        let mut ids: Vec<usize> = (0..r.len()).collect();
        ids.sort_by(|&a, &b| {
            r[a].dispatched_s
                .partial_cmp(&r[b].dispatched_s)
                .expect("times")
        });
        ids
    };
    assert_eq!(order, vec![0, 4, 1, 2, 3], "high band first, then low FCFS");
    // Each waiting request leaves the room when the previous one's stream ends.
    for pair in order.windows(2) {
        let (before, next) = (&r[pair[0]], &r[pair[1]]);
        let done = before.completed_s.expect("completed");
        let left = next.dispatched_s.expect("dispatched");
        assert!((left - done).abs() < 1e-6, "{before:?} then {next:?}");
    }
    // TTFT counts from the arrival at the EPP, so it includes the wait.
    let high = &r[4];
    let wait = high.epp_wait_s().expect("waited");
    assert!(wait > 0.1, "{high:?}");
    assert!(high.ttft_s().expect("ttft") > wait);
}

#[test]
fn a_request_waiting_past_its_ttl_is_refused_as_expired() {
    let experiment = held_experiment("{requestTTL: 500ms}");
    // r0 holds the slot for ~2 s (200 tokens x 10 ms); r1 waits from 0.1 s and expires at
    // 0.6 s; r2 arrives after r0 ends and is routed at once.
    let workload = held_workload(
        &experiment,
        &[(LOW, 0, 0.0, 200), (HIGH, 0, 0.1, 10), (LOW, 1, 3.0, 10)],
    );
    let result = held_run(&experiment, &workload);
    let r = &result.requests;
    assert_eq!(r[1].finish, FinishReason::Expired, "{:?}", r[1]);
    assert_eq!(r[1].pod, None);
    assert_eq!(r[1].dispatched_s, None);
    assert!(r[0].succeeded() && r[2].succeeded(), "{r:?}");
    assert!(r[0].completed_s.expect("done") > 1.0);
    assert_eq!(r[2].epp_wait_s(), Some(0.0));
}

#[test]
fn a_full_room_displaces_the_lower_band_and_refuses_at_the_band_limit() {
    let experiment = held_experiment("{maxRequests: 2, bandMaxRequests: 2}");
    // r0 runs; r1, r2 (low) fill the room; r3 (high) displaces the newest low (r2); r4
    // (high) displaces r1; r5 (high) finds its own band full.
    let workload = held_workload(
        &experiment,
        &[
            (LOW, 0, 0.0, 50),
            (LOW, 0, 0.01, 5),
            (LOW, 1, 0.02, 5),
            (HIGH, 0, 0.03, 5),
            (HIGH, 0, 0.04, 5),
            (HIGH, 0, 0.05, 5),
        ],
    );
    let result = held_run(&experiment, &workload);
    let finish: Vec<FinishReason> = result.requests.iter().map(|r| r.finish).collect();
    use FinishReason::*;
    assert_eq!(
        finish,
        vec![Length, Displaced, Displaced, Length, Length, BandFull]
    );
}

#[test]
fn flow_control_runs_are_deterministic_and_cover_every_request() {
    let experiment = Experiment::preset("flow-control")
        .expect("preset")
        .scaled(0.05);
    let workload = experiment.generate(3).expect("workload");
    for (index, policy) in experiment.policies.iter().enumerate() {
        let only = experiment.workload_for(index, &workload);
        let workload = only.as_ref().unwrap_or(&workload);
        let a = run(&experiment, index, workload, 3, RunOptions::default()).expect("run");
        let b = run(&experiment, index, workload, 3, RunOptions::default()).expect("run");
        assert_eq!(a.requests, b.requests, "{}", policy.name);
        assert_eq!(a.pods, b.pods, "{}", policy.name);
        assert_eq!(a.requests.len(), workload.requests.len());
        assert!(
            a.requests
                .iter()
                .all(|r| r.finish != FinishReason::Unfinished),
            "{}",
            policy.name
        );
        let flow_control = policy.config_text.contains("flowControl");
        assert_eq!(a.flow_control, flow_control, "{}", policy.name);
        assert_eq!(
            a.requests.iter().all(|r| r.dispatched_s.is_none()),
            !flow_control,
            "{}",
            policy.name
        );
    }
}
