//! Flow control over ext_proc: while the pool is saturated a request waits in the EPP with
//! its stream open, leaves in priority order as the pool frees up, gives up its place when
//! the gateway goes away, and is refused with 429 and a reason when its time runs out.

use std::time::Duration;

use epp_extproc::BodyMode;
use epp_testkit::messages::*;
use epp_testkit::{ExtProcStream, Next, metrics, prometheus};

use crate::TestEpp;

const POD: &str = "10.0.0.1:8000";

/// One endpoint that is full at one in-flight request; requests wait up to `ttl`.
fn config(ttl: &str) -> String {
    format!(
        "apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
saturationDetector:
  type: concurrency
  maxConcurrency: 1
flowControl:
  requestTTL: {ttl}
"
    )
}

async fn epp(ttl: &str) -> TestEpp {
    let epp = TestEpp::start(&[POD], &config(ttl)).await;
    epp.set_metrics(POD, metrics(0, 0.1, &[]));
    epp.set_objective("chat", 10);
    epp.set_objective("batch", 0);
    epp
}

/// Sends a FULL_DUPLEX request naming `objective`, without waiting for replies.
async fn send(epp: &TestEpp, objective: &str) -> ExtProcStream {
    let mut stream = epp.stream().await;
    let mode = BodyMode::FullDuplexStreamed;
    let headers = request_headers(&[("x-gateway-inference-objective", objective)], false);
    stream.send(with_modes(headers, mode, mode)).await;
    stream
        .send(request_body(&completion_body("m", objective), true))
        .await;
    stream
}

/// The routing replies of a request that was let through: its destination.
async fn routed(stream: &mut ExtProcStream) -> String {
    let headers = stream.reply().await;
    assert_eq!(kind(&headers), "request_headers", "{headers:?}");
    let body = stream.reply().await;
    assert_eq!(kind(&body), "request_body");
    destination(&headers)
}

/// Ends a routed request's response, freeing its endpoint.
async fn finish(stream: &mut ExtProcStream) {
    stream
        .exchange(response_headers(&[(":status", "200")], true), 1)
        .await;
    stream.close_send();
    assert!(matches!(stream.end().await, Next::Closed));
}

fn sample(epp: &TestEpp, series: &str) -> Option<f64> {
    prometheus::sample(&epp.running.metrics.render(), series)
}

async fn until_sample(epp: &TestEpp, series: &str, value: f64) {
    for _ in 0..200 {
        if sample(epp, series) == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{series} stays at {:?}, not {value}:\n{}",
        sample(epp, series),
        epp.running.metrics.render()
    );
}

#[tokio::test]
async fn waiting_requests_leave_by_priority_as_the_pool_frees_up() {
    let epp = epp("30s").await;
    let mut first = send(&epp, "batch").await;
    assert_eq!(routed(&mut first).await, POD);

    // The endpoint is full: both wait, their streams open and silent.
    let mut batch = send(&epp, "batch").await;
    batch.expect_silence().await;
    let mut chat = send(&epp, "chat").await;
    chat.expect_silence().await;
    until_sample(
        &epp,
        "inference_extension_flow_control_queue_size{priority=\"10\"}",
        1.0,
    )
    .await;
    assert_eq!(
        sample(
            &epp,
            "inference_extension_flow_control_queue_size{priority=\"0\"}"
        ),
        Some(1.0)
    );

    // The first response ends: the chat request (higher band) goes first, though it came
    // later; batch waits for the next free slot.
    finish(&mut first).await;
    assert_eq!(routed(&mut chat).await, POD);
    batch.expect_silence().await;
    finish(&mut chat).await;
    assert_eq!(routed(&mut batch).await, POD);
    finish(&mut batch).await;
    until_sample(
        &epp,
        "inference_extension_flow_control_dispatches_total{priority=\"10\"}",
        1.0,
    )
    .await;
    assert_eq!(
        sample(
            &epp,
            "inference_extension_flow_control_dispatches_total{priority=\"0\"}"
        ),
        Some(1.0)
    );
    let page = epp.running.metrics.render();
    assert!(
        page.contains(
            "inference_extension_request_phase_duration_seconds_count{phase=\"queue\"} 2"
        ),
        "{page}"
    );
}

#[tokio::test]
async fn a_gateway_that_goes_away_takes_its_request_out_of_the_queue() {
    let epp = epp("30s").await;
    let mut first = send(&epp, "batch").await;
    routed(&mut first).await;
    let gone = send(&epp, "batch").await;
    let mut stays = send(&epp, "batch").await;
    until_sample(
        &epp,
        "inference_extension_flow_control_queue_size{priority=\"0\"}",
        2.0,
    )
    .await;
    drop(gone);
    until_sample(
        &epp,
        "inference_extension_flow_control_queue_size{priority=\"0\"}",
        1.0,
    )
    .await;
    // The slot it would have taken goes to the next one.
    finish(&mut first).await;
    assert_eq!(routed(&mut stays).await, POD);
    finish(&mut stays).await;
    assert_eq!(
        sample(
            &epp,
            "inference_extension_flow_control_queue_size{priority=\"0\"}"
        ),
        None
    );
}

#[tokio::test]
async fn a_request_that_waits_too_long_gets_429_with_the_reason() {
    let epp = epp("150ms").await;
    let mut first = send(&epp, "batch").await;
    routed(&mut first).await;
    let mut late = send(&epp, "chat").await;
    let reply = late.reply().await;
    let (status, body) = immediate(&reply).expect("an immediate response");
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("flow control: request expired"), "{body}");
    assert_eq!(
        immediate_header(&reply, "x-gateway-inference-rejection-reason").as_deref(),
        Some("expired"),
        "{reply:?}"
    );
    assert_eq!(
        sample(
            &epp,
            "inference_extension_flow_control_rejections_total{priority=\"10\",reason=\"expired\"}"
        ),
        Some(1.0)
    );
    finish(&mut first).await;
}

/// Routed at headers time (STREAMED body mode): held at its headers, with the gateway asked
/// to wait out the TTL (`override_message_timeout`), then routed by its headers reply.
#[tokio::test]
async fn requests_routed_at_headers_are_held_too() {
    let epp = epp("30s").await;
    let mut first = send(&epp, "batch").await;
    routed(&mut first).await;
    let mut held = epp.stream().await;
    let mode = BodyMode::Streamed;
    let headers = request_headers(&[("x-gateway-inference-objective", "chat")], false);
    let extend = held
        .exchange(with_modes(headers, mode, mode), 1)
        .await
        .remove(0);
    let timeout = extend.override_message_timeout.expect("asks for more time");
    assert_eq!((timeout.seconds, timeout.nanos), (31, 0));
    held.expect_silence().await;
    finish(&mut first).await;
    let reply = held.reply().await;
    assert_eq!(kind(&reply), "request_headers");
    assert_eq!(destination(&reply), POD);
}
