//! `--response-body-mode-override`: when the gateway buffers both bodies (Envoy AI
//! Gateway's `buffered` mode), the request-headers reply asks for the response body
//! STREAMED (or NONE), so streamed completions reach the client as they are generated.
//! The response metrics must stay right whichever way the body then arrives.

use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse;
use epp_extproc::BodyMode;
use epp_testkit::messages::*;
use epp_testkit::{ExtProcStream, HERMETIC_CONFIG, Next, metrics, prometheus};

use crate::TestEpp;

const POD: &str = "10.0.0.1:8000";
const HEADER_SEND: i32 = 1;
const TRAILER_DEFAULT: i32 = 0;
const NONE: i32 = 0;
const STREAMED: i32 = 1;
const BUFFERED: i32 = 2;
const BUFFERED_PARTIAL: i32 = 3;

async fn epp(mode: epp::cli::ResponseBodyOverride) -> TestEpp {
    let epp = TestEpp::start_with(&[POD], HERMETIC_CONFIG, |o| {
        o.response_body_override = mode;
    })
    .await;
    epp.set_metrics(POD, metrics(0, 0.1, &[]));
    epp
}

/// Sends request headers announcing `request`/`response` body modes; returns the reply.
async fn headers_reply(
    stream: &mut ExtProcStream,
    request: BodyMode,
    response: BodyMode,
    end_of_stream: bool,
) -> ProcessingResponse {
    let first = with_modes(
        request_headers(&[(":path", "/v1/completions")], end_of_stream),
        request,
        response,
    );
    stream.exchange(first, 1).await.remove(0)
}

fn expected(request_body_mode: i32, response_body_mode: i32) -> ProcessingMode {
    ProcessingMode {
        request_header_mode: HEADER_SEND,
        response_header_mode: HEADER_SEND,
        request_body_mode,
        response_body_mode,
        request_trailer_mode: TRAILER_DEFAULT,
        response_trailer_mode: TRAILER_DEFAULT,
    }
}

#[tokio::test]
async fn buffered_gateway_is_asked_to_stream_the_response() {
    let epp = epp(epp::cli::ResponseBodyOverride::Streamed).await;
    for (request, wire) in [
        (BodyMode::Buffered, BUFFERED),
        (BodyMode::BufferedPartial, BUFFERED_PARTIAL),
    ] {
        let mut stream = epp.stream().await;
        let reply = headers_reply(&mut stream, request, BodyMode::Buffered, false).await;
        assert_eq!(kind(&reply), "request_headers");
        // The request body keeps the mode the gateway is about to send it in.
        assert_eq!(reply.mode_override, Some(expected(wire, STREAMED)));

        // The body reply still routes, and carries no second override.
        let reply = stream
            .exchange(request_body(&completion_body("m", "p"), true), 1)
            .await
            .remove(0);
        assert_eq!(destination(&reply), POD);
        assert_eq!(reply.mode_override, None);
    }

    // A bodyless request is routed on its headers reply, which carries the override.
    let mut stream = epp.stream().await;
    let reply = headers_reply(&mut stream, BodyMode::Buffered, BodyMode::Buffered, true).await;
    assert_eq!(destination(&reply), POD);
    assert_eq!(reply.mode_override, Some(expected(BUFFERED, STREAMED)));
}

#[tokio::test]
async fn no_override_unless_both_bodies_are_buffered_or_when_off() {
    let on = epp(epp::cli::ResponseBodyOverride::Streamed).await;
    for (request, response) in [
        (BodyMode::FullDuplexStreamed, BodyMode::FullDuplexStreamed),
        (BodyMode::Buffered, BodyMode::FullDuplexStreamed),
        (BodyMode::Buffered, BodyMode::Streamed),
        (BodyMode::Buffered, BodyMode::None),
    ] {
        let mut stream = on.stream().await;
        let reply = headers_reply(&mut stream, request, response, true).await;
        assert_eq!(destination(&reply), POD, "{request:?}/{response:?}");
        assert_eq!(reply.mode_override, None, "{request:?}/{response:?}");
    }

    let off = epp(epp::cli::ResponseBodyOverride::Off).await;
    let mut stream = off.stream().await;
    let reply = headers_reply(&mut stream, BodyMode::Buffered, BodyMode::Buffered, false).await;
    assert_eq!(reply.mode_override, None);

    let none = epp(epp::cli::ResponseBodyOverride::None).await;
    let mut stream = none.stream().await;
    let reply = headers_reply(&mut stream, BodyMode::Buffered, BodyMode::Buffered, false).await;
    assert_eq!(reply.mode_override, Some(expected(BUFFERED, NONE)));
}

