#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::{Value, json};

use super::metrics::StageMetrics;
use super::stats::{ci95, jain, percentile_sorted, weighted_percentile};
use super::{ReportContext, deterministic_view, plots, sanitize, write_all};
use crate::results::{FinishReason, PodSample, RequestRecord, RunResult, StageInfo};

// === fixtures ===

/// A request; `times` = (scheduled, first token, completed) offsets from arrival.
#[allow(clippy::too_many_arguments)]
fn req(
    id: u64,
    stage: u32,
    pod: Option<u32>,
    arrival: f64,
    times: (Option<f64>, Option<f64>, Option<f64>),
    input: u32,
    cached: u32,
    output: u32,
    finish: FinishReason,
) -> RequestRecord {
    RequestRecord {
        id,
        stage,
        group: Some(id as u32 % 2),
        session: None,
        round: None,
        pod,
        arrival_s: arrival,
        scheduled_s: times.0.map(|t| arrival + t),
        first_token_s: times.1.map(|t| arrival + t),
        completed_s: times.2.map(|t| arrival + t),
        input_tokens: input,
        cached_tokens: cached,
        output_tokens: output,
        preemptions: 0,
        finish,
        class: None,
        flow: None,
        dispatched_s: None,
    }
}

/// Two stages (rates 2 and 4), three pods. `pod` maps the natural pod of a request (policy
/// "a" spreads, "b" sends everything to pod 0); stage 1's TTFT is 0.2 s × seed.
fn run(policy: &str, seed: u64, pod: fn(u32) -> u32) -> RunResult {
    use FinishReason::*;
    let t4 = 0.2 * seed as f64;
    let requests = vec![
        req(
            0,
            0,
            Some(pod(0)),
            0.0,
            (Some(0.1), Some(0.5), Some(1.5)),
            100,
            50,
            11,
            Length,
        ),
        req(
            1,
            0,
            Some(pod(1)),
            0.5,
            (Some(0.1), Some(1.0), Some(2.0)),
            100,
            0,
            11,
            Length,
        ),
        req(
            2,
            0,
            Some(pod(0)),
            1.0,
            (Some(0.1), Some(1.5), Some(2.0)),
            200,
            100,
            6,
            Length,
        ),
        req(3, 0, None, 1.5, (None, None, None), 100, 0, 11, Rejected),
        req(
            4,
            1,
            Some(pod(2)),
            2.0,
            (Some(0.0), Some(t4), Some(t4 + 1.0)),
            100,
            100,
            11,
            Length,
        ),
        req(
            5,
            1,
            Some(pod(1)),
            2.25,
            (Some(0.05), None, None),
            100,
            0,
            11,
            Unfinished,
        ),
    ];
    let pods = (0..4)
        .flat_map(|t| {
            (0..3).map(move |p| PodSample {
                time_s: f64::from(t),
                pod: p,
                waiting: p + t,
                running: 1,
                kv_usage: 0.1 * f64::from(p),
                prefix_queries: u64::from(t) * 100,
                prefix_hits: u64::from(t) * 40,
                preemptions: 0,
            })
        })
        .collect();
    let stages = vec![
        StageInfo {
            index: 0,
            rate: Some(2.0),
            start_s: 0.0,
            duration_s: 2.0,
            warmup: false,
        },
        StageInfo {
            index: 1,
            rate: Some(4.0),
            start_s: 2.0,
            duration_s: 1.0,
            warmup: false,
        },
    ];
    RunResult {
        policy: policy.to_string(),
        seed,
        requests,
        pods,
        stages,
        simulated_s: 3.2 + seed as f64,
        wall_s: 0.5,
        decision_us: vec![10.0, 20.0, 30.0],
        decision_records: Some(vec![r#"{"pick":"pod-0"}"#.to_string()]),
        precise: None,
        classes: Vec::new(),
        flow_control: false,
    }
}

fn spread(p: u32) -> u32 {
    p
}

fn all_to_zero(_: u32) -> u32 {
    0
}

fn all_runs() -> Vec<RunResult> {
    // Deliberately out of order: the writer sorts by experiment order.
    vec![
        run("b/x", 2, all_to_zero),
        run("a", 2, spread),
        run("b/x", 1, all_to_zero),
        run("a", 1, spread),
    ]
}

struct Ctx {
    experiment: Value,
    policies: Vec<String>,
    seeds: Vec<u64>,
}

impl Ctx {
    fn new(policies: &[&str], seeds: &[u64]) -> Self {
        Self {
            experiment: json!({"name": "test", "workload": "w"}),
            policies: policies.iter().map(|s| s.to_string()).collect(),
            seeds: seeds.to_vec(),
        }
    }

    fn report(&self, wall_s: f64, plots: bool) -> ReportContext<'_> {
        ReportContext {
            experiment: &self.experiment,
            workload: "w1, small",
            policies: &self.policies,
            seeds: &self.seeds,
            wall_s,
            git_revision: Some("abc123"),
            coefficients: json!({"beta_0": 126e-6}),
            plots,
        }
    }
}

fn close(a: &Value, b: f64) {
    let a = a.as_f64().unwrap_or_else(|| panic!("{a} is not a number"));
    assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} != {b}");
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file written")).expect("valid JSON")
}

