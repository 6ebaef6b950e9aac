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

// === multi-class workloads (objectives, classes, flows) ===

/// GOOD with its `workload:` replaced by two classes and a baseline policy.
fn classes_file(workloads: &str) -> String {
    let start = GOOD.find("workload:").expect("workload");
    let end = GOOD.find("signals:").expect("signals");
    let policies = GOOD.find("seeds:").expect("seeds");
    format!(
        "{}{workloads}{}  - name: alone\n    classes: [chat]\n    config_file: none.yaml\n{}",
        &GOOD[..start],
        &GOOD[end..policies],
        &GOOD[policies..]
    )
    .replace(
        "    config_file: none.yaml\n",
        &format!("    config: |\n{}", policy_text()),
    )
}

fn policy_text() -> String {
    let e = load(GOOD).expect("good");
    e.policies[0]
        .config_text
        .lines()
        .map(|l| format!("      {l}\n"))
        .collect()
}

const CLASSES: &str = r#"objectives:
  - {name: chat, priority: 10}
  - {name: batch}
workloads:
  - name: chat
    objective: chat
    data: {type: random, input_distribution: {min: 10, max: 20, mean: 15, std_dev: 2}}
    load: {type: poisson, stages: [{rate: 4, duration: 3}, {rate: 6, duration: 3}], warmup_stages: 1}
  - name: batch
    objective: batch
    flows: 3
    data: {type: random, input_distribution: {min: 50, max: 60, mean: 55, std_dev: 2}}
    load: {type: constant, stages: [{rate: 6, duration: 3}, {rate: 9, duration: 3}], warmup_stages: 1}
  - name: weighted
    flow_weights: [3, 1]
    data: {type: random}
    load: {type: constant, stages: [{rate: 20, duration: 3}, {rate: 20, duration: 3}], warmup_stages: 1}
"#;

#[test]
fn classes_resolve_and_generate_one_merged_tagged_workload() {
    use crate::workload::classes::FlowAssignment;
    let e = load(&classes_file(CLASSES)).expect("classes");
    assert_eq!(e.objectives.len(), 2);
    assert_eq!(e.priority(Some("chat")), 10);
    assert_eq!(e.priority(Some("batch")), 0);
    assert_eq!(e.priority(Some("other")), 0);
    assert_eq!(e.priority(None), 0);
    let names: Vec<&str> = e.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["chat", "batch", "weighted"]);
    assert_eq!(e.classes[1].flows, FlowAssignment::RoundRobin { flows: 3 });
    assert_eq!(e.classes[2].flows, FlowAssignment::Weighted(vec![3.0, 1.0]));
    assert_eq!(e.classes[2].objective, None);
    assert_eq!(e.policies[1].classes, Some(vec![0]));
    assert_eq!(e.policies[0].classes, None);

    let w = e.generate(1).expect("workload");
    assert!(w.requests.windows(2).all(|p| {
        let at = |r: &crate::workload::RequestSpec| match r.arrival {
            crate::workload::Arrival::At(t) => t,
            crate::workload::Arrival::AfterPrevious { .. } => f64::NAN,
        };
        at(&p[0]) <= at(&p[1])
    }));
    let of = |class: u32| -> Vec<&crate::workload::RequestSpec> {
        w.requests
            .iter()
            .filter(|r| r.flow.is_some_and(|f| f.class == class))
            .collect()
    };
    // Constant load: 6 x 3 + 9 x 3 batch requests, spread round robin over 3 flows.
    let batch = of(1);
    assert_eq!(batch.len(), 45);
    for (i, r) in batch.iter().enumerate() {
        assert_eq!(r.flow.expect("tagged").flow, i as u32 % 3);
        assert!((50..=60).contains(&r.prompt.tokens.len()));
    }
    // Weighted 3:1 over 120 requests: about 90 / 30.
    let weighted = of(2);
    let first = weighted
        .iter()
        .filter(|r| r.flow.expect("tagged").flow == 0)
        .count();
    assert!((75..=105).contains(&first), "{first} of {}", weighted.len());
    assert!(!of(0).is_empty());
    assert_eq!(of(0).len() + batch.len() + weighted.len(), w.requests.len());
    // Stages side by side: rates add up, warm-up kept.
    let rates: Vec<Option<f64>> = w.stages.iter().map(|s| s.rate).collect();
    assert_eq!(rates, [Some(30.0), Some(35.0)]);
    assert!(w.stages[0].warmup && !w.stages[1].warmup);
    // The baseline policy gets the chat class alone, at the chat class's rates.
    let alone = e.workload_for(1, &w).expect("filtered");
    assert_eq!(alone.requests.len(), of(0).len());
    let rates: Vec<Option<f64>> = alone.stages.iter().map(|s| s.rate).collect();
    assert_eq!(rates, [Some(4.0), Some(6.0)]);
    assert!(e.workload_for(0, &w).is_none());
    // Another seed, other requests; the same seed, the same ones.
    let again = e.generate(1).expect("again");
    assert_eq!(again.requests.len(), w.requests.len());
    assert!(
        again
            .requests
            .iter()
            .zip(&w.requests)
            .all(|(a, b)| a.prompt.tokens == b.prompt.tokens && a.flow == b.flow)
    );
    assert_ne!(
        e.generate(2).expect("seed 2").requests[0].prompt.tokens,
        w.requests[0].prompt.tokens
    );
    // Scaling shortens every class.
    let half = e.scaled(0.5);
    let load = half.classes[1].spec.load.as_ref().expect("load");
    assert!((load.stages[0].duration - 1.5).abs() < 1e-12);
    // The resolved experiment lists objectives, classes and the policy's classes.
    let json = e.resolved_json();
    assert_eq!(json["objectives"][0]["priority"], 10);
    assert_eq!(json["workloads"][1]["flows"], 3);
    assert_eq!(json["workloads"][2]["flow_weights"][0], 3.0);
    assert_eq!(json["policies"][1]["classes"][0], "chat");
}

