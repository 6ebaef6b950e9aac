//! `epp-lab` as a researcher uses it: the binary, presets, experiment files, outputs,
//! determinism, and the published W1 ordering at reduced scale.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn lab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_epp-lab"))
}

/// Runs `epp-lab` with `args`; panics with its output unless it succeeds.
fn run_lab(args: &[&str]) -> String {
    let output = lab().args(args).output().expect("epp-lab runs");
    assert!(
        output.status.success(),
        "epp-lab {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn summary(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// Every file under `dir` with its bytes, except the manifest (it records wall time).
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
fn presets_are_listed_and_each_prints_as_a_runnable_file() {
    let listed = run_lab(&["presets"]);
    for name in [
        "llmd-73pct",
        "kthena-gsp",
        "sglang-v04",
        "gie-prefix-4a",
        "gie-prefix-4b",
        "gie-prefix-4c",
        "gie-prefix-4d",
        "ldb-synthetic",
        "quick",
    ] {
        assert!(listed.contains(name), "{name} missing from:\n{listed}");
    }
    let text = run_lab(&["show-preset", "quick"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mine.yaml");
    std::fs::write(&file, text.replace("name: quick", "name: mine")).expect("write");
    let out = dir.path().join("out");
    run_lab(&[
        "run",
        file.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--quiet",
        "--no-plots",
    ]);
    assert_eq!(summary(&out)["experiment"]["name"], "mine");
}

#[test]
fn a_run_writes_every_output_and_the_same_seed_gives_identical_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let out = out.to_str().expect("utf-8");
        let args = ["run", "--preset", "quick", "--out", out, "--seed", "5"];
        run_lab(&[&args[..], &["--quiet", "--decisions", "--threads", "2"]].concat());
    }
    let s = summary(&a);
    assert_eq!(s["seeds"], serde_json::json!([5]));
    for policy in ["approximate", "load", "random"] {
        let p = &s["policies"][policy];
        let overall = &p["overall"];
        for field in ["ttft_ms", "tpot_ms", "e2e_ms"] {
            for q in ["mean", "p50", "p90", "p99"] {
                assert!(overall[field][q].as_f64().is_some(), "{policy} {field} {q}");
            }
        }
        for field in ["output_tokens_per_s", "requests_per_s", "prefix_hit_rate"] {
            assert!(overall[field].as_f64().is_some(), "{policy} {field}");
        }
        let stages = p["stages"].as_array().expect("stages");
        assert!(
            stages
                .iter()
                .all(|s| s["rate"].is_number() && s["requests"].is_number())
        );
        let seed_dir = a.join(policy).join("seed-5");
        for file in [
            "summary_lifecycle_metrics.json",
            "stage_0_lifecycle_metrics.json",
            "requests.csv",
            "pods.csv",
            "decisions.jsonl",
        ] {
            assert!(seed_dir.join(file).is_file(), "{policy}/{file}");
        }
    }
    for file in [
        "tidy.csv",
        "manifest.json",
        "plots/ttft_vs_qps.png",
        "plots/throughput_vs_qps.png",
    ] {
        assert!(a.join(file).is_file(), "{file}");
    }
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("manifest.json")).expect("manifest"))
            .expect("json");
    assert!(manifest["coefficients"].is_object(), "{manifest}");
    assert_eq!(files(&a), files(&b), "same experiment and seed, same bytes");
}

#[test]
fn bad_experiments_get_one_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yaml");
    let text = run_lab(&["show-preset", "quick"]).replace("pods: 2", "podz: 2");
    std::fs::write(&file, text).expect("write");
    let output = lab()
        .args([
            "run",
            file.to_str().expect("utf-8"),
            "--out",
            "/nonexistent/x",
        ])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("podz"), "{stderr}");
    let output = lab()
        .args(["run", "--preset", "nope", "--out", "x"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nope"));
    let output = lab()
        .args(["run", "--preset", "quick"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2), "--out is required");
}

/// W1 at reduced scale (sim-model.md §3): above the random/load knee the approximate prefix
/// policy keeps TTFT p90 low while random and load collapse, and it serves more tokens.
#[test]
fn w1_small_reproduces_the_published_ordering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("w1");
    let args = [
        "run",
        "--preset",
        "w1-small",
        "--out",
        out.to_str().expect("utf-8"),
    ];
    run_lab(&[&args[..], &["--quiet", "--no-plots", "--seed", "1"]].concat());
    let s = summary(&out);
    let stages = |policy: &str| {
        s["policies"][policy]["stages"]
            .as_array()
            .cloned()
            .expect("stages")
    };
    let (approximate, load, random) = (stages("approximate"), stages("load"), stages("random"));
    let p90 = |stage: &Value| stage["ttft_ms"]["p90"].as_f64().unwrap_or(f64::INFINITY);
    let knee_gap = approximate
        .iter()
        .zip(&load)
        .zip(&random)
        .filter(|((a, _), _)| a["warmup"] == false)
        .map(|((a, l), r)| p90(l).min(p90(r)) / p90(a))
        .fold(0.0, f64::max);
    assert!(
        knee_gap > 10.0,
        "largest TTFT p90 gap over load and random: {knee_gap:.1}x"
    );
    let overall = |policy: &str, field: &str| {
        s["policies"][policy]["overall"][field]
            .as_f64()
            .expect("number")
    };
    for baseline in ["load", "random"] {
        assert!(
            overall("approximate", "output_tokens_per_s")
                > overall(baseline, "output_tokens_per_s"),
            "output tokens/s vs {baseline}"
        );
        assert!(
            overall("approximate", "prefix_hit_rate") > overall(baseline, "prefix_hit_rate"),
            "hit rate vs {baseline}"
        );
    }
}