fn series(name: &str) -> String {
    format!("{name}{{model_name=\"m\",target_model_name=\"m\"}}")
}

/// Waits for `name` (a model-pair series) to reach `value` on the EPP's page.
async fn until_sample(epp: &TestEpp, name: &str, value: f64) {
    let series = series(name);
    for _ in 0..200 {
        if prometheus::sample(&epp.running.metrics.render(), &series) == Some(value) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{series} is not {value}:\n{}", epp.running.metrics.render());
}

/// After the override, Envoy sends the response body in many chunks although the
/// protocol_config said BUFFERED: each passes unchanged, and usage split across chunks
/// is still counted once, as are the response size and duration.
#[tokio::test]
async fn streamed_chunks_after_the_override_are_counted() {
    let epp = epp(epp::cli::ResponseBodyOverride::Streamed).await;
    let mut stream = epp.stream().await;
    headers_reply(&mut stream, BodyMode::Buffered, BodyMode::Buffered, false).await;
    stream
        .exchange(request_body(&completion_body("m", "p"), true), 1)
        .await;
    let reply = stream
        .exchange(
            response_headers(
                &[(":status", "200"), ("content-type", "text/event-stream")],
                false,
            ),
            1,
        )
        .await
        .remove(0);
    assert_eq!(kind(&reply), "response_headers");
    let sse = concat!(
        "data: {\"choices\":[{\"text\":\"a\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}\n\n",
        "data: [DONE]\n\n"
    )
    .as_bytes();
    // Cut inside the usage event, as a real stream can be.
    let cuts = [0, 20, 60, 95, sse.len()];
    for window in cuts.windows(2) {
        let last = window[1] == sse.len();
        let reply = stream
            .exchange(response_body(&sse[window[0]..window[1]], last), 1)
            .await
            .remove(0);
        assert_eq!(kind(&reply), "response_body");
        assert!(common(&reply).is_none(), "passed unchanged: {reply:?}");
    }
    stream.close_send();
    assert!(matches!(stream.end().await, Next::Closed));
    until_sample(&epp, "inference_model_output_tokens_sum", 7.0).await;
    until_sample(&epp, "inference_model_input_tokens_sum", 11.0).await;
    until_sample(&epp, "inference_model_response_sizes_sum", sse.len() as f64).await;
    until_sample(&epp, "inference_model_request_duration_seconds_count", 1.0).await;
}

/// With `none` the EPP sees response headers and then the gateway closing the stream:
/// that ends the request's duration; no tokens are counted.
#[tokio::test]
async fn none_ends_the_request_when_the_gateway_closes() {
    let epp = epp(epp::cli::ResponseBodyOverride::None).await;
    let mut stream = epp.stream().await;
    headers_reply(&mut stream, BodyMode::Buffered, BodyMode::Buffered, false).await;
    stream
        .exchange(request_body(&completion_body("m", "p"), true), 1)
        .await;
    stream
        .exchange(
            response_headers(
                &[(":status", "200"), ("content-type", "text/event-stream")],
                false,
            ),
            1,
        )
        .await;
    let page = epp.running.metrics.render();
    assert_eq!(
        prometheus::sample(
            &page,
            &series("inference_model_request_duration_seconds_count")
        ),
        None,
        "not ended before the gateway closes:\n{page}"
    );
    stream.close_send();
    assert!(matches!(stream.end().await, Next::Closed));
    until_sample(&epp, "inference_model_request_duration_seconds_count", 1.0).await;
    let page = epp.running.metrics.render();
    assert_eq!(
        prometheus::sample(&page, &series("inference_model_output_tokens_count")),
        None,
        "no tokens without a body:\n{page}"
    );
}
