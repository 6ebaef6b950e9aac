//! The precise prefix scorer end to end in one process: simulated vLLM servers publish their
//! KV-cache events over ZMQ (or a Python publisher built on vLLM's own libraries does), the
//! EPP subscribes, asks the servers' `/tokenize` for each request's tokens, and routes a prompt
//! to the server whose engine reports holding it, which the approximate index cannot know.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use epp_extproc::BodyMode;
use epp_testkit::driver::{Request, send_request};
use epp_testkit::messages::completion_body;
use epp_testkit::ports::free_port_run;
use epp_testkit::python::{kv_python, require_kv_python};

use crate::TestEpp;

const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// One test of this file at a time: each picks a run of free ports for its simulators'
/// event sockets, which the other's simulators could otherwise take in between.
static PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(kv_port: u16) -> String {
    format!(
        "apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-scorer
  parameters:
    blockSize: 16
    kvEventsPort: {kv_port}
    tokenizer: {{source: model-server, timeout: 2s}}
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: precise-prefix-cache-scorer
  - pluginRef: max-score-picker
"
    )
}

async fn simulated(count: usize, simulator_args: &str, kv_port: u16) -> TestEpp {
    let args = simulator_args.to_owned();
    TestEpp::start_with(&[], &config(kv_port), move |o| {
        o.endpoint_source = epp::cli::EndpointSource::Simulated(count);
        o.simulate_endpoints = count;
        o.simulator_config = epp_sim::SimArgs::parse(&args.split_whitespace().collect::<Vec<_>>())
            .expect("simulator args")
            .config;
        o.refresh_metrics_interval = Duration::from_millis(50);
    })
    .await
}

fn prompt(topic: &str) -> String {
    format!("{topic}: ").repeat(120)
}

async fn pick(epp: &TestEpp, prompt: &str) -> String {
    let mut stream = epp.stream().await;
    send_request(
        &mut stream,
        BodyMode::FullDuplexStreamed,
        &Request::new(&[], completion_body(MODEL, prompt)),
    )
    .await
    .destination()
    .to_owned()
}

/// Runs `prompt` on `server` directly, bypassing the EPP, so only its KV events tell.
async fn warm(server: SocketAddr, prompt: &str) {
    let body = serde_json::json!({"model": MODEL, "prompt": prompt, "max_tokens": 1});
    let status = http_post(server, "/v1/completions", &body).await.0;
    assert_eq!(status, 200, "warm-up completion on {server}");
}

/// A minimal HTTP/1.1 POST (the tests have no HTTP client of their own).
async fn http_post(server: SocketAddr, path: &str, body: &serde_json::Value) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(server)
        .await
        .expect("connect");
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {server}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Waits until the precise index holds at least `entries` entries.
async fn until_indexed(epp: &TestEpp, entries: usize) {
    let index = epp_precise_index(epp);
    for _ in 0..400 {
        if index.stats(Duration::ZERO).entries >= entries {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the precise index never reached {entries} entries: {:?}",
        index.stats(Duration::ZERO)
    );
}

fn epp_precise_index(epp: &TestEpp) -> std::sync::Arc<epp_core::prefix::PreciseIndex> {
    epp.running
        .precise_indexes()
        .first()
        .cloned()
        .expect("a precise scorer is configured")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_to_the_server_whose_engine_reports_the_prefix() {
    let _serial = PORTS.lock().await;
    let kv_port = free_port_run(3);
    let epp = simulated(3, &format!("--kv-events-port {kv_port}"), kv_port).await;
    let sims: Vec<SocketAddr> = epp.running.simulated.iter().map(|s| s.address()).collect();
    for (i, topic) in ["alpha", "bravo", "charlie"].iter().enumerate() {
        let text = prompt(topic);
        // Give the subscriptions time to connect before the events they must see.
        tokio::time::sleep(Duration::from_millis(300)).await;
        warm(sims[i], &text).await;
        until_indexed(&epp, 10 * (i + 1)).await;
        assert_eq!(
            pick(&epp, &text).await,
            sims[i].to_string(),
            "{topic} is cached on server {i} only"
        );
    }
    let stats = epp_precise_index(&epp).stats(Duration::ZERO);
    assert!(stats.events_applied > 0 && stats.gaps == 0, "{stats:?}");
}

/// The Python publisher (`tests/python/kv_publisher.py`: pyzmq and msgspec with vLLM's event
/// structs) stands in for server 1's engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_events_from_a_python_vllm_publisher() {
    require_kv_python();
    let _serial = PORTS.lock().await;
    let kv_port = free_port_run(3);
    let epp = simulated(3, "", kv_port).await;
    let sims: Vec<SocketAddr> = epp.running.simulated.iter().map(|s| s.address()).collect();
    let text = prompt("delta");
    let (status, body) = http_post(
        sims[0],
        "/tokenize",
        &serde_json::json!({"model": MODEL, "prompt": text}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let tokens: Vec<u64> =
        serde_json::from_str::<serde_json::Value>(&body).expect("json")["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .filter_map(|t| t.as_u64())
            .collect();
    let whole = tokens.len() / 16 * 16;
    let list: Vec<String> = tokens[..whole].iter().map(u64::to_string).collect();
    let _publisher = Publisher(
        Command::new(kv_python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python/kv_publisher.py"
            ))
            .args(["--endpoint", &format!("tcp://127.0.0.1:{}", kv_port + 1)])
            .args(["--tokens", &list.join(","), "--rank", "1"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the Python publisher"),
    );
    until_indexed(&epp, whole / 16).await;
    assert_eq!(pick(&epp, &text).await, sims[1].to_string());
}

struct Publisher(Child);

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