/// A researcher replays a Mooncake trace next to the experiment file, from another
/// working directory; prefix routing sees the trace's shared hash ids.
#[test]
fn a_mooncake_trace_beside_the_experiment_runs_from_any_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut trace = String::new();
    for i in 0..60u32 {
        let group = i % 3;
        trace.push_str(&format!(
            "{{\"timestamp\": {}, \"input_length\": 1500, \"output_length\": 20, \"hash_ids\": [{}, {}, {}]}}\n",
            i * 250,
            group * 10,
            group * 10 + 1,
            1000 + i
        ));
    }
    std::fs::write(dir.path().join("trace.jsonl"), trace).expect("trace");
    let experiment = "\
name: mooncake-replay
cluster: {profile: llama-3.1-8b-h100-tp1, pods: 2, block_size: 16}
workload:
  trace: {format: mooncake, path: trace.jsonl, block_size: 512}
policies:
  - name: prefix
    config: |
      apiVersion: inference.networking.x-k8s.io/v1alpha1
      kind: EndpointPickerConfig
      plugins:
      - type: prefix-cache-scorer
      - type: max-score-picker
      schedulingProfiles:
      - name: default
        plugins:
        - pluginRef: prefix-cache-scorer
        - pluginRef: max-score-picker
";
    std::fs::write(dir.path().join("exp.yaml"), experiment).expect("experiment");
    let output = lab()
        .current_dir(std::env::temp_dir())
        .args(["run", "--quiet", "--no-plots", "--out"])
        .arg(dir.path().join("out"))
        .arg(dir.path().join("exp.yaml"))
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let s = summary(&dir.path().join("out"));
    let overall = &s["policies"]["prefix"]["overall"];
    assert_eq!(overall["requests"].as_f64(), Some(60.0));
    assert_eq!(overall["failures"].as_f64(), Some(0.0));
    let hit_rate = overall["prefix_hit_rate"].as_f64().expect("hit rate");
    assert!(
        hit_rate > 0.5,
        "three shared 1024-token prefixes: {hit_rate}"
    );
}

/// Issue 16 at reduced scale: the flow-control preset's overloaded pool. With the waiting
/// room (concurrency detector, in-flight-aware picks) the interactive band's TTFT p99 stays
/// below the batch band's, far below its own without flow control and within 2x of its
/// unloaded value, at the same throughput; the same seed gives the same files.
#[test]
fn flow_control_keeps_the_interactive_band_ahead_and_is_deterministic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let args = [
            "run",
            "--preset",
            "flow-control",
            "--out",
            out.to_str().expect("utf-8"),
            "--scale",
            SCALE,
            "--policy",
            "no-flow-control",
            "--policy",
            "fc-concurrency-inflight",
            "--policy",
            "interactive-alone",
        ];
        run_lab(&[&args[..], &["--quiet", "--no-plots", "--seed", "1"]].concat());
    }
    assert_eq!(files(&a), files(&b), "same experiment and seed, same bytes");
    let s = summary(&a);
    let class = |policy: &str, name: &str| -> Value {
        s["policies"][policy]["classes"]
            .as_array()
            .and_then(|classes| classes.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{policy} has no class {name}"))
    };
    let p99 = |c: &Value| c["ttft_ms"]["p99"].as_f64().expect("TTFT p99");
    let (fc_high, fc_low) = (
        class("fc-concurrency-inflight", "interactive"),
        class("fc-concurrency-inflight", "batch"),
    );
    let no_fc_high = class("no-flow-control", "interactive");
    assert!(
        p99(&fc_high) < p99(&fc_low),
        "with flow control: interactive {} ms, batch {} ms",
        p99(&fc_high),
        p99(&fc_low)
    );
    assert!(
        p99(&fc_high) * 2.0 < p99(&no_fc_high),
        "interactive TTFT p99 with flow control {} ms, without {} ms",
        p99(&fc_high),
        p99(&no_fc_high)
    );
    assert!(fc_high["epp_wait_ms"]["p99"].is_number());
    assert!(no_fc_high["epp_wait_ms"].is_null(), "no waiting room");
    // Issue 16's targets, at this scale too: within 2x of the unloaded interactive p99, and
    // no throughput lost to the waiting room.
    let alone = class("interactive-alone", "interactive");
    assert!(
        p99(&fc_high) <= 2.0 * p99(&alone),
        "interactive TTFT p99 {} ms at 1.5x overload, {} ms alone",
        p99(&fc_high),
        p99(&alone)
    );
    let throughput = |policy: &str| {
        s["policies"][policy]["overall"]["output_tokens_per_s"]
            .as_f64()
            .expect("throughput")
    };
    assert!(
        throughput("fc-concurrency-inflight") >= 0.95 * throughput("no-flow-control"),
        "output tok/s {} with flow control, {} without",
        throughput("fc-concurrency-inflight"),
        throughput("no-flow-control")
    );
    let jain = fc_low["jain_flows"].as_f64().expect("jain");
    assert!(jain > 0.9, "batch flows share fairly: {jain}");
    let csv = std::fs::read_to_string(a.join("fc-concurrency-inflight/seed-1/requests.csv"))
        .expect("csv");
    assert!(
        csv.lines()
            .next()
            .is_some_and(|h| h.ends_with(",class,flow,dispatched_s,epp_wait_s")),
        "{}",
        csv.lines().next().unwrap_or_default()
    );
}

/// The flow-control preset at this fraction of its duration (25 s simulated, seconds in a
/// debug build); the full run gives the same ratios (docs/lab.md).
const SCALE: &str = "0.35";
