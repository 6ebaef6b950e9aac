//! `--tracing`: each sampled ext_proc stream exports one request span, a child of the
//! gateway's `traceparent`, with child spans for its phases, to a collector that decodes
//! the real OTLP/gRPC protocol; the routing reply carries the request span's
//! `traceparent` to the model server. Unsampled requests export nothing, and a full
//! export queue drops spans and counts them.

use std::time::Duration;

use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse;
use epp_extproc::BodyMode;
use epp_testkit::messages::*;
use epp_testkit::metrics;
use epp_testkit::otlp::{OtlpCollector, ReceivedSpan};
use epp_testkit::prometheus::sample;
use epp_trace::{BatchSettings, Sampling, TraceSettings, keys, names};

use crate::TestEpp;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";
const PROMPT: &str = "Describe the migratory habits of the arctic tern in haiku form";
const WAIT: Duration = Duration::from_secs(10);

fn settings(collector: &OtlpCollector, sampling: Sampling) -> TraceSettings {
    TraceSettings {
        endpoint: collector.endpoint(),
        sampling,
        batch: BatchSettings {
            delay: Duration::from_millis(50),
            ..BatchSettings::default()
        },
        ..TraceSettings::default()
    }
}

async fn traced_epp(settings: TraceSettings) -> TestEpp {
    let epp = TestEpp::start_with(
        &["10.0.0.1:8000", "10.0.0.2:8000"],
        epp_testkit::HERMETIC_CONFIG,
        move |o| {
            o.tracing = true;
            o.trace_settings = Some(settings);
        },
    )
    .await;
    epp.set_metrics("10.0.0.1:8000", metrics(0, 0.1, &[]));
    epp.set_metrics("10.0.0.2:8000", metrics(9, 0.9, &[]));
    epp
}

/// One whole FULL_DUPLEX exchange with `headers`; returns the routing headers reply.
async fn exchange(epp: &TestEpp, headers: &[(&str, &str)]) -> ProcessingResponse {
    let mut stream = epp.stream().await;
    stream
        .send(with_modes(
            request_headers(headers, false),
            BodyMode::FullDuplexStreamed,
            BodyMode::FullDuplexStreamed,
        ))
        .await;
    let replies = stream
        .exchange(
            request_body(&completion_body("food-review", PROMPT), true),
            2,
        )
        .await;
    let routing = replies[0].clone();
    if immediate(&routing).is_some() {
        stream.close_send();
        stream.end().await;
        return routing;
    }
    stream
        .exchange(response_headers(&[(":status", "200")], false), 1)
        .await;
    stream.exchange(response_body(b"{}", true), 1).await;
    stream.close_send();
    stream.end().await;
    routing
}

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn no_attribute_holds_the_prompt(spans: &[ReceivedSpan]) {
    for span in spans {
        for (key, value) in &span.attributes {
            for word in ["migratory", "arctic", "haiku"] {
                assert!(
                    !value.contains(word) && !key.contains(word),
                    "{} attribute {key}={value:?} holds prompt text",
                    span.name
                );
            }
        }
    }
}

