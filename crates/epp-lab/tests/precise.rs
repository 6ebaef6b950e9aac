//! The precise prefix scorer in the lab: KV events from the engines feed its index, it beats
//! the approximate index on a W1-like workload, lost batches show up as gaps and fallback
//! switches, and runs with events stay byte-identical.

use std::path::Path;

use epp_lab::experiment::Experiment;
use epp_lab::experiment::presets;
use epp_lab::runner::{RunnerOptions, run_experiment};
use serde_json::Value;

/// The published precise policy (W1), optionally with its own `kv_events:` and `fallback`.
fn precise_policy(name: &str, kv_events: &str, fallback: &str) -> String {
    precise_policy_blocks(name, kv_events, fallback, 64)
}

/// [`precise_policy`] for engines with `block_size`-token blocks.
fn precise_policy_blocks(name: &str, kv_events: &str, fallback: &str, block_size: u32) -> String {
    format!(
        "  - name: {name}{kv_events}
    config: |
      apiVersion: inference.networking.x-k8s.io/v1alpha1
      kind: EndpointPickerConfig
      plugins:
      - type: precise-prefix-cache-scorer
        parameters:
          blockSize: {block_size}{fallback}
      - type: kv-cache-utilization-scorer
      - type: queue-scorer
      - type: max-score-picker
      schedulingProfiles:
      - name: default
        plugins:
        - pluginRef: precise-prefix-cache-scorer
          weight: 3
        - pluginRef: kv-cache-utilization-scorer
          weight: 2
        - pluginRef: queue-scorer
          weight: 2
        - pluginRef: max-score-picker
"
    )
}

