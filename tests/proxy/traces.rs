//! `--tracing` in router mode: one request span per exchange, a child of the client's
//! `traceparent`, with the phase spans, exported over real OTLP; the model server gets the
//! request span's `traceparent`.

use std::time::Duration;

use epp_testkit::otlp::OtlpCollector;
use epp_trace::{BatchSettings, Sampling, TraceSettings, keys, names};

use crate::{CONFIG, MODEL, TestEpp, completion, echo_upstream, http1, router_mode, url};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_request_exports_its_span_tree_and_passes_the_context_on() {
    let collector = OtlpCollector::start().await;
    let upstream = echo_upstream().await.to_string();
    let settings = TraceSettings {
        endpoint: collector.endpoint(),
        sampling: Sampling::ParentBasedAlwaysOn,
        batch: BatchSettings {
            delay: Duration::from_millis(50),
            ..BatchSettings::default()
        },
        ..TraceSettings::default()
    };
    let epp = TestEpp::start_with(&[upstream.as_str()], CONFIG, move |o| {
        router_mode(o);
        o.tracing = true;
        o.trace_settings = Some(settings);
    })
    .await;
    let response = http1()
        .post(url(&epp, "/v1/completions"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01"))
        .header("x-request-id", "traced-1")
        .body(completion("a secret prompt", 1, false))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");

    let spans = collector.wait_for_spans(5, Duration::from_secs(10)).await;
    let request = spans
        .iter()
        .find(|s| s.name == names::REQUEST)
        .unwrap_or_else(|| panic!("no request span: {spans:#?}"));
    assert_eq!(request.trace_id, TRACE_ID);
    assert_eq!(request.parent_span_id, PARENT_SPAN_ID);
    assert_eq!(request.attribute(keys::REQUEST_ID), Some("traced-1"));
    assert_eq!(request.attribute(keys::MODEL), Some(MODEL));
    assert_eq!(request.attribute(keys::STATUS_CODE), Some("200"));
    // The model server was handed the request span as its parent.
    assert_eq!(
        echo["headers"]["traceparent"],
        format!("00-{TRACE_ID}-{}-01", request.span_id)
    );
    let mut children: Vec<_> = spans.iter().filter(|s| s.name != names::REQUEST).collect();
    children.sort_by_key(|s| s.start_unix_nano);
    let order: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        order,
        [
            names::BODY_WAIT,
            names::PARSE,
            names::SCHEDULE,
            names::RESPOND
        ]
    );
    for child in &children {
        assert_eq!(child.parent_span_id, request.span_id, "{}", child.name);
        assert!(
            request.start_unix_nano <= child.start_unix_nano
                && child.end_unix_nano <= request.end_unix_nano,
            "{} lies outside the request span",
            child.name
        );
    }
    let schedule = children
        .iter()
        .find(|s| s.name == names::SCHEDULE)
        .expect("schedule");
    assert_eq!(schedule.attribute(keys::ENDPOINT), Some(upstream.as_str()));
    for span in &spans {
        for (key, value) in &span.attributes {
            assert!(
                !value.contains("secret"),
                "{} {key} holds prompt text",
                span.name
            );
        }
    }
}