#[tokio::test]
async fn a_sampled_request_exports_its_span_tree_under_the_gateway_span() {
    let collector = OtlpCollector::start().await;
    let epp = traced_epp(settings(&collector, Sampling::ParentBasedAlwaysOn)).await;
    epp.set_objective("critical", 1);
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    let routing = exchange(
        &epp,
        &[
            ("traceparent", &traceparent),
            ("tracestate", "vendor=opaque"),
            ("x-request-id", "trace-req-1"),
            ("x-gateway-inference-objective", "critical"),
            ("x-gateway-model-name-rewrite", "food-review-v2"),
        ],
    )
    .await;
    assert_eq!(destination(&routing), "10.0.0.1:8000");

    let spans = collector.wait_for_spans(5, WAIT).await;
    let requests = named(&spans, names::REQUEST);
    assert_eq!(requests.len(), 1, "{spans:#?}");
    let request = requests[0];
    assert_eq!(request.trace_id, TRACE_ID);
    assert_eq!(request.parent_span_id, PARENT_SPAN_ID);
    assert_eq!(request.kind, 2, "a SERVER span");
    assert_eq!(request.service_name.as_deref(), Some("epp"));
    assert_eq!(request.attribute(keys::REQUEST_ID), Some("trace-req-1"));
    assert_eq!(request.attribute(keys::MODEL), Some("food-review"));
    assert_eq!(
        request.attribute(keys::TARGET_MODEL),
        Some("food-review-v2")
    );
    assert_eq!(request.attribute(keys::OBJECTIVE), Some("critical"));
    assert_eq!(request.attribute(keys::STATUS_CODE), Some("200"));
    assert_eq!(request.attribute(keys::RESULT), Some("routed"));
    assert!(request.start_unix_nano <= request.end_unix_nano);

    // The model server's span will be a child of the request span.
    assert_eq!(
        set_header(&routing, "traceparent"),
        Some(format!("00-{TRACE_ID}-{}-01", request.span_id))
    );

    let mut children: Vec<&ReceivedSpan> =
        spans.iter().filter(|s| s.name != names::REQUEST).collect();
    children.sort_by_key(|s| s.start_unix_nano);
    let order: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        order,
        [
            names::BODY_WAIT,
            names::PARSE,
            names::SCHEDULE,
            names::RESPOND
        ],
        "no tokenize span without a token source"
    );
    for pair in children.windows(2) {
        assert!(
            pair[0].end_unix_nano <= pair[1].start_unix_nano,
            "{} ends after {} starts",
            pair[0].name,
            pair[1].name
        );
    }
    for child in &children {
        assert_eq!(child.trace_id, TRACE_ID, "{}", child.name);
        assert_eq!(child.parent_span_id, request.span_id, "{}", child.name);
        assert_eq!(child.kind, 1, "{} is INTERNAL", child.name);
        assert!(
            request.start_unix_nano <= child.start_unix_nano
                && child.start_unix_nano <= child.end_unix_nano
                && child.end_unix_nano <= request.end_unix_nano,
            "{} lies outside the request span",
            child.name
        );
    }
    let schedule = named(&spans, names::SCHEDULE)[0];
    assert_eq!(schedule.attribute(keys::PROFILES), Some("default"));
    assert_eq!(schedule.attribute(keys::PRIMARY_PROFILE), Some("default"));
    assert_eq!(schedule.attribute(keys::ENDPOINT), Some("10.0.0.1:8000"));
    assert_eq!(schedule.attribute(keys::PICK_REASON), Some("scheduled"));
    no_attribute_holds_the_prompt(&spans);

    assert!(epp.running.flush_traces(WAIT).await);
    let counts = epp.running.trace_counts().expect("tracing on");
    assert_eq!(
        (counts.exported(), counts.dropped(), counts.failed()),
        (5, 0, 0)
    );
    let page = epp.running.metrics.render();
    assert_eq!(
        sample(
            &page,
            "inference_extension_trace_spans_total{outcome=\"exported\"}"
        ),
        Some(5.0)
    );
}

#[tokio::test]
async fn a_request_without_a_traceparent_starts_a_trace_and_a_rejected_one_keeps_its_status() {
    let collector = OtlpCollector::start().await;
    let epp = traced_epp(settings(&collector, Sampling::ParentBasedAlwaysOn)).await;
    let routing = exchange(&epp, &[("x-request-id", "root-1")]).await;
    let spans = collector.wait_for_spans(5, WAIT).await;
    let request = named(&spans, names::REQUEST)[0];
    assert_eq!(request.parent_span_id, "", "a root span");
    assert_eq!(
        set_header(&routing, "traceparent"),
        Some(format!("00-{}-{}-01", request.trace_id, request.span_id))
    );

    // A subset hint naming no endpoint: 503 from the EPP, the schedule span says why.
    let mut stream = epp.stream().await;
    let headers = with_subset(
        with_modes(
            request_headers(&[("x-request-id", "rejected-1")], false),
            BodyMode::FullDuplexStreamed,
            BodyMode::FullDuplexStreamed,
        ),
        &["10.9.9.9:8000"],
    );
    stream.send(headers).await;
    let reply = stream
        .exchange(
            request_body(&completion_body("food-review", PROMPT), true),
            1,
        )
        .await;
    assert_eq!(immediate(&reply[0]).map(|(status, _)| status), Some(503));
    stream.close_send();
    stream.end().await;
    let spans = collector.wait_for_spans(5 + 4, WAIT).await;
    let rejected = spans
        .iter()
        .find(|s| s.name == names::REQUEST && s.attribute(keys::REQUEST_ID) == Some("rejected-1"))
        .expect("the rejected request's span");
    assert_eq!(rejected.attribute(keys::STATUS_CODE), Some("503"));
    assert_eq!(rejected.attribute(keys::RESULT), Some("rejected"));
    assert_eq!(rejected.status_code, 2, "5xx is an error");
    let schedule = spans
        .iter()
        .find(|s| s.name == names::SCHEDULE && s.parent_span_id == rejected.span_id)
        .expect("the rejected request's schedule span");
    assert!(
        schedule.attribute(keys::PICK_ERROR).is_some(),
        "{schedule:?}"
    );
    assert_eq!(schedule.attribute(keys::ENDPOINT), None);
    assert!(
        !spans
            .iter()
            .any(|s| s.name == names::RESPOND && s.parent_span_id == rejected.span_id),
        "nothing was routed, so nothing responded"
    );
    no_attribute_holds_the_prompt(&spans);
}