#[test]
fn a_single_workload_resolves_without_class_fields() {
    let json = load(GOOD).expect("good").resolved_json();
    assert!(json.get("objectives").is_none(), "{json}");
    assert!(json.get("workloads").is_none(), "{json}");
    assert!(json["policies"][0].get("classes").is_none());
}

#[test]
fn class_errors_name_the_field() {
    let table = [
        (
            "  - {name: batch}\n",
            "  - {name: chat}\n",
            "objectives[1].name",
        ),
        (
            "  - {name: batch}\n",
            "  - {name: \" \"}\n",
            "objectives[1].name",
        ),
        (
            "    objective: batch\n",
            "    objective: bulk\n",
            "workloads[1].objective",
        ),
        ("    flows: 3\n", "    flows: 0\n", "workloads[1].flows"),
        (
            "    flow_weights: [3, 1]\n",
            "    flow_weights: [3, -1]\n",
            "workloads[2].flow_weights",
        ),
        (
            "    flow_weights: [3, 1]\n",
            "    flow_weights: []\n",
            "workloads[2].flow_weights",
        ),
        (
            "    flow_weights: [3, 1]\n",
            "    flows: 3\n    flow_weights: [3, 1]\n",
            "workloads[2].flow_weights",
        ),
        (
            "  - name: weighted\n",
            "  - name: chat\n",
            "workloads[2].name",
        ),
        (
            "{rate: 9, duration: 3}",
            "{rate: 9, duration: 4}",
            "workloads[1].load.stages",
        ),
        (
            "{rate: 6, duration: 3}, {rate: 9",
            "{rate: 6, duration: 6}, {rate: 9",
            "workloads[1].load.stages",
        ),
        (
            "{rate: 4, duration: 3}",
            "{rate: 0, duration: 3}",
            "workloads[0].load.stages[0].rate",
        ),
        (
            "    load: {type: constant, stages: [{rate: 6",
            "    load: {max_concurrency: 3, type: constant, stages: [{rate: 6",
            "workloads[1].load.max_concurrency",
        ),
        (
            "    flows: 3\n",
            "    flows: 3\n    trace: {format: mooncake, path: t.jsonl}\n",
            "unknown field `trace`",
        ),
        ("    flows: 3\n", "    flows: 3\n    flowz: 3\n", "flowz"),
        (
            "  - {name: chat, priority: 10}\n",
            "  - {name: chat, priority: high}\n",
            "priority",
        ),
        (
            "    classes: [chat]\n",
            "    classes: [chatty]\n",
            "policies[1].classes",
        ),
        (
            "    classes: [chat]\n",
            "    classes: []\n",
            "policies[1].classes",
        ),
        (
            "workloads:\n",
            "workload: {builtin: quick}\nworkloads:\n",
            "workloads",
        ),
    ];
    for (from, to, path) in table {
        let text = classes_file(CLASSES);
        assert!(text.contains(from), "{from:?} not in the file");
        let err = load(&text.replacen(from, to, 1))
            .expect_err(path)
            .to_string();
        assert!(err.contains(path), "{path}: {err}");
    }
    // No workload at all, and a class filter without classes.
    let start = GOOD.find("workload:").expect("workload");
    let end = GOOD.find("signals:").expect("signals");
    let none = format!("{}{}", &GOOD[..start], &GOOD[end..]);
    let err = load(&none).expect_err("no workload").to_string();
    assert!(err.starts_with("workload:"), "{err}");
    let filtered = GOOD.replacen(
        "  - name: queue\n",
        "  - name: queue\n    classes: [chat]\n",
        1,
    );
    let err = load(&filtered).expect_err("no classes").to_string();
    assert!(err.contains("policies[0].classes"), "{err}");
}
