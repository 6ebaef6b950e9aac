//! Router mode (`--proxy-port`) end to end in one process: the EPP serves the OpenAI API
//! itself and forwards to simulated vLLM servers (or to small test upstreams), with real
//! HTTP/1.1 and h2c clients and the `openai` Python SDK.

epp_testkit::loopback_epp!();

mod bind;
mod errors;
mod flow_control;
mod openai_sdk;
mod routing;
mod streaming;
mod traces;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

/// What `epp-sim` serves by default.
pub const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// The scorers of the default profile, as the simulated-endpoint protocol tests use.
pub const CONFIG: &str = "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n- type: prefix-cache-scorer\n";

/// An EPP with `count` simulated servers (started with `simulator_args`) and router mode on.
pub async fn simulated(
    count: usize,
    simulator_args: &str,
    adjust: impl FnOnce(&mut epp::cli::Options),
) -> TestEpp {
    simulated_with(count, simulator_args, CONFIG, adjust).await
}

/// [`simulated`] with another `EndpointPickerConfig`.
pub async fn simulated_with(
    count: usize,
    simulator_args: &str,
    config: &str,
    adjust: impl FnOnce(&mut epp::cli::Options),
) -> TestEpp {
    let args = simulator_args.to_owned();
    TestEpp::start_with(&[], config, move |o| {
        o.endpoint_source = epp::cli::EndpointSource::Simulated(count);
        o.simulate_endpoints = count;
        o.simulator_config = epp_sim::SimArgs::parse(&args.split_whitespace().collect::<Vec<_>>())
            .expect("simulator args")
            .config;
        router_mode(o);
        adjust(o);
    })
    .await
}

/// Turns router mode on, on a free loopback port.
pub fn router_mode(options: &mut epp::cli::Options) {
    options.proxy_port = epp_testkit::ports::free_port();
    options.bind_address = std::net::Ipv4Addr::LOCALHOST.into();
}

/// `http://<proxy>/<path>`.
pub fn url(epp: &TestEpp, path: &str) -> String {
    let address = epp.running.proxy_address.expect("router mode is on");
    format!("http://{address}{path}")
}

/// An HTTP/1.1 client.
pub fn http1() -> reqwest::Client {
    epp_net::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .build()
        .expect("client")
}

/// An HTTP/2 client without TLS (prior knowledge, h2c).
pub fn h2c() -> reqwest::Client {
    epp_net::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("client")
}

/// POSTs `body` to the router's `/v1/completions` over HTTP/1.1.
pub async fn post_completion(epp: &TestEpp, body: impl Into<reqwest::Body>) -> reqwest::Response {
    http1()
        .post(url(epp, "/v1/completions"))
        .body(body)
        .send()
        .await
        .expect("answered")
}

/// A completion request body.
pub fn completion(prompt: &str, max_tokens: u32, stream: bool) -> String {
    serde_json::json!({"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "stream": stream})
        .to_string()
}

/// A response header as text.
pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ascii header")
}

/// Waits (up to 10 s) until `condition` holds.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// A one-series value of the EPP's `/metrics` page (0 when absent).
pub fn metric(epp: &TestEpp, series: &str) -> f64 {
    epp_testkit::prometheus::sample(&epp.running.metrics.render(), series).unwrap_or(0.0)
}

/// A model server stand-in that answers every request with 200 and a JSON echo of what it
/// received: `{"headers": {name: value}, "body": "..."}`.
pub async fn echo_upstream() -> SocketAddr {
    serve_upstream(|request: hyper::Request<Incoming>| async move {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let headers: serde_json::Map<String, serde_json::Value> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into(),
                )
            })
            .collect();
        let echo = serde_json::json!({
            "path": parts.uri.path(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        });
        hyper::Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(echo.to_string())))
            .expect("response")
    })
    .await
}

/// A model server stand-in that closes every connection as soon as it has read the request.
pub async fn resetting_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            use tokio::io::AsyncReadExt as _;
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            drop(stream);
        }
    });
    address
}

async fn serve_upstream<F, R>(answer: F) -> SocketAddr
where
    F: Fn(hyper::Request<Incoming>) -> R + Clone + Send + Sync + 'static,
    R: Future<Output = hyper::Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let answer = answer.clone();
                    async move { Ok::<_, Infallible>(answer(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}