#[tokio::test]
async fn unsampled_requests_export_nothing() {
    // The gateway decided not to sample (flags 00): the parent-based sampler follows it.
    let collector = OtlpCollector::start().await;
    let epp = traced_epp(settings(&collector, Sampling::ParentBasedAlwaysOn)).await;
    let unsampled = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-00");
    let routing = exchange(&epp, &[("traceparent", &unsampled)]).await;
    assert_eq!(
        set_header(&routing, "traceparent"),
        None,
        "the gateway's header stays"
    );
    // A sampled request after it: once its spans are in, the first one's would be too.
    let sampled_trace = "0af7651916cd43dd8448eb211c80319c";
    let sampled = format!("00-{sampled_trace}-{PARENT_SPAN_ID}-01");
    exchange(&epp, &[("traceparent", &sampled)]).await;
    collector.wait_for_spans(5, WAIT).await;
    assert!(epp.running.flush_traces(WAIT).await);
    let spans = collector.spans();
    assert!(
        spans.iter().all(|s| s.trace_id == sampled_trace),
        "an unsampled request exported spans: {spans:#?}"
    );
    assert_eq!(spans.len(), 5);

    // Ratio 0 without a parent-based sampler: nothing at all, whatever the caller says.
    let collector = OtlpCollector::start().await;
    let epp = traced_epp(settings(&collector, Sampling::TraceIdRatio(0.0))).await;
    for headers in [vec![], vec![("traceparent", sampled.as_str())]] {
        let routing = exchange(&epp, &headers).await;
        assert_eq!(destination(&routing), "10.0.0.1:8000");
        assert_eq!(set_header(&routing, "traceparent"), None);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(epp.running.flush_traces(WAIT).await);
    let counts = epp.running.trace_counts().expect("tracing on");
    assert_eq!((counts.exported(), counts.dropped()), (0, 0));
    assert_eq!(collector.spans(), Vec::new());
}

#[tokio::test]
async fn tracing_off_sets_no_traceparent_and_starts_no_exporter() {
    let epp = TestEpp::start(&["10.0.0.1:8000"], epp_testkit::HERMETIC_CONFIG).await;
    epp.set_metrics("10.0.0.1:8000", metrics(0, 0.1, &[]));
    let sampled = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    let routing = exchange(&epp, &[("traceparent", &sampled)]).await;
    assert_eq!(destination(&routing), "10.0.0.1:8000");
    assert_eq!(set_header(&routing, "traceparent"), None);
    assert!(epp.running.trace_counts().is_none());
    let page = epp.running.metrics.render();
    assert!(!page.contains("inference_extension_trace_spans_total"));
}

#[tokio::test]
async fn a_full_export_queue_drops_spans_and_counts_them() {
    let collector = OtlpCollector::start().await;
    collector.hold(true);
    let batch = BatchSettings {
        max_queue: 4,
        max_batch: 2,
        delay: Duration::from_secs(3600),
        export_timeout: Duration::from_secs(60),
    };
    let epp = traced_epp(TraceSettings {
        batch,
        ..settings(&collector, Sampling::AlwaysOn)
    })
    .await;
    let requests = 6;
    for _ in 0..requests {
        exchange(&epp, &[]).await;
    }
    // 5 spans a request; one batch is stuck in the held export (1 or 2 spans: whatever the
    // exporter found queued when it woke), the queue holds 4 more, the rest is dropped.
    let counts = epp.running.trace_counts().expect("tracing on");
    let total = 5 * requests;
    let queued = batch.max_queue as u64;
    let fewest_dropped = total - batch.max_batch as u64 - queued;
    let deadline = tokio::time::Instant::now() + WAIT;
    while counts.dropped() < fewest_dropped && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the last streams end (their spans are recorded as they do).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dropped = counts.dropped();
    assert!(
        (fewest_dropped..=total - 1 - queued).contains(&dropped),
        "dropped {dropped} of {total}"
    );
    let page = epp.running.metrics.render();
    assert_eq!(
        sample(
            &page,
            "inference_extension_trace_spans_total{outcome=\"dropped\"}"
        ),
        Some(dropped as f64)
    );
    assert_eq!(counts.exported(), 0);

    collector.hold(false);
    assert!(epp.running.flush_traces(WAIT).await);
    assert_eq!(counts.exported(), total - dropped);
    assert_eq!(collector.spans().len() as u64, total - dropped);
    assert_eq!(counts.dropped(), dropped, "nothing more was dropped");
}

#[tokio::test]
async fn a_token_source_adds_a_tokenize_span_between_parse_and_schedule() {
    const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";
    let collector = OtlpCollector::start().await;
    let trace = settings(&collector, Sampling::AlwaysOn);
    // The simulated server answers `/tokenize`; nothing publishes KV events (not needed).
    let kv_port = epp_testkit::ports::free_port_run(1);
    let config = format!(
        "apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-scorer
  parameters:
    blockSize: 16
    kvEventsPort: {kv_port}
    tokenizer: {{source: model-server, timeout: 2s}}
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: precise-prefix-cache-scorer
  - pluginRef: max-score-picker
"
    );
    let epp = TestEpp::start_with(&[], &config, move |o| {
        o.endpoint_source = epp::cli::EndpointSource::Simulated(1);
        o.simulate_endpoints = 1;
        o.tracing = true;
        o.trace_settings = Some(trace);
    })
    .await;
    let mut stream = epp.stream().await;
    let outcome = epp_testkit::driver::send_request(
        &mut stream,
        BodyMode::FullDuplexStreamed,
        &epp_testkit::driver::Request::new(&[], completion_body(MODEL, PROMPT)),
    )
    .await;
    assert!(!outcome.destination().is_empty());
    stream.close_send();
    drop(stream);
    let spans = collector.wait_for_spans(5, WAIT).await;
    let mut children: Vec<&ReceivedSpan> =
        spans.iter().filter(|s| s.name != names::REQUEST).collect();
    children.sort_by_key(|s| s.start_unix_nano);
    let order: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        order,
        [
            names::BODY_WAIT,
            names::PARSE,
            names::TOKENIZE,
            names::SCHEDULE,
            names::RESPOND
        ]
    );
    for pair in children.windows(2) {
        assert!(
            pair[0].end_unix_nano <= pair[1].start_unix_nano,
            "{order:?}"
        );
    }
    let schedule = named(&spans, names::SCHEDULE)[0];
    assert_eq!(schedule.attribute(keys::PROFILES), Some("default"));
    no_attribute_holds_the_prompt(&spans);
}

