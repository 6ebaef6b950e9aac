//! The HTTP side: a client that records when each response chunk arrives, OpenAI request
//! bodies, and readers for what came back (routing headers, SSE events, usage, Prometheus
//! samples).

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::harness::MODEL;

/// Longest wait for one whole response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The routing header of the Endpoint Picker protocol.
pub const DESTINATION: &str = "x-gateway-destination-endpoint";
/// The conformance filter's header (`header-based-testing-filter`).
pub const SELECT: &str = "test-epp-endpoint-selection";

/// A plain HTTP/1.1 client; cheap to clone.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When each body chunk arrived, counted from the request.
    pub chunk_times: Vec<Duration>,
    pub elapsed: Duration,
}

impl Http {
    pub fn new() -> Http {
        epp_net::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("HTTP client");
        Http { client }
    }

    /// `GET http://127.0.0.1:<port><path>`: the body on 200, else `None`.
    pub async fn admin(&self, port: u16, path: &str) -> Option<String> {
        self.fetch_text(&format!("http://127.0.0.1:{port}{path}"))
            .await
    }

    /// A GET's body on 200, `None` on any other status or a connection error.
    pub async fn fetch_text(&self, url: &str) -> Option<String> {
        let request = self.client.get(url).timeout(Duration::from_secs(2));
        let response = request.send().await.ok()?;
        match response.status().as_u16() {
            200 => response.text().await.ok(),
            _ => None,
        }
    }

    pub async fn post(&self, url: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let bytes = serde_json::to_vec(body).expect("serialize the body");
        self.post_raw(url, bytes, headers).await
    }

    pub async fn post_raw(&self, url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Reply {
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request).await
    }

    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.client.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request).await
    }
}

/// Sends `request` and reads the body chunk by chunk, noting arrival times.
async fn read(request: reqwest::RequestBuilder) -> Reply {
    let start = Instant::now();
    let mut response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("request failed: {e:?}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    let mut chunk_times = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .unwrap_or_else(|e| panic!("reading the body failed after {body:?}: {e:?}"))
    {
        chunk_times.push(start.elapsed());
        body.extend_from_slice(&chunk);
    }
    Reply {
        status,
        headers,
        body: Bytes::from(body),
        chunk_times,
        elapsed: start.elapsed(),
    }
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The port of the simulator that served the request (`x-sim-server`).
    pub fn served_by(&self) -> Option<u16> {
        self.header("x-sim-server")?.parse().ok()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.describe()))
    }

    /// Status, headers and the start of the body, for assertion messages.
    pub fn describe(&self) -> String {
        let text = self.text();
        let end = text.char_indices().nth(300).map_or(text.len(), |(i, _)| i);
        format!("{} {:?} {}", self.status, self.headers, &text[..end])
    }
}

/// Asserts that the request succeeded and that Envoy connected to the endpoint the EPP put
/// in its `envoy.lb` metadata (the headers the configs add), which is the simulator that
/// answered. Returns that simulator's port.
pub fn assert_routed(reply: &Reply) -> u16 {
    assert_eq!(reply.status, 200, "{}", reply.describe());
    let port = reply
        .served_by()
        .unwrap_or_else(|| panic!("no simulator answered: {}", reply.describe()));
    let served = format!("127.0.0.1:{port}");
    assert_eq!(
        reply.header("x-e2e-upstream-host"),
        Some(served.as_str()),
        "Envoy's upstream host is not the server that answered: {}",
        reply.describe()
    );
    assert_eq!(
        reply.header("x-e2e-epp-metadata"),
        Some(served.as_str()),
        "Envoy did not connect to the EPP's pick: {}",
        reply.describe()
    );
    port
}

// === request bodies ===

pub fn completion(prompt: &str, max_tokens: u32) -> Value {
    json!({"model": MODEL, "prompt": prompt, "max_tokens": max_tokens})
}

/// A chat request from `(role, content)` pairs.
pub fn chat(messages: &[(&str, &str)], max_tokens: u32) -> Value {
    let messages: Vec<Value> = messages
        .iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    json!({"model": MODEL, "messages": messages, "max_tokens": max_tokens})
}

/// `body` as an SSE request that ends with a usage chunk.
pub fn streaming(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body
}

// === response bodies ===

/// A response without what differs between two answers to the same request: the id, the
/// creation time and the prefix-cache hits.
pub fn normalized(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.remove("id");
        object.remove("created");
        if let Some(usage) = object.get_mut("usage").and_then(Value::as_object_mut) {
            usage.remove("prompt_tokens_details");
        }
    }
    value
}

/// The `data:` payloads of an SSE body, in order, `[DONE]` included.
pub fn sse_data(body: &str) -> Vec<&str> {
    body.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .collect()
}

/// The SSE events as JSON, [`normalized`], without `[DONE]`.
pub fn sse_events(body: &str) -> Vec<Value> {
    sse_data(body)
        .into_iter()
        .filter(|data| *data != "[DONE]")
        .map(|data| {
            let value = serde_json::from_str(data)
                .unwrap_or_else(|e| panic!("SSE event is not JSON ({e}): {data}"));
            normalized(value)
        })
        .collect()
}

/// The `usage` object of the last SSE event that has one.
pub fn sse_usage(body: &str) -> Option<Value> {
    sse_data(body)
        .into_iter()
        .rev()
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find_map(|event| event.get("usage").filter(|u| u.is_object()).cloned())
}

/// A `usage` field as a number.
pub fn tokens(usage: &Value, field: &str) -> u64 {
    usage[field]
        .as_u64()
        .unwrap_or_else(|| panic!("usage.{field} missing in {usage}"))
}

// === Prometheus text ===

/// The value of the first sample `name{…}` whose labels include every `(label, value)`.
pub fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (found, value) = match rest.strip_prefix('{') {
                Some(inner) => {
                    let (text, value) = inner.rsplit_once('}')?;
                    (parse_labels(text), value)
                }
                None if rest.starts_with(' ') => (Vec::new(), rest),
                None => return None,
            };
            let wanted = labels
                .iter()
                .all(|(k, v)| found.iter().any(|(fk, fv)| fk == k && fv == v));
            wanted.then(|| value.split_whitespace().next()?.parse().ok())?
        })
}

/// `a="x",b="y"` as pairs (values in these tests hold no quotes or escapes).
fn parse_labels(text: &str) -> Vec<(String, String)> {
    text.split("\",")
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let value = value.trim_start_matches('"').trim_end_matches('"');
            Some((key.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

#[test]
fn sample_reads_histogram_series_by_label() {
    let page = "\
# TYPE inference_model_input_tokens histogram
inference_model_input_tokens_bucket{model_name=\"m\",target_model_name=\"m\",le=\"8\"} 1
inference_model_input_tokens_sum{model_name=\"other\",target_model_name=\"m\"} 5
inference_model_input_tokens_sum{model_name=\"m\",target_model_name=\"m\"} 42
inference_model_input_tokens_count{model_name=\"m\",target_model_name=\"m\"} 3
vllm:num_requests_waiting{model_name=\"m\"} 4
";
    let labels = [("model_name", "m"), ("target_model_name", "m")];
    assert_eq!(
        sample(page, "inference_model_input_tokens_sum", &labels),
        Some(42.0)
    );
    assert_eq!(
        sample(page, "inference_model_input_tokens_count", &labels),
        Some(3.0)
    );
    assert_eq!(sample(page, "inference_model_input_tokens", &labels), None);
    assert_eq!(sample(page, "vllm:num_requests_waiting", &[]), Some(4.0));
}