// === stats ===

#[test]
fn percentiles_interpolate_linearly_like_numpy() {
    let v = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(percentile_sorted(&v, 50.0), Some(2.5));
    assert_eq!(percentile_sorted(&v, 90.0), Some(3.7));
    assert_eq!(percentile_sorted(&v, 0.0), Some(1.0));
    assert_eq!(percentile_sorted(&v, 100.0), Some(4.0));
    assert_eq!(percentile_sorted(&[], 50.0), None);
    // Weighted = the expanded multiset.
    let pairs = [(1.0, 3), (5.0, 1), (7.0, 2)];
    let expanded = [1.0, 1.0, 1.0, 5.0, 7.0, 7.0];
    for p in [0.1, 10.0, 50.0, 75.0, 99.9] {
        let w = weighted_percentile(&pairs, p).expect("non-empty");
        let e = percentile_sorted(&expanded, p).expect("non-empty");
        assert!((w - e).abs() < 1e-12, "p{p}: {w} vs {e}");
    }
}

#[test]
fn ci95_uses_student_t_and_is_zero_for_one_seed() {
    assert_eq!(ci95(&[]), None);
    assert_eq!(ci95(&[5.0]), Some(0.0));
    // s = √2, n = 2: 12.706 · √2/√2.
    let ci = ci95(&[1.0, 3.0]).expect("two values");
    assert!((ci - 12.706).abs() < 1e-9, "{ci}");
    // Past the table, close to the normal quantile.
    let many: Vec<f64> = (0..200).map(|i| f64::from(i % 2)).collect();
    let ci = ci95(&many).expect("values");
    let s = (0.25_f64 * 200.0 / 199.0).sqrt();
    assert!((ci / (s / 200f64.sqrt()) - 1.972).abs() < 2e-3, "{ci}");
}

