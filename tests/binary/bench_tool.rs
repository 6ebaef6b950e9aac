//! The `epp-bench` binary against an in-process EPP, its own no-op baseline, the `epp`
//! binary over TLS, and a simulated model server over HTTP.

use std::process::Command;

use epp_testkit::HERMETIC_CONFIG;
use serde_json::Value;

use super::RunningBinary;
use crate::TestEpp;

const BENCH: &str = env!("CARGO_BIN_EXE_epp-bench");
const ENDPOINTS: [&str; 2] = ["127.0.0.1:18001", "127.0.0.1:18002"];
const NOOP_ENDPOINT: &str = "10.0.0.9:8000";

/// Runs `epp-bench` with `args` plus `--json`, off the test's runtime, and returns the report.
async fn bench(args: Vec<String>) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let mut command = Command::new(BENCH);
    command.args(&args).arg("--quiet").arg("--json").arg(&json);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run epp-bench");
    assert!(
        output.status.success(),
        "epp-bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&std::fs::read(&json).expect("report written")).expect("report is JSON")
}

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// Every request succeeded and went to one of `allowed`.
fn assert_all_routed(target: &Value, requests: u64, allowed: &[&str]) {
    let name = &target["name"];
    assert_eq!(target["requests_ok"], requests, "{name}: {target}");
    assert_eq!(target["errors_total"], 0, "{name}: {target}");
    let destinations = target["destinations"].as_object().expect("destinations");
    for (destination, _) in destinations {
        assert!(
            allowed.contains(&destination.as_str()),
            "{name} routed to {destination}"
        );
    }
    let routed: u64 = destinations
        .values()
        .map(|c| c.as_u64().expect("count"))
        .sum();
    assert_eq!(routed, requests, "{name}: every request has a destination");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_against_the_epp_and_the_noop_in_both_body_modes() {
    let epp = TestEpp::start(&ENDPOINTS, HERMETIC_CONFIG).await;
    let target = epp.running.ext_proc_address.to_string();
    for mode in ["full-duplex", "buffered"] {
        // 50 requests of 40 KB, in 16 KiB chunks, 4 at a time, against the EPP and the no-op.
        let report = bench(args(&format!(
            "direct --target {target} --mode {mode} --requests 50 --concurrency 4 --warmup 4 \
             --prompt-bytes 40000 --baseline --endpoint {NOOP_ENDPOINT}"
        )))
        .await;
        assert_all_routed(&report["targets"][0], 50, &ENDPOINTS);
        assert_all_routed(&report["targets"][1], 50, &[NOOP_ENDPOINT]);
        assert_eq!(report["targets"][1]["name"], "noop");
        assert!(
            report["ratio"]["p99"].as_f64().is_some(),
            "{mode}: {}",
            report["ratio"]
        );
        assert_eq!(report["config"]["mode"], mode);
        assert!(report["machine"]["nproc"].as_u64().expect("nproc") >= 1);
        let exchange = &report["targets"][0]["latency"]["exchange"];
        assert_eq!(exchange["count"], 50);
        assert!(exchange["p50_us"].as_u64() <= exchange["p99_us"].as_u64());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_over_tls_against_the_epp_binary_and_a_tls_noop() {
    let mut epp = RunningBinary::start(&[]);
    epp.wait_serving().await;
    // The in-process no-op baseline speaks TLS too.
    let report = bench(args(&format!(
        "direct --target {} --tls --requests 20 --concurrency 2 --warmup 0 --workload chat \
         --baseline --endpoint {NOOP_ENDPOINT}",
        epp.ext_proc
    )))
    .await;
    assert_all_routed(&report["targets"][0], 20, &ENDPOINTS);
    assert_all_routed(&report["targets"][1], 20, &[NOOP_ENDPOINT]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_streams_from_a_simulated_server() {
    let config = epp_sim::SimConfig {
        time_scale: 0.01,
        ..Default::default()
    };
    let sim = epp_sim::start(config, "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("sim starts");
    let report = bench(args(&format!(
        "proxy --url {} --requests 20 --concurrency 4 --warmup 0 --workload shared-prefix \
         --groups 2 --prompts-per-group 2 --system-prompt-len 100 --question-len 10",
        sim.url()
    )))
    .await;
    let target = &report["targets"][0];
    let port = sim.address().port().to_string();
    assert_all_routed(target, 20, &[port.as_str()]);
    let (ttft, e2e) = (&target["latency"]["ttft"], &target["latency"]["e2e"]);
    assert!(
        ttft["p50_us"].as_u64() <= e2e["p50_us"].as_u64(),
        "{ttft} {e2e}"
    );
    assert_eq!(
        target["group_affinity"], 1.0,
        "one server serves every group"
    );
}
