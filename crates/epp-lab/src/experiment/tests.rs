//! Experiment-file tests.

use std::path::Path;

use super::resolve::{Resolvers, from_yaml};
use super::{Experiment, ExperimentError, StepTimeSpec, presets};
use crate::workload::{DataType, LoadType, Workload};

const STUB: Resolvers = Resolvers {
    profile: epp_engine::profiles::by_name,
    gpu: epp_engine::profiles::gpu_by_name,
};

fn load(text: &str) -> Result<Experiment, ExperimentError> {
    from_yaml(text, Path::new("."), &STUB)
}

const GOOD: &str = r#"
name: test
description: a small test
cluster:
  profile: qwen3-32b-h100-tp2
  pods: 2
  kv_capacity_tokens: 20000
  block_size: 64
  step_time: {linear: {base_ms: 5, per_prefill_token_us: 100, per_decode_seq_us: 50}}
  overheads: {frontend_ms: 1}
workload:
  data:
    type: shared_prefix
    shared_prefix: {num_groups: 4, num_prompts_per_group: 2, system_prompt_len: 100, question_len: 10, output_len: 5}
  load:
    type: poisson
    stages: [{rate: 5, duration: 2}, {rate: 10, duration: 2}]
    warmup_stages: 1
    num_workers: 8
signals:
  scrape_interval: 100ms
  metrics_staleness: 1.5
policies:
  - name: queue
    config: |
      apiVersion: inference.networking.x-k8s.io/v1alpha1
      kind: EndpointPickerConfig
      plugins:
      - type: queue-scorer
      schedulingProfiles:
      - name: default
        plugins:
        - pluginRef: queue-scorer
seeds: [3, 4]
"#;

#[test]
fn good_file_resolves_with_defaults() {
    let e = load(GOOD).expect("valid file");
    assert_eq!(e.name, "test");
    assert_eq!(e.model_name, "Qwen/Qwen3-32B");
    assert_eq!(e.cluster.pods, 2);
    assert_eq!(e.cluster.block_size, 64);
    assert_eq!(e.cluster.max_num_batched_tokens, 8192);
    assert_eq!(e.cluster.kv_capacity_tokens, Some(20000));
    assert_eq!(
        e.cluster.step_time,
        StepTimeSpec::Linear {
            base_ms: 5.0,
            per_prefill_token_us: 100.0,
            per_decode_seq_us: 50.0,
            per_context_token_ns: 0.0
        }
    );
    assert!((e.cluster.overheads.frontend_s - 0.001).abs() < 1e-12);
    assert!((e.cluster.overheads.per_token_s - 46e-6).abs() < 1e-12);
    assert!((e.signals.scrape_interval_s - 0.1).abs() < 1e-12);
    assert!((e.signals.metrics_staleness_s - 1.5).abs() < 1e-12);
    assert!((e.kv_events.delay_s - 0.005).abs() < 1e-12);
    assert_eq!(e.policies[0].kv_events, e.kv_events);
    assert_eq!(e.seeds, vec![3, 4]);
    assert_eq!(e.policies[0].name, "queue");
    let load = e.workload.load.as_ref().expect("load");
    assert_eq!(load.kind, LoadType::Poisson);
    assert_eq!(load.warmup_stages, 1);
    let json = e.resolved_json();
    assert_eq!(json["policies"][0]["name"], "queue");
    assert!(
        json["policies"][0]["config"]
            .as_str()
            .expect("text")
            .contains("queue-scorer")
    );
    assert_eq!(json["cluster"]["block_size"], 64);
}