#[test]
fn jain_index_bounds() {
    assert_eq!(jain(&[5.0, 5.0, 5.0]), Some(1.0));
    assert!((jain(&[3.0, 0.0, 0.0]).expect("routed") - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(jain(&[0.0, 0.0]), None);
    assert_eq!(jain(&[]), None);
}

// === summary.json ===

#[test]
fn summary_values_for_one_seed() {
    let ctx = Ctx::new(&["a"], &[1]);
    let dir = tempfile::tempdir().expect("temp dir");
    let runs = vec![run("a", 1, spread)];
    let s = write_all(dir.path(), &ctx.report(2.0, false), &runs).expect("written");
    assert_eq!(s["experiment"]["name"], "test");
    assert_eq!(s["seeds"], json!([1]));
    close(&s["wall_seconds"], 2.0);
    close(&s["simulated_seconds"], 4.2);
    let st = &s["policies"]["a"]["stages"][0];
    assert_eq!(st["stage"], 0);
    close(&st["rate"], 2.0);
    assert_eq!(st["warmup"], false);
    close(&st["requests"], 4.0);
    close(&st["failures"], 1.0);
    // TTFT 500, 1000, 1500 ms: linear interpolation.
    close(&st["ttft_ms"]["mean"], 1000.0);
    close(&st["ttft_ms"]["p50"], 1000.0);
    close(&st["ttft_ms"]["p90"], 1400.0);
    close(&st["ttft_ms"]["p99"], 1490.0);
    close(&st["tpot_ms"]["p50"], 100.0);
    close(&st["e2e_ms"]["mean"], 5500.0 / 3.0);
    close(&st["queue_ms"]["p99"], 100.0);
    // 28 output tokens, 3 successes over [0, 3.0] (first start to last end).
    close(&st["output_tokens_per_s"], 28.0 / 3.0);
    close(&st["requests_per_s"], 1.0);
    close(&st["prefix_hit_rate"], 150.0 / 400.0);
    assert_eq!(st["load_split"].as_array().expect("split").len(), 3);
    close(&st["load_split"][0], 2.0 / 3.0);
    close(&st["load_split"][2], 0.0);
    close(&st["jain_index"], 9.0 / 15.0);
    // One seed: every CI half-width is 0.
    close(&st["ci95"]["ttft_ms"]["p90"], 0.0);
    close(&st["ci95"]["jain_index"], 0.0);

    // Stage 1: the unfinished request is sent there; the span ends at its last event.
    let st1 = &s["policies"]["a"]["stages"][1];
    close(&st1["failures"], 1.0);
    close(&st1["output_tokens_per_s"], 11.0 / 1.2);
    close(&st1["prefix_hit_rate"], 0.5);

    let o = &s["policies"]["a"]["overall"];
    assert_eq!(o["rate"], Value::Null);
    close(&o["requests"], 6.0);
    close(&o["failures"], 2.0);
    close(&o["output_tokens_per_s"], 39.0 / 3.2);
    close(&o["requests_per_s"], 4.0 / 3.2);
}

#[test]
fn summary_means_and_ci_over_two_seeds_in_experiment_order() {
    let ctx = Ctx::new(&["b/x", "a"], &[1, 2]);
    let dir = tempfile::tempdir().expect("temp dir");
    let s = write_all(dir.path(), &ctx.report(1.0, false), &all_runs()).expect("written");
    let st1 = &s["policies"]["a"]["stages"][1];
    // TTFT 200 ms and 400 ms: mean 300, CI 12.706 · 141.42/√2 = 1270.6.
    close(&st1["ttft_ms"]["p50"], 300.0);
    close(&st1["ci95"]["ttft_ms"]["p50"], 1270.6);
    close(&st1["ci95"]["requests"], 0.0);
    // Policy b sends everything to pod 0.
    let b = &s["policies"]["b/x"]["stages"][0];
    close(&b["jain_index"], 1.0 / 3.0);
    close(&b["load_split"][0], 1.0);
    // The file keeps experiment order (b/x before a).
    let text = std::fs::read_to_string(dir.path().join("summary.json")).expect("summary");
    assert!(text.find("\"b/x\"").expect("b") < text.find("\"a\": {").expect("a"));
}

#[test]
fn empty_sets_are_null_not_zero() {
    let rejected = req(
        0,
        0,
        None,
        1.0,
        (None, None, None),
        10,
        0,
        5,
        FinishReason::Rejected,
    );
    let m = StageMetrics::of(&[&rejected], 3);
    assert_eq!(m.ttft_ms, None);
    assert_eq!(m.output_tokens_per_s, None);
    assert_eq!(m.prefix_hit_rate, None);
    assert_eq!(m.load_split, None);
    assert_eq!(m.jain_index, None);
    let v = serde_json::to_value(&m).expect("serialises");
    assert_eq!(v["ttft_ms"], Value::Null);
    assert_eq!(v["jain_index"], Value::Null);
    close(&v["failures"], 1.0);
    // Combining seeds that all lack a value keeps it unknown.
    let c = StageMetrics::combine(&[&m, &m], super::metrics::mean_of);
    assert_eq!(c.tpot_ms, None);
}

#[test]
fn warmup_stages_are_left_out_of_overall_and_tidy() {
    let ctx = Ctx::new(&["a"], &[1]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut r = run("a", 1, spread);
    r.stages[0].warmup = true;
    r.stages[1].rate = None;
    let s = write_all(dir.path(), &ctx.report(1.0, false), &[r]).expect("written");
    assert_eq!(s["policies"]["a"]["stages"][0]["warmup"], true);
    close(&s["policies"]["a"]["overall"]["requests"], 2.0);
    let tidy = std::fs::read_to_string(dir.path().join("tidy.csv")).expect("tidy");
    assert_eq!(tidy.lines().count(), 1 + 9);
    assert!(
        tidy.lines()
            .skip(1)
            .all(|l| l.starts_with("\"a\",\"w1, small\",,1,")),
        "{tidy}"
    );
}

// === determinism ===

fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).expect("inside").display().to_string();
                out.push((rel, std::fs::read(&p).expect("file")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn two_writes_are_byte_identical_except_wall_time() {
    let ctx = Ctx::new(&["a", "b/x"], &[1, 2]);
    let (d1, d2) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let s1 = write_all(d1.path(), &ctx.report(1.0, false), &all_runs()).expect("first");
    let mut shuffled = all_runs();
    shuffled.reverse();
    let s2 = write_all(d2.path(), &ctx.report(7.0, false), &shuffled).expect("second");
    assert_ne!(s1, s2, "wall_seconds differs");
    assert_eq!(deterministic_view(&s1), deterministic_view(&s2));
    let v = json!({"wall_seconds": 1, "a": [{"scheduler_us_per_decision": 2, "kv_usage": 3, "x_us": 4}]});
    assert_eq!(deterministic_view(&v), json!({"a": [{"kv_usage": 3}]}));
    let (f1, f2) = (files(d1.path()), files(d2.path()));
    assert_eq!(f1.len(), f2.len());
    assert!(f1.len() > 10, "{} files", f1.len());
    for ((n1, b1), (n2, b2)) in f1.iter().zip(&f2) {
        assert_eq!(n1, n2);
        if n1 == "manifest.json" {
            continue;
        }
        if n1 == "summary.json" {
            let v = |b: &[u8]| deterministic_view(&serde_json::from_slice(b).expect("json"));
            assert_eq!(v(b1), v(b2));
            continue;
        }
        assert!(b1 == b2, "{n1} differs");
    }
}

// === per-seed files ===

#[test]
fn inference_perf_files_carry_the_fields() {
    let ctx = Ctx::new(&["a", "b/x"], &[1, 2]);
    let dir = tempfile::tempdir().expect("dir");
    write_all(dir.path(), &ctx.report(1.0, false), &all_runs()).expect("written");
    let seed = dir.path().join("a").join("seed-1");
    let sum = read_json(&seed.join("summary_lifecycle_metrics.json"));
    assert_eq!(sum["load_summary"]["count"], 6);
    assert!(sum["load_summary"].get("achieved_rate").is_none());
    assert_eq!(sum["successes"]["count"], 4);
    assert_eq!(sum["failures"]["count"], 2);
    assert_eq!(
        sum["failures"]["by_label"]["rejected: no endpoint"]["count"],
        1
    );
    let lat = &sum["successes"]["latency"];
    for metric in [
        "request_latency",
        "time_to_first_token",
        "time_per_output_token",
        "inter_token_latency",
        "normalized_time_per_output_token",
    ] {
        for key in [
            "mean", "min", "p0.1", "p1", "p5", "p10", "p25", "median", "p75", "p90", "p95", "p99",
            "p99.9", "max",
        ] {
            assert!(lat[metric][key].is_number(), "{metric}.{key}");
        }
    }
    // Seconds: TTFT 0.5, 1.0, 1.5, 0.2.
    close(&lat["time_to_first_token"]["min"], 0.2);
    close(&lat["time_to_first_token"]["max"], 1.5);
    close(&lat["time_to_first_token"]["median"], 0.75);
    // ITL: token-weighted TPOTs, all 0.1 s here.
    close(&lat["inter_token_latency"]["mean"], 0.1);
    let tp = &sum["successes"]["throughput"];
    close(&tp["output_tokens_per_sec"], 39.0 / 3.2);
    close(&tp["input_tokens_per_sec"], 500.0 / 3.2);
    close(&tp["total_tokens_per_sec"], 539.0 / 3.2);
    close(&tp["requests_per_sec"], 4.0 / 3.2);
    close(&sum["successes"]["prompt_len"]["mean"], 125.0);
    close(&sum["successes"]["prompt_tokens"]["cached"], 250.0);
    close(&sum["successes"]["output_len"]["max"], 11.0);

    let st = read_json(&seed.join("stage_0_lifecycle_metrics.json"));
    close(&st["load_summary"]["requested_rate"], 2.0);
    close(&st["load_summary"]["send_duration"], 1.5);
    close(&st["load_summary"]["achieved_rate"], 4.0 / 1.5);
    close(
        &st["successes"]["throughput"]["output_tokens_per_sec"],
        28.0 / 3.0,
    );
    assert!(seed.join("stage_1_lifecycle_metrics.json").is_file());
    // The policy directory name is sanitised.
    assert!(
        dir.path()
            .join("b_x")
            .join("seed-2")
            .join("requests.csv")
            .is_file()
    );
}

#[test]
fn csv_files_have_one_row_per_record() {
    let ctx = Ctx::new(&["a", "b/x"], &[1, 2]);
    let dir = tempfile::tempdir().expect("dir");
    write_all(dir.path(), &ctx.report(1.0, false), &all_runs()).expect("written");
    let seed = dir.path().join("a").join("seed-1");
    let reqs = std::fs::read_to_string(seed.join("requests.csv")).expect("requests");
    let lines: Vec<&str> = reqs.lines().collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[0], super::csv::REQUESTS_HEADER);
    assert_eq!(
        lines[1],
        "0,0,0,,,0,0,0.1,0.5,1.5,100,50,11,0.1,0.5,0.1,1.5,0,length"
    );
    assert_eq!(lines[4], "3,0,1,,,,1.5,,,,100,0,11,,,,,0,rejected");
    let pods = std::fs::read_to_string(seed.join("pods.csv")).expect("pods");
    assert_eq!(pods.lines().count(), 13);
    assert_eq!(pods.lines().nth(2), Some("0,1,1,1,0.1,0,0,0"));
    let dec = std::fs::read_to_string(seed.join("decisions.jsonl")).expect("decisions");
    assert_eq!(dec, "{\"pick\":\"pod-0\"}\n");

    let tidy = std::fs::read_to_string(dir.path().join("tidy.csv")).expect("tidy");
    let rows: Vec<&str> = tidy.lines().collect();
    assert_eq!(rows[0], "policy,workload,qps,seed,metric,value");
    assert_eq!(rows.len(), 1 + 2 * 2 * 2 * 9);
    assert_eq!(rows[1], "\"a\",\"w1, small\",2,1,ttft_p50_ms,1000");
    let seed2 = rows
        .iter()
        .find_map(|r| r.strip_prefix("\"a\",\"w1, small\",4,2,ttft_p50_ms,"))
        .expect("stage 1 seed 2 row");
    assert!(
        (seed2.parse::<f64>().expect("number") - 400.0).abs() < 1e-9,
        "{seed2}"
    );
    assert!(rows.contains(&"\"b/x\",\"w1, small\",2,1,jain_index,0.3333333333333333"));
}

#[test]
fn manifest_records_costs_and_provenance() {
    let ctx = Ctx::new(&["a", "b/x"], &[1, 2]);
    let dir = tempfile::tempdir().expect("dir");
    write_all(dir.path(), &ctx.report(2.0, false), &all_runs()).expect("written");
    let m = read_json(&dir.path().join("manifest.json"));
    assert_eq!(m["git_revision"], "abc123");
    assert_eq!(m["tool_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(m["seeds"], json!([1, 2]));
    assert_eq!(m["experiment"]["name"], "test");
    close(&m["coefficients"]["beta_0"], 126e-6);
    close(&m["wall_seconds"], 2.0);
    // Σ simulated = 2·4.2 + 2·5.2 = 18.8 over 2 wall seconds.
    close(&m["simulated_seconds_per_wall_second"], 9.4);
    assert_eq!(m["scheduler_us_per_decision"]["count"], 12);
    close(&m["scheduler_us_per_decision"]["p50"], 20.0);
    close(&m["scheduler_us_per_decision"]["p99"], 30.0);
    assert!(!dir.path().join("plots").exists(), "plots off");
}

// === plots ===

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
}

#[test]
fn plots_are_png_files() {
    let ctx = Ctx::new(&["a", "b/x"], &[1, 2]);
    let dir = tempfile::tempdir().expect("dir");
    write_all(dir.path(), &ctx.report(1.0, true), &all_runs()).expect("written");
    let plots_dir = dir.path().join("plots");
    for name in [
        "ttft_vs_qps.png",
        "throughput_vs_qps.png",
        "a_queue.png",
        "a_kv.png",
        "b_x_queue.png",
        "b_x_kv.png",
    ] {
        assert_png(&plots_dir.join(name));
    }
    // The text-free fallback (no font on the machine) draws too.
    let runs = all_runs();
    let p = super::PolicyRuns {
        name: "a".into(),
        runs: vec![&runs[1]],
    };
    let summaries = vec![("a".to_string(), super::summary::policy_summary(&p, &|_| 0))];
    let policies = [p];
    let bare = dir.path().join("bare");
    plots::draw_all(&bare, &summaries, &policies, false).expect("drawn without text");
    assert_png(&bare.join("ttft_vs_qps.png"));
    assert_png(&bare.join("throughput_vs_qps.png"));
}

#[test]
fn path_names_are_sanitised() {
    assert_eq!(sanitize("precise/prefix 3:kv"), "precise_prefix_3_kv");
    assert_eq!(sanitize("a.b-c_d"), "a.b-c_d");
    assert_eq!(sanitize(".."), "_..");
    assert_eq!(sanitize(""), "_");
}
