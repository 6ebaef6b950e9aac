//! How request bodies are buffered: one buffer however the body is chunked, replayed in
//! large chunks, and the process-wide budget for buffered bytes (`--max-buffered-request-bytes`).

use epp_extproc::BodyMode;
use epp_testkit::messages::*;
use epp_testkit::prometheus;
use epp_testkit::{ExtProcStream, HERMETIC_CONFIG, Next, metrics};

use crate::TestEpp;

const PODS: [&str; 2] = ["10.0.0.1:8000", "10.0.0.2:8000"];

async fn epp_with_budget(budget: u64) -> TestEpp {
    let epp = TestEpp::start_with(&PODS, HERMETIC_CONFIG, |o| {
        o.max_buffered_request_bytes = budget;
    })
    .await;
    for pod in PODS {
        epp.set_metrics(pod, metrics(0, 0.1, &[]));
    }
    epp
}

/// The value of an unlabelled sample on the EPP's metrics page.
fn sample(epp: &TestEpp, name: &str) -> f64 {
    let page = epp.running.metrics.render();
    prometheus::sample(&page, name).unwrap_or_else(|| panic!("{name} not on the page:\n{page}"))
}

/// Waits until the buffered-bytes gauge reads `bytes` (streams end asynchronously).
async fn assert_buffered(epp: &TestEpp, bytes: f64) {
    for _ in 0..200 {
        if sample(epp, "inference_extension_buffered_request_bytes") == bytes {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "buffered bytes stay at {}, expected {bytes}",
        sample(epp, "inference_extension_buffered_request_bytes")
    );
}

async fn full_duplex_stream(epp: &TestEpp) -> ExtProcStream {
    let mut stream = epp.stream().await;
    stream.start_full_duplex().await;
    stream
}

#[tokio::test]
async fn one_byte_chunks_are_replayed_in_62000_byte_chunks() {
    let epp = epp_with_budget(1 << 30).await;
    let body = completion_body("m", &"ab".repeat(65_000));
    let mut stream = full_duplex_stream(&epp).await;
    // 130,062 messages of one byte each.
    stream.send_body_byte_by_byte(&body).await;
    assert_eq!(kind(&stream.reply().await), "request_headers");
    // ceil(130,062 / 62,000) = 3 replies, not one per chunk.
    let mut replayed = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let (chunk, end) = streamed(&stream.reply().await).expect("a streamed chunk");
        sizes.push(chunk.len());
        replayed.extend_from_slice(&chunk);
        if end {
            break;
        }
    }
    assert_eq!(sizes, [62_000, 62_000, body.len() - 124_000]);
    assert!(replayed == body, "the replay is the body, byte for byte");
    // The routed body no longer counts against the budget.
    assert_buffered(&epp, 0.0).await;
}

#[tokio::test]
async fn budget_is_shared_by_streams_and_exact_at_the_limit() {
    let budget = 10_000;
    let epp = epp_with_budget(budget).await;
    // Stream A holds 9,000 bytes of an unfinished body.
    let mut a = full_duplex_stream(&epp).await;
    a.send(request_body(&[b' '; 9_000], false)).await;
    a.expect_silence().await;
    assert_buffered(&epp, 9_000.0).await;
    // Stream B may buffer the last 1,000 bytes: exactly at the limit.
    let mut b = full_duplex_stream(&epp).await;
    b.send(request_body(&[b' '; 1_000], false)).await;
    b.expect_silence().await;
    assert_buffered(&epp, 10_000.0).await;
    // One byte more is refused with 503, not buffered.
    b.send(request_body(b" ", false)).await;
    let reply = b.reply().await;
    assert_eq!(
        immediate(&reply),
        Some((
            503,
            "inference gateway: ServiceUnavailable - request body buffer budget exhausted"
                .to_owned()
        ))
    );
    assert!(matches!(b.end().await, Next::Closed));
    assert_eq!(
        sample(&epp, "inference_extension_buffer_budget_rejections_total"),
        1.0
    );
    assert_eq!(
        sample(
            &epp,
            "inference_model_request_error_total{error_code=\"ServiceUnavailable\",model_name=\"\",target_model_name=\"\"}"
        ),
        1.0
    );
    // B's bytes came back when it was refused; A's come back when its client resets.
    assert_buffered(&epp, 9_000.0).await;
    drop(a);
    assert_buffered(&epp, 0.0).await;
    // The whole budget is free again: a body of exactly the budget is routed.
    let mut c = full_duplex_stream(&epp).await;
    let body = completion_body(
        "m",
        &"p".repeat(budget as usize - completion_body("m", "").len()),
    );
    assert_eq!(body.len() as u64, budget);
    let replies = c.exchange(request_body(&body, true), 2).await;
    assert_eq!(kind(&replies[0]), "request_headers");
    assert_eq!(streamed(&replies[1]), Some((body, true)));
    assert_buffered(&epp, 0.0).await;
}

#[tokio::test]
async fn budget_applies_to_buffered_bodies() {
    let epp = epp_with_budget(100).await;
    let mut stream = epp.stream().await;
    stream
        .exchange(
            with_modes(
                request_headers(&[], false),
                BodyMode::Buffered,
                BodyMode::Buffered,
            ),
            1,
        )
        .await;
    let reply = stream
        .exchange(
            request_body(&completion_body("m", &"p".repeat(100)), true),
            1,
        )
        .await
        .remove(0);
    assert_eq!(immediate(&reply).map(|r| r.0), Some(503));
    assert_buffered(&epp, 0.0).await;
}