#[test]
fn unknown_fields_are_named() {
    let table = [
        ("  pods: 2\n", "  pods: 2\n  podz: 3\n", "podz"),
        (
            "    warmup_stages: 1\n",
            "    warmup_stage: 1\n",
            "warmup_stage",
        ),
        ("seeds: [3, 4]\n", "seeds: [3, 4]\nseed: 1\n", "seed"),
    ];
    for (from, to, name) in table {
        let text = GOOD.replacen(from, to, 1);
        let err = load(&text).expect_err(name).to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
}

#[test]
fn bad_values_name_the_field() {
    let table = [
        (
            "profile: qwen3-32b-h100-tp2",
            "profile: qwen3-33b",
            "cluster.profile",
        ),
        ("pods: 2", "pods: 0", "cluster.pods"),
        (
            "scrape_interval: 100ms",
            "scrape_interval: 100xs",
            "signals.scrape_interval",
        ),
        ("seeds: [3, 4]", "seeds: []", "seeds"),
        (
            "{rate: 5, duration: 2}",
            "{rate: -5, duration: 2}",
            "load.stages[0].rate",
        ),
        ("warmup_stages: 1", "warmup_stages: 2", "load.warmup_stages"),
    ];
    for (from, to, path) in table {
        let text = GOOD.replacen(from, to, 1);
        let err = load(&text).expect_err(path).to_string();
        assert!(err.contains(path), "{path}: {err}");
    }
}

#[test]
fn bad_policy_config_names_the_policy() {
    let text = GOOD.replacen("- type: queue-scorer", "- type: qeue-scorer", 1);
    let err = load(&text).expect_err("bad plugin");
    assert!(
        matches!(err, ExperimentError::Policy { index: 0, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("policies[0] (queue)"), "{message}");
    assert!(message.contains("qeue-scorer"), "{message}");
}

#[test]
fn policy_config_file_is_relative_to_the_experiment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = presets::text("quick").expect("quick");
    let quick = load(config).expect("quick parses");
    std::fs::write(dir.path().join("mine.yaml"), &quick.policies[0].config_text).expect("write");
    let start = GOOD.find("  - name: queue").expect("policy");
    let end = GOOD.find("seeds:").expect("seeds");
    let text = format!(
        "{}  - name: mine\n    config_file: mine.yaml\n{}",
        &GOOD[..start],
        &GOOD[end..]
    );
    let e = from_yaml(&text, dir.path(), &STUB).expect("config_file");
    assert_eq!(e.policies[0].config_text, quick.policies[0].config_text);
    let missing = from_yaml(&text, Path::new("/nonexistent"), &STUB).expect_err("missing file");
    assert!(
        missing.to_string().contains("policies[0] (mine)"),
        "{missing}"
    );
}

#[test]
fn custom_model_and_gpu() {
    let text = GOOD.replacen(
        "  profile: qwen3-32b-h100-tp2\n",
        "  model: {layers: 64, hidden: 5120, heads: 64, kv_heads: 8, head_dim: 128, ffn: 25600, weight_gb: 65.6}\n  gpu: {name: x, peak_tflops: 989, hbm_tb_s: 3.35, memory_gb: 80}\n  tp: 2\n",
        1,
    );
    let e = load(&text).expect("custom");
    assert_eq!(e.cluster.profile.name, "custom");
    assert!((e.cluster.profile.gpu.peak_flops - 989e12).abs() < 1.0);
    assert_eq!(e.model_name, "custom");
}

#[test]
fn builtin_workload_takes_the_presets_sections() {
    let start = GOOD.find("workload:").expect("workload");
    let end = GOOD.find("signals:").expect("signals");
    let text = format!(
        "{}workload:\n  builtin: quick\n{}",
        &GOOD[..start],
        &GOOD[end..]
    );
    let e = load(&text).expect("builtin");
    let quick = load(presets::text("quick").expect("quick")).expect("quick");
    assert_eq!(e.workload, quick.workload);
    assert!(e.workload.builtin.is_none());
}

#[test]
fn every_preset_parses_and_generates_its_first_seed() {
    for (name, description) in presets::list() {
        assert!(!description.is_empty());
        let text = presets::text(name).expect("listed preset has text");
        let e = load(text).unwrap_or_else(|err| panic!("preset {name}: {err}"));
        assert_eq!(&e.name, name);
        assert!(!e.policies.is_empty(), "{name}");
        if e.classes.is_empty() {
            let data = e.workload.data.as_ref().expect("presets generate data");
            assert_eq!(data.kind, DataType::SharedPrefix, "{name}");
        } else {
            // Multi-class presets (flow-control) generate each class from data + load.
            assert!(e.classes.iter().all(|c| c.spec.data.is_some()), "{name}");
        }
    }
    // Small presets generate quickly; the big ones are checked by parsing only.
    for name in ["quick", "w1-small"] {
        let e = load(presets::text(name).expect(name)).expect(name);
        let w = Workload::generate(&e.workload, e.seeds[0], Path::new(".")).expect(name);
        assert!(!w.requests.is_empty(), "{name}");
    }
    let sglang = load(presets::text("sglang-v04").expect("W4")).expect("W4");
    assert_eq!(
        sglang.resolved_json()["workload"]["load"]["stages"][0]["rate"],
        "inf"
    );
    let w = Workload::generate(&sglang.workload, 1, Path::new(".")).expect("W4");
    assert_eq!(
        w.requests.len(),
        64 * 16,
        "every (group, question) pair once"
    );
    assert!(
        w.requests
            .iter()
            .all(|r| r.arrival == crate::workload::Arrival::At(0.0))
    );
}

#[test]
fn unknown_preset_lists_the_known_ones() {
    let err = Experiment::preset("nope").expect_err("unknown");
    assert!(err.to_string().contains("llmd-73pct"), "{err}");
}

#[test]
fn scaled_shortens_stages_only() {
    let e = load(GOOD).expect("valid");
    let half = e.scaled(0.5);
    let durations = |e: &Experiment| -> Vec<f64> {
        e.workload
            .load
            .as_ref()
            .expect("load")
            .stages
            .iter()
            .map(|s| s.duration)
            .collect()
    };
    assert_eq!(durations(&half), vec![1.0, 1.0]);
    assert_eq!(
        half.workload.load.as_ref().expect("load").stages[1].rate,
        10.0
    );
    assert_eq!(half.cluster.pods, e.cluster.pods);
    assert_eq!(durations(&e.scaled(f64::NAN)), durations(&e));
}

#[test]
fn constant_and_table_step_times_are_read_and_checked() {
    let with = |step_time: &str| {
        GOOD.replacen(
            "  step_time: {linear: {base_ms: 5, per_prefill_token_us: 100, per_decode_seq_us: 50}}\n",
            &format!("  step_time: {step_time}\n"),
            1,
        )
    };
    let e = load(&with(
        "{constant: {base_ms: 1, prefill_per_token_ms: 0.05, decode_step_ms: 10}}",
    ))
    .expect("constant");
    assert!(matches!(e.cluster.step_time, StepTimeSpec::Constant(_)));
    let table = "{table: {prefill: [[1, 5], [1000, 50]], decode: {batch: [1, 64], context: [1000, 8000], ms: [[7, 9], [15, 30]]}}}";
    let e = load(&with(table)).expect("table");
    assert!(matches!(e.cluster.step_time, StepTimeSpec::Table(_)));
    let error = load(&with(
        "{constant: {base_ms: -1, prefill_per_token_ms: 0.05, decode_step_ms: 10}}",
    ))
    .expect_err("negative");
    assert!(error.to_string().contains("base_ms"), "{error}");
}

#[test]
fn an_inference_perf_config_file_drives_the_workload() {
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let start = GOOD.find("workload:").expect("workload");
    let end = GOOD.find("signals:").expect("signals");
    let text = format!(
        "{}workload:\n  inference_perf: inference-perf-config.yaml\n{}",
        &GOOD[..start],
        &GOOD[end..]
    );
    let e = from_yaml(&text, &data_dir, &STUB).expect("inference-perf sections");
    let data = e.workload.data.as_ref().expect("data");
    assert_eq!(data.kind, DataType::SharedPrefix);
    assert_eq!(
        data.shared_prefix
            .as_ref()
            .expect("shared prefix")
            .num_groups,
        20
    );
    let load = e.workload.load.as_ref().expect("load");
    assert_eq!((load.kind, load.stages.len()), (LoadType::Poisson, 2));
    assert!(e.workload.inference_perf.is_none());

    let dir = tempfile::tempdir().expect("tempdir");
    let config = std::fs::read_to_string(data_dir.join("inference-perf-config.yaml"))
        .expect("config")
        .replace("  sweep: null", "  sweep: {type: linear}");
    std::fs::write(dir.path().join("inference-perf-config.yaml"), config).expect("write");
    let error = from_yaml(&text, dir.path(), &STUB).expect_err("a sweep is refused");
    assert!(error.to_string().contains("load.sweep"), "{error}");
}

#[test]
fn clusters_beyond_the_lab_limits_are_refused_by_field() {
    let pods = load(&GOOD.replacen("  pods: 2\n", "  pods: 100000\n", 1)).expect_err("pods");
    assert!(pods.to_string().contains("cluster.pods"), "{pods}");
    let blocks = load(&GOOD.replacen(
        "  kv_capacity_tokens: 20000\n",
        "  kv_capacity_tokens: 100000000000\n",
        1,
    ))
    .expect_err("blocks");
    assert!(blocks.to_string().contains("cluster"), "{blocks}");
}

#[test]
fn kv_events_are_read_per_experiment_and_overridden_per_policy() {
    let text = GOOD.replacen(
        "policies:\n  - name: queue\n",
        "kv_events: {delay: 20ms, jitter: 1ms, drop_ratio: 0.1}\npolicies:\n  - name: queue\n    kv_events: {drop_ratio: 0.5}\n",
        1,
    );
    let e = load(&text).expect("loads");
    assert!((e.kv_events.delay_s - 0.02).abs() < 1e-12);
    assert!((e.kv_events.jitter_s - 0.001).abs() < 1e-12);
    assert!((e.kv_events.drop_ratio - 0.1).abs() < 1e-12);
    let policy = e.policies[0].kv_events;
    assert!((policy.delay_s - 0.02).abs() < 1e-12, "inherited");
    assert!((policy.drop_ratio - 0.5).abs() < 1e-12, "overridden");
    assert_eq!(
        e.resolved_json()["policies"][0]["kv_events"]["drop_ratio"],
        0.5
    );
    let old = GOOD.replacen(
        "metrics_staleness: 1.5",
        "metrics_staleness: 1.5\n  kv_event_delay: 7ms",
        1,
    );
    assert!((load(&old).expect("old spelling").kv_events.delay_s - 0.007).abs() < 1e-12);
}

#[test]
fn bad_kv_events_name_the_field() {
    let table = [
        ("kv_events: {drop_ratio: 2}\n", "kv_events.drop_ratio"),
        ("kv_events: {drop_ratio: -0.1}\n", "kv_events.drop_ratio"),
        ("kv_events: {delay: 5xs}\n", "kv_events.delay"),
        ("kv_events: {jitter: -1}\n", "kv_events.jitter"),
        ("kv_events: {dropratio: 0.1}\n", "dropratio"),
    ];
    for (section, path) in table {
        let text = GOOD.replacen("policies:\n", &format!("{section}policies:\n"), 1);
        let err = load(&text).expect_err(path).to_string();
        assert!(err.contains(path), "{path}: {err}");
    }
    let text = GOOD.replacen(
        "        - pluginRef: queue-scorer\n",
        "        - pluginRef: queue-scorer\n    kv_events: {drop_ratio: 2}\n",
        1,
    );
    let err = load(&text).expect_err("policy drop ratio").to_string();
    assert!(err.contains("policies[0].kv_events.drop_ratio"), "{err}");
    let both = GOOD
        .replacen(
            "metrics_staleness: 1.5",
            "metrics_staleness: 1.5\n  kv_event_delay: 7ms",
            1,
        )
        .replacen("policies:\n", "kv_events: {delay: 5ms}\npolicies:\n", 1);
    let err = load(&both).expect_err("two delays").to_string();
    assert!(err.contains("signals.kv_event_delay"), "{err}");
}