/// The `preset`'s file with `extra` policies added in front of its own, `kv_events` as the
/// experiment-level section, and only the policies named in `keep`.
fn experiment(preset: &str, kv_events: &str, extra: &[String], keep: &[&str]) -> Experiment {
    let text = presets::text(preset).expect("preset");
    let text = text.replacen(
        "\npolicies:\n",
        &format!("\n{kv_events}\npolicies:\n{}", extra.concat()),
        1,
    );
    let text = text
        .lines()
        .filter(|line| !line.starts_with("kv_events: {delay: 10ms}"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut e = Experiment::from_yaml(&text, Path::new(".")).expect("experiment");
    e.policies.retain(|p| keep.contains(&p.name.as_str()));
    e
}

fn run(e: &Experiment, out: &Path) -> Value {
    let options = RunnerOptions {
        threads: 2,
        decisions: false,
        plots: false,
        progress: false,
        check_invariants: false,
    };
    run_experiment(e, out, &options).expect("runs")
}

fn overall(s: &Value, policy: &str, field: &str) -> f64 {
    s["policies"][policy]["overall"][field]
        .as_f64()
        .or_else(|| s["policies"][policy]["overall"][field]["p90"].as_f64())
        .expect("number")
}

/// W1 at reduced scale (w1-small, a shortened ladder): the events show the index exactly
/// which pod holds which prefix, so precise hits more than approximate, queues no worse, and
/// scores nearly every pick from the index.
#[test]
fn w1_small_precise_hits_more_than_approximate_at_no_worse_ttft() {
    let e = experiment(
        "w1-small",
        "kv_events: {delay: 5ms}",
        &[precise_policy("precise", "", "")],
        &["precise", "approximate"],
    )
    .scaled(0.12);
    let dir = tempfile::tempdir().expect("tempdir");
    let s = run(&e, dir.path());
    let (p, a) = (
        overall(&s, "precise", "prefix_hit_rate"),
        overall(&s, "approximate", "prefix_hit_rate"),
    );
    assert!(p > a, "hit rate: precise {p:.3} vs approximate {a:.3}");
    let (p90p, p90a) = (
        overall(&s, "precise", "ttft_ms"),
        overall(&s, "approximate", "ttft_ms"),
    );
    assert!(
        p90p <= p90a,
        "TTFT p90: precise {p90p} vs approximate {p90a}"
    );
    let precise = &s["policies"]["precise"]["precise"];
    assert!(precise["events_applied"].as_f64().expect("applied") > 0.0);
    assert_eq!(precise["batches_lost"], 0.0);
    assert_eq!(precise["gaps"], 0.0);
    let scored = precise["scored_precisely_fraction"]
        .as_f64()
        .expect("fraction");
    assert!(scored > 0.9, "picks scored from the index: {scored}");
    assert!(
        s["policies"]["approximate"].get("precise").is_none(),
        "no precise block without a precise scorer"
    );
}

/// Half the batches lost: the index sees gaps and switches endpoints to the fallback, or,
/// with `fallback: none`, keeps scoring from its (now partial) view.
#[test]
fn losing_half_the_batches_makes_gaps_and_fallback_switches() {
    let e = experiment(
        "w1-small",
        "kv_events: {delay: 5ms, drop_ratio: 0.5}",
        &[
            precise_policy("lossy", "", ""),
            precise_policy("lossy-nofallback", "", "\n          fallback: none"),
            precise_policy("clean", "\n    kv_events: {drop_ratio: 0}", ""),
        ],
        &["lossy", "lossy-nofallback", "clean"],
    )
    .scaled(0.05);
    let dir = tempfile::tempdir().expect("tempdir");
    let s = run(&e, dir.path());
    let stats = |policy: &str, field: &str| s["policies"][policy]["precise"][field].clone();
    let number = |policy: &str, field: &str| stats(policy, field).as_f64().expect(field);
    let lost = number("lossy", "batches_lost_fraction");
    assert!((0.4..0.6).contains(&lost), "lost share {lost}");
    assert!(number("lossy", "gaps") > 0.0);
    assert!(number("lossy", "missed_batches") >= number("lossy", "gaps"));
    let switches = stats("lossy", "fallback_switches")["gap"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(switches > 0.0, "{}", s["policies"]["lossy"]["precise"]);
    let fallback = number("lossy", "scored_precisely_fraction");
    let trusting = number("lossy-nofallback", "scored_precisely_fraction");
    assert!(
        fallback < trusting,
        "fallback scores fewer picks precisely: {fallback} vs {trusting}"
    );
    assert_eq!(number("clean", "gaps"), 0.0, "the policy's own kv_events");
    assert_eq!(number("clean", "batches_lost"), 0.0);
}

/// Every file under `dir` but the manifest and plots, with summary.json's wall time blanked.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path
                .strip_prefix(dir)
                .expect("prefix")
                .display()
                .to_string();
            if name == "manifest.json" || name.ends_with(".png") {
                continue;
            }
            let mut bytes = std::fs::read(&path).expect("read");
            if name == "summary.json" {
                let mut value: Value = serde_json::from_slice(&bytes).expect("json");
                value["wall_seconds"] = Value::Null;
                bytes = value.to_string().into_bytes();
            }
            out.push((name, bytes));
        }
    }
    out.sort();
    out
}

#[test]
fn runs_with_jittered_lossy_events_are_byte_identical() {
    let e = experiment(
        "quick",
        "kv_events: {delay: 2ms, jitter: 3ms, drop_ratio: 0.2}",
        &[precise_policy_blocks("precise", "", "", 16)],
        &["precise", "approximate"],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let s = run(&e, &a);
    run(&e, &b);
    let precise = &s["policies"]["precise"]["precise"];
    assert!(precise["events_applied"].as_f64() > Some(0.0), "{precise}");
    assert!(precise["gaps"].as_f64() > Some(0.0), "{precise}");
    assert!(
        precise["decisions_scored_precisely"].as_f64() > Some(0.0),
        "{precise}"
    );
    let (fa, fb) = (files(&a), files(&b));
    let names = |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&fa), names(&fb));
    let differ: Vec<&String> = fa
        .iter()
        .zip(&fb)
        .filter(|(x, y)| x.1 != y.1)
        .map(|(x, _)| &x.0)
        .collect();
    assert!(
        differ.is_empty(),
        "same seed, different bytes in {differ:?}"
    );
}

#[test]
fn a_drop_ratio_beyond_one_is_refused_naming_the_field() {
    let text = presets::text("quick").expect("quick").replacen(
        "kv_events: {delay: 10ms}",
        "kv_events: {drop_ratio: 2}",
        1,
    );
    let err = Experiment::from_yaml(&text, Path::new("."))
        .expect_err("drop_ratio 2")
        .to_string();
    assert!(err.contains("kv_events.drop_ratio"), "{err}");
}
