//! The `epp` binary with `OTEL_EXPORTER_OTLP_ENDPOINT` set: tracing turns on by itself, and
//! the spans still queued at SIGTERM reach the collector before the process exits.
//! `--tracing=false` keeps it off whatever the environment says.

use std::time::Duration;

use epp_testkit::otlp::OtlpCollector;
use epp_testkit::stream::client;
use epp_testkit::{ExtProcStream, REPLY_TIMEOUT};

use super::*;

const TRACE_ID: &str = "5bf92f3577b34da6a3ce929d0e0e4736";

/// One whole exchange (request, response) as a child of `TRACE_ID`.
async fn traced_exchange(epp: &RunningBinary) -> String {
    let mut stream = ExtProcStream::open(client(epp.ext_proc).await).await;
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    stream
        .send(with_modes(
            request_headers(&[("traceparent", &traceparent)], false),
            BodyMode::FullDuplexStreamed,
            BodyMode::FullDuplexStreamed,
        ))
        .await;
    let replies = stream
        .exchange(request_body(&completion_body("m", "hello"), true), 2)
        .await;
    stream
        .exchange(response_headers(&[(":status", "200")], false), 1)
        .await;
    stream.exchange(response_body(b"{}", true), 1).await;
    stream.close_send();
    stream.end().await;
    destination(&replies[0])
}

#[tokio::test]
async fn an_endpoint_variable_turns_tracing_on_and_sigterm_flushes_the_queue() {
    let collector = OtlpCollector::start().await;
    let endpoint = collector.endpoint();
    let mut epp = RunningBinary::start_with_env(
        &["--secure-serving=false"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SERVICE_NAME", "epp-under-test"),
            // Nothing is sent on a timer within the test: only the shutdown flush sends.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ],
    );
    epp.wait_serving().await;
    let destination = tokio::time::timeout(REPLY_TIMEOUT, traced_exchange(&epp))
        .await
        .expect("in time");
    assert!(destination.starts_with("127.0.0.1:1800"), "{destination}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(collector.exports(), 0, "spans wait for their batch");

    let (code, logs) = epp.terminate().await;
    assert_eq!(code, Some(0), "{logs}");
    let spans = collector.spans();
    assert_eq!(spans.len(), 5, "{spans:#?}");
    assert!(spans.iter().all(|s| s.trace_id == TRACE_ID));
    assert!(
        spans
            .iter()
            .all(|s| s.service_name.as_deref() == Some("epp-under-test"))
    );
    assert!(
        logs.contains("exporting request traces over OTLP/gRPC"),
        "{logs}"
    );
}

#[tokio::test]
async fn tracing_false_exports_nothing_even_with_an_endpoint() {
    let collector = OtlpCollector::start().await;
    let endpoint = collector.endpoint();
    let mut epp = RunningBinary::start_with_env(
        &["--secure-serving=false", "--tracing=false"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "10"),
        ],
    );
    epp.wait_serving().await;
    tokio::time::timeout(REPLY_TIMEOUT, traced_exchange(&epp))
        .await
        .expect("in time");
    let (code, logs) = epp.terminate().await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(collector.exports(), 0);
    assert!(!logs.contains("exporting request traces"), "{logs}");
}

#[test]
fn a_bad_sampler_is_one_startup_error_naming_it() {
    let output = Command::new(EPP)
        .args(["--endpoints", "127.0.0.1:8000", "--tracing"])
        .env("OTEL_TRACES_SAMPLER", "half")
        .output()
        .expect("run epp");
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("tracing: environment variable OTEL_TRACES_SAMPLER=\"half\""),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}