/// A request that flow control held has an `epp.queue` span between parse and schedule,
/// as long as its wait.
#[tokio::test]
async fn a_request_held_by_flow_control_has_a_queue_span() {
    let collector = OtlpCollector::start().await;
    let trace_settings = settings(&collector, Sampling::AlwaysOn);
    let config = "apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
saturationDetector:
  type: concurrency
  maxConcurrency: 1
flowControl: {}
";
    let epp = TestEpp::start_with(&["10.0.0.1:8000"], config, move |o| {
        o.tracing = true;
        o.trace_settings = Some(trace_settings);
    })
    .await;
    epp.set_metrics("10.0.0.1:8000", metrics(0, 0.1, &[]));
    let start = |id: &'static str| {
        let epp = &epp;
        async move {
            let mut stream = epp.stream().await;
            let mode = BodyMode::FullDuplexStreamed;
            let headers = request_headers(&[("x-request-id", id)], false);
            stream.send(with_modes(headers, mode, mode)).await;
            stream
                .send(request_body(&completion_body("m", PROMPT), true))
                .await;
            stream
        }
    };
    let finish = |mut stream: epp_testkit::ExtProcStream| async move {
        stream.reply().await;
        stream.reply().await;
        stream
            .exchange(response_headers(&[(":status", "200")], true), 1)
            .await;
        stream.close_send();
        stream.end().await;
    };
    let first = start("first").await;
    let held = start("held").await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    finish(first).await;
    finish(held).await;

    let spans = collector.wait_for_spans(2 * 5 + 1, WAIT).await;
    let queues = named(&spans, names::QUEUE);
    assert_eq!(queues.len(), 1, "only the held request waited: {spans:#?}");
    let queue = queues[0];
    let held_request = named(&spans, names::REQUEST)
        .into_iter()
        .find(|s| s.attribute(keys::REQUEST_ID) == Some("held"))
        .expect("the held request's span");
    assert_eq!(queue.parent_span_id, held_request.span_id);
    let waited = queue.end_unix_nano - queue.start_unix_nano;
    assert!(waited >= 50_000_000, "waited {waited} ns");
    let schedule = named(&spans, names::SCHEDULE)
        .into_iter()
        .find(|s| s.parent_span_id == held_request.span_id)
        .expect("its schedule span");
    assert!(queue.end_unix_nano <= schedule.start_unix_nano);
}
