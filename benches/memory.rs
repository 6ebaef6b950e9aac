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

use std::time::{Duration, Instant};

use epp_core::config::DEFAULT_CONFIG;
use epp_extproc::BodyMode;
use epp_testkit::env::knob;
use epp_testkit::messages::{request_body_chunks, request_headers, with_modes};
use epp_testkit::procfs::status_kib;
use epp_testkit::prometheus::sample;
use epp_testkit::stream::ExtProcClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

epp_testkit::loopback_epp!();

const CHUNK: usize = 16 << 10;

/// (VmRSS, VmHWM) in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| status_kib(&status, name).map_or(f64::NAN, |kb| kb as f64 / 1024.0);
    (field("VmRSS"), field("VmHWM"))
}

/// One request over its own stream; true once the routing reply arrived.
async fn route(client: &mut ExtProcClient, body: &[u8]) -> bool {
    let (tx, rx) = mpsc::channel(64);
    let headers = request_headers(
        &[
            (":method", "POST"),
            (":path", "/v1/completions"),
            ("content-type", "application/json"),
        ],
        false,
    );
    // FULL_DUPLEX_STREAMED both ways, as upstream's Envoy config.
    let mode = BodyMode::FullDuplexStreamed;
    let messages =
        std::iter::once(with_modes(headers, mode, mode)).chain(request_body_chunks(body, CHUNK));
    for message in messages {
        let _ = tx.send(message).await;
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
    let endpoints: usize = knob("MEMORY_ENDPOINTS", 100);
    let fill: usize = knob("MEMORY_FILL", endpoints * 31_250 / 256 * 11 / 10);
    let (rss, _) = rss_mib();
    println!("bench process before the EPP: RSS {rss:.1} MiB");

    let addresses: Vec<String> = (0..endpoints)
        .map(|i| format!("127.0.0.1:{}", 20_000 + i))
        .collect();
    let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let epp = TestEpp::start(&addresses, DEFAULT_CONFIG).await;
    let mut client = epp
        .client()
        .await
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
    let page = epp.running.metrics.render();
    let gauge = |name: &str| sample(&page, name).unwrap_or(f64::NAN);
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
