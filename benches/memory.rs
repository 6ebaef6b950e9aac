//! How much memory does the EPP hold: idle with 100 endpoints, with a full prefix index,
//! and at the peak of 150 concurrent 220 KB requests?
//!
//! Not a criterion bench: it starts a real EPP in this process (`app::start`, plaintext,
//! 100 static endpoints that refuse connections, so scrapers run and fail fast), drives it
//! over ext_proc on loopback as Envoy does (FULL_DUPLEX_STREAMED, 16 KiB chunks), and
//! reads VmRSS / VmHWM from /proc/self/status. The figures include this bench's own
//! client (small: it keeps no responses). Knobs: MEMORY_ENDPOINTS (100), MEMORY_FILL
//! (distinct 16 KB prompts sent to fill the index; default: enough for every
//! endpoint's LRU, 100 × 31,250 entries / 256 blocks = 12,207 + 10%).
//! Run: `cargo bench --bench memory`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    HttpBody, HttpHeaders, ProcessingRequest, ProtocolConfiguration, processing_request,
};
use epp::app;
use epp::cli::{EndpointSource, Options};
use epp_core::config::{DEFAULT_CONFIG, EndpointPickerConfig};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

const CHUNK: usize = 16 << 10;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (VmRSS, VmHWM) in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn message(request: processing_request::Request) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(request),
        protocol_config: Some(ProtocolConfiguration {
            // FULL_DUPLEX_STREAMED both ways, as upstream's Envoy config.
            request_body_mode: 4,
            response_body_mode: 4,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One request over its own stream; true once the routing reply arrived.
async fn route(client: &mut ExternalProcessorClient<Channel>, body: &[u8]) -> bool {
    let (tx, rx) = mpsc::channel(64);
    let headers = HeaderMap {
        headers: [
            (":method", "POST"),
            (":path", "/v1/completions"),
            ("content-type", "application/json"),
        ]
        .iter()
        .map(|(k, v)| HeaderValue {
            key: (*k).into(),
            raw_value: v.as_bytes().to_vec(),
            ..Default::default()
        })
        .collect(),
    };
    let _ = tx
        .send(message(processing_request::Request::RequestHeaders(
            HttpHeaders {
                headers: Some(headers),
                end_of_stream: false,
                ..Default::default()
            },
        )))
        .await;
    let chunks: Vec<&[u8]> = body.chunks(CHUNK).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let _ = tx
            .send(message(processing_request::Request::RequestBody(
                HttpBody {
                    body: chunk.to_vec(),
                    end_of_stream: i + 1 == chunks.len(),
                    ..Default::default()
                },
            )))
            .await;
    }
    let Ok(response) = client.process(ReceiverStream::new(rx)).await else {
        return false;
    };
    let mut replies = response.into_inner();
    // The headers reply carries the destination; then the body comes back.
    matches!(replies.message().await, Ok(Some(_)))
}

fn body(prompt: &str) -> Vec<u8> {
    format!(r#"{{"model":"m","prompt":"{prompt}","max_tokens":16}}"#).into_bytes()
}

/// A 16 KB prompt unique to `n` from its first block on (so every block is a new entry).
fn distinct_prompt(n: usize, bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 32);
    while text.len() < bytes {
        text.push_str(&format!("req{n} tok{} ", text.len()));
    }
    text.truncate(bytes);
    text
}

#[tokio::main]
async fn main() {
    let endpoints = knob("MEMORY_ENDPOINTS", 100);
    let fill = knob("MEMORY_FILL", endpoints * 31_250 / 256 * 11 / 10);
    let (rss, _) = rss_mib();
    println!("bench process before the EPP: RSS {rss:.1} MiB");

    let mut options = Options::default();
    let addresses: Vec<SocketAddr> = (0..endpoints)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], 20_000 + i as u16)))
        .collect();
    options.endpoint_source = EndpointSource::Static(addresses.clone());
    options.endpoints = addresses;
    options.grpc_port = 0;
    options.grpc_health_port = 0;
    options.metrics_port = 0;
    options.secure_serving = false;
    let config = EndpointPickerConfig::from_text(DEFAULT_CONFIG).expect("default config");
    let running = app::start(&options, config).await.expect("EPP starts");
    let channel = Channel::from_shared(format!("http://{}", running.ext_proc_address))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = ExternalProcessorClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = rss_mib();
    println!("idle, {endpoints} endpoints scraped every 50ms: RSS {idle:.1} MiB");

    let started = Instant::now();
    let mut routed = 0;
    for n in 0..fill {
        routed += usize::from(route(&mut client, &body(&distinct_prompt(n, 16 << 10))).await);
    }
    let page = running.metrics.render();
    let gauge = |name: &str| {
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let entries = gauge("inference_extension_prefix_indexer_size");
    let index_bytes = gauge("inference_extension_prefix_indexer_memory_bytes");
    let (full, _) = rss_mib();
    println!(
        "after {routed}/{fill} distinct 16 KB prompts in {:.1}s: index {entries} entries, \
         {:.1} MiB ({:.1} B/entry); RSS {full:.1} MiB",
        started.elapsed().as_secs_f64(),
        index_bytes / (1 << 20) as f64,
        index_bytes / entries,
    );

    // Load: 150 concurrent 220 KB requests, five waves.
    let big = body(&distinct_prompt(usize::MAX, 225_280));
    for _ in 0..5 {
        let mut wave = tokio::task::JoinSet::new();
        for _ in 0..150 {
            let (mut client, big) = (client.clone(), big.clone());
            wave.spawn(async move { route(&mut client, &big).await });
        }
        while wave.join_next().await.is_some() {}
    }
    let (after, peak) = rss_mib();
    println!(
        "150 concurrent 220 KB requests (5 waves): peak RSS {peak:.1} MiB, after {after:.1} MiB"
    );
}
