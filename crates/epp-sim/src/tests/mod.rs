//! End-to-end tests: real HTTP against servers on 127.0.0.1:0.
//!
//! Every wait is bounded: conditions are polled with a deadline ([`wait_until`]), never slept on.

mod api;
mod behaviour;
mod embeddings;
mod flags;
mod kv_events;
mod metrics_page;
mod responses;
mod tokenize;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use super::*;

/// The bound on any single wait in these tests.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A config that runs ten times faster than real time.
fn fast() -> SimConfig {
    SimConfig {
        time_scale: 0.1,
        ..SimConfig::default()
    }
}

async fn start_local(config: SimConfig) -> RunningSim {
    start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn client() -> reqwest::Client {
    epp_net::tls::install_crypto_provider();
    reqwest::Client::builder().timeout(TIMEOUT).build().unwrap()
}

/// A response's status, `x-sim-server` header and body.
struct Reply {
    status: u16,
    server: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let server = response
        .headers()
        .get("x-sim-server")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    Reply {
        status,
        server,
        body,
    }
}

async fn post(sim: &RunningSim, path: &str, body: &Value) -> Reply {
    post_url(&sim.url(), path, body).await
}

async fn post_url(url: &str, path: &str, body: &Value) -> Reply {
    let request = client().post(format!("{url}{path}"));
    send(
        request
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

async fn get(sim: &RunningSim, path: &str) -> Reply {
    send(client().get(format!("{}{path}", sim.url()))).await
}

/// An SSE response: each `data:` payload.
struct Streamed {
    payloads: Vec<String>,
}

impl Streamed {
    /// The JSON chunks (every payload but the final `[DONE]`).
    fn chunks(&self) -> Vec<Value> {
        let (last, chunks) = self.payloads.split_last().expect("at least [DONE]");
        assert_eq!(last, "[DONE]", "[DONE] comes last");
        chunks
            .iter()
            .map(|c| serde_json::from_str(c).unwrap())
            .collect()
    }
}

async fn stream(sim: &RunningSim, path: &str, body: &Value) -> Streamed {
    let response = client()
        .post(format!("{}{path}", sim.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let mut bytes = response.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = bytes.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    let payloads = events
        .iter()
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not an SSE data line: {e:?}"))
        })
        .map(str::to_owned)
        .collect();
    Streamed { payloads }
}

/// Polls `condition` until it holds; panics with `what` after [`TIMEOUT`].
async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One parsed sample line of a Prometheus text page.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses a text-format page strictly: every line is a `# HELP`/`# TYPE` comment or a
/// well-formed sample of a family announced by both.
fn parse_metrics(page: &str) -> Vec<Sample> {
    let mut helped = Vec::new();
    let mut typed = BTreeMap::new();
    let mut samples = Vec::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.push(rest.split(' ').next().unwrap().to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_owned(), kind.to_owned());
        } else {
            let sample = parse_sample(line);
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    sample
                        .name
                        .strip_suffix(s)
                        .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(&sample.name);
            assert!(
                typed.contains_key(family) && helped.iter().any(|h| h == family),
                "{line}"
            );
            samples.push(sample);
        }
    }
    samples
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value: {line}"));
    let name = &line[..name_end];
    assert!(
        name.chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphabetic()
                || "_:".contains(c)
                || (i > 0 && c.is_ascii_digit())),
        "bad metric name in {line}"
    );
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let close = inner
            .rfind('}')
            .unwrap_or_else(|| panic!("unclosed labels: {line}"));
        for pair in split_labels(&inner[..close]) {
            let (key, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("bad label {pair:?} in {line}"));
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or_else(|| panic!("unquoted label in {line}"));
            labels.insert(key.to_owned(), value.to_owned());
        }
        rest = &inner[close + 1..];
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no space before the value: {line}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// Splits `a="x",b="y,z"` on the commas outside quotes.
fn split_labels(text: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < text.len() {
        parts.push(&text[start..]);
    }
    parts
}

/// The value of the first sample named `name` whose labels include `labels`.
fn sample_value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
        .map(|s| s.value)
}

async fn scrape(sim: &RunningSim) -> Vec<Sample> {
    let reply = get(sim, "/metrics").await;
    assert_eq!(reply.status, 200);
    parse_metrics(&reply.body)
}

/// A gauge of the scraped page (panics when absent).
async fn gauge(sim: &RunningSim, name: &str) -> f64 {
    sample_value(&scrape(sim).await, name, &[]).unwrap_or_else(|| panic!("{name} missing"))
}
