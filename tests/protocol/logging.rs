//! Logs of the request path: JSON lines carry `x-request-id`; prompts never appear at
//! the default verbosity.

use epp::cli::{LogEncoder, TimeEncoding};
use epp_core::telemetry::logging::{CapturedLogs, LogSettings, layer_for_writer};
use epp_extproc::BodyMode;
use epp_testkit::HERMETIC_CONFIG;
use epp_testkit::driver::{Outcome, Request, send_request};
use epp_testkit::messages::*;
use tracing_subscriber::Registry;
use tracing_subscriber::layer::SubscriberExt;

use crate::TestEpp;

fn subscriber(verbosity: i32, logs: &CapturedLogs) -> impl tracing::Subscriber + Send + Sync {
    let settings = LogSettings {
        verbosity,
        encoder: LogEncoder::Json,
        time_encoding: TimeEncoding::Rfc3339,
        directives: None,
    };
    Registry::default().with(layer_for_writer(&settings, logs.clone()).expect("layer"))
}

/// Runs `requests` through an EPP and returns the log lines, parsed.
async fn logged(verbosity: i32, requests: Vec<Request<'static>>) -> Vec<serde_json::Value> {
    logged_text(verbosity, requests)
        .await
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Runs `requests` through an EPP (on this test's single thread, so the thread-local
/// subscriber sees the stream tasks) and returns the log lines as written.
async fn logged_text(verbosity: i32, requests: Vec<Request<'static>>) -> Vec<String> {
    let logs = CapturedLogs::new();
    let _guard = tracing::subscriber::set_default(subscriber(verbosity, &logs));
    // No endpoints: every request is rejected, which is logged.
    let epp = TestEpp::start(&[], HERMETIC_CONFIG).await;
    for request in &requests {
        let mut stream = epp.stream().await;
        let outcome = send_request(&mut stream, BodyMode::FullDuplexStreamed, request).await;
        assert!(matches!(outcome, Outcome::Rejected(..)), "{outcome:?}");
    }
    drop(epp);
    logs.lines()
}

#[tokio::test]
async fn request_logs_carry_the_request_id() {
    let request = Request::new(&[("x-request-id", "req-42")], completion_body("m", "p"));
    let lines = logged(2, vec![request]).await;
    let line = lines
        .iter()
        .find(|l| l["msg"] == "request not routed")
        .unwrap_or_else(|| panic!("no rejection logged: {lines:?}"));
    assert_eq!(line["x-request-id"], "req-42");
    assert_eq!(line["level"], "info");
    let logger = line["logger"].as_str().unwrap_or_default();
    assert!(
        logger.starts_with("extproc"),
        "logger named after the module: {logger}"
    );
    assert_eq!(line["status"], 503);
    assert!(line["ts"].is_string(), "rfc3339 timestamp: {line}");
}

#[tokio::test]
async fn debug_lines_of_a_request_carry_its_id_once() {
    let request = Request::new(&[("x-request-id", "req-7")], b"{not json".to_vec());
    let lines = logged_text(4, vec![request]).await;
    let text = lines
        .iter()
        .find(|l| l.contains(r#""msg":"cannot parse the request body""#))
        .unwrap_or_else(|| panic!("no parse failure logged at --v 4: {lines:?}"));
    let line: serde_json::Value = serde_json::from_str(text).expect("JSON line");
    assert_eq!(line["x-request-id"], "req-7");
    assert_eq!(line["level"], "debug");
    // One key in the written line, not a span field and an event field both.
    assert_eq!(text.matches("x-request-id").count(), 1, "{text}");
}

#[tokio::test]
async fn prompts_and_bodies_are_not_logged_by_default() {
    let secret = "SECRET-PROMPT-TEXT";
    let requests = [
        Request::new(&[], completion_body("m", secret)),
        Request::new(&[], format!("{{not json {secret}").into_bytes()),
    ];
    for verbosity in [2, 3] {
        let lines = logged(
            verbosity,
            requests
                .iter()
                .map(|r| Request::chunked(&[], r.chunks.clone()))
                .collect(),
        )
        .await;
        assert!(!lines.is_empty());
        let text = serde_json::to_string(&lines).expect("json");
        assert!(
            !text.contains(secret),
            "verbosity {verbosity} leaked the prompt: {text}"
        );
    }
}
