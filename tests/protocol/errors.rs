//! Bad streams, limits and client-supplied routing headers.

use epp_extproc::BodyMode;
use epp_testkit::driver::{MODES, Outcome, Request, send_request};
use epp_testkit::messages::*;
use epp_testkit::{HERMETIC_CONFIG, Next, metrics};

use crate::TestEpp;

const PODS: [&str; 2] = ["10.0.0.1:8000", "10.0.0.2:8000"];

async fn epp() -> TestEpp {
    let epp = TestEpp::start(&PODS, HERMETIC_CONFIG).await;
    for pod in PODS {
        epp.set_metrics(pod, metrics(0, 0.1, &[]));
    }
    epp
}

fn in_flight(epp: &TestEpp) -> u32 {
    epp.datastore()
        .snapshot()
        .endpoints()
        .iter()
        .map(|e| e.in_flight())
        .sum()
}

/// Waits until no request is counted in flight (stream tasks end asynchronously).
async fn assert_drained(epp: &TestEpp) {
    for _ in 0..200 {
        if in_flight(epp) == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("in-flight count leaked: {}", in_flight(epp));
}

#[tokio::test]
async fn body_before_headers_is_a_grpc_error() {
    let epp = epp().await;
    let mut stream = epp.stream().await;
    stream
        .send(request_body(&completion_body("m", "p"), true))
        .await;
    match stream.end().await {
        Next::Error(status) => {
            assert_eq!(status.code(), tonic::Code::FailedPrecondition);
            assert!(
                status.message().contains("before request headers"),
                "{status}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn second_headers_message_is_a_grpc_error() {
    let epp = epp().await;
    let mut stream = epp.stream().await;
    stream.send(request_headers(&[("a", "b")], false)).await;
    stream.send(request_headers(&[("a", "b")], false)).await;
    assert!(
        matches!(stream.end().await, Next::Error(s) if s.code() == tonic::Code::FailedPrecondition)
    );
}

#[tokio::test]
async fn messages_after_the_end_are_errors_and_leave_nothing_behind() {
    let epp = epp().await;
    let mut stream = epp.stream().await;
    let outcome = send_request(
        &mut stream,
        BodyMode::FullDuplexStreamed,
        &Request::new(&[], completion_body("m", "p")),
    )
    .await;
    assert!(matches!(outcome, Outcome::Routed { .. }));
    assert_eq!(
        in_flight(&epp),
        1,
        "the pick is counted while the stream is open"
    );
    stream.send(request_body(b"more", true)).await;
    assert!(
        matches!(stream.end().await, Next::Error(s) if s.message().contains("after the request ended"))
    );
    assert_drained(&epp).await;
}

#[tokio::test]
async fn stream_cut_midway_releases_the_in_flight_count() {
    let epp = epp().await;
    for mode in MODES {
        let mut stream = epp.stream().await;
        send_request(
            &mut stream,
            mode,
            &Request::new(&[], completion_body("m", "p")),
        )
        .await;
        assert_eq!(in_flight(&epp), 1);
        drop(stream);
        assert_drained(&epp).await;
    }
    // A stream cut during the body never picks anything.
    let mut stream = epp.stream().await;
    stream.start_full_duplex().await;
    stream.send(request_body(b"{\"model\":", false)).await;
    drop(stream);
    assert_drained(&epp).await;
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let epp =
        TestEpp::start_with(&PODS, HERMETIC_CONFIG, |o| o.max_request_body_bytes = 1000).await;
    for mode in MODES {
        let mut stream = epp.stream().await;
        let big = completion_body("m", &"x".repeat(2000));
        let outcome = send_request(&mut stream, mode, &Request::new(&[], big)).await;
        assert_eq!(
            outcome,
            Outcome::Rejected(
                413,
                "inference gateway: PayloadTooLarge - request body exceeds the limit of 1000 bytes"
                    .into()
            ),
            "{mode:?}"
        );
    }
    // The limit counts the whole body, across chunks; the 413 comes as soon as it is crossed.
    let mut stream = epp.stream().await;
    stream.start_full_duplex().await;
    stream.send(request_body(&[b'x'; 600], false)).await;
    stream.expect_silence().await;
    stream.send(request_body(&[b'x'; 600], false)).await;
    assert_eq!(immediate(&stream.reply().await).map(|r| r.0), Some(413));
    assert_drained(&epp).await;
}

#[tokio::test]
async fn body_at_the_limit_is_accepted() {
    let body = completion_body("m", "p");
    let limit = body.len() as u64;
    let epp =
        TestEpp::start_with(&PODS, HERMETIC_CONFIG, |o| o.max_request_body_bytes = limit).await;
    let mut stream = epp.stream().await;
    let outcome = send_request(
        &mut stream,
        BodyMode::FullDuplexStreamed,
        &Request::new(&[], body),
    )
    .await;
    assert!(matches!(outcome, Outcome::Routed { .. }), "{outcome:?}");
}

#[tokio::test]
async fn client_routing_headers_are_never_trusted() {
    let epp = epp().await;
    for mode in MODES {
        let headers = [
            ("x-gateway-destination-endpoint", "6.6.6.6:666"),
            ("x-gateway-destination-endpoint-subset", "6.6.6.6:666"),
            ("x-gateway-destination-endpoint-fallback", "6.6.6.6:666"),
        ];
        let mut stream = epp.stream().await;
        let first = with_modes(request_headers(&headers, false), mode, mode);
        if mode == BodyMode::Buffered {
            stream.exchange(first, 1).await;
            let reply = stream
                .exchange(request_body(&completion_body("m", "p"), true), 1)
                .await
                .remove(0);
            check_overridden(&reply);
        } else {
            stream.send(first).await;
            let reply = stream
                .exchange(request_body(&completion_body("m", "p"), true), 2)
                .await
                .remove(0);
            check_overridden(&reply);
        }
    }
}

fn check_overridden(reply: &envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse) {
    let chosen = destination(reply);
    assert!(PODS.contains(&chosen.as_str()), "{chosen}");
    let mut removed = removed_headers(reply);
    removed.sort();
    assert_eq!(
        removed,
        [
            "x-gateway-destination-endpoint-fallback",
            "x-gateway-destination-endpoint-subset"
        ]
    );
    let common = common(reply).expect("common");
    let option = common
        .header_mutation
        .as_ref()
        .expect("mutation")
        .set_headers
        .iter()
        .find(|h| {
            h.header
                .as_ref()
                .is_some_and(|h| h.key == "x-gateway-destination-endpoint")
        })
        .expect("destination");
    assert_eq!(option.append_action, 2, "OVERWRITE_IF_EXISTS_OR_ADD");
}

#[tokio::test]
async fn request_id_is_generated_when_absent() {
    let epp = epp().await;
    let mut stream = epp.stream().await;
    stream.start_full_duplex().await;
    let reply = stream
        .exchange(request_body(&completion_body("m", "p"), true), 2)
        .await
        .remove(0);
    let id = set_header(&reply, "x-request-id").expect("generated id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(id.chars().nth(14), Some('4'), "version 4: {id}");
}

#[tokio::test]
async fn pool_not_synced_is_a_grpc_error() {
    let epp = epp().await;
    epp.datastore().clear();
    let mut stream = epp.stream().await;
    stream.start_full_duplex().await;
    stream
        .send(request_body(&completion_body("m", "p"), true))
        .await;
    match stream.end().await {
        Next::Error(status) => assert_eq!(status.code(), tonic::Code::Unavailable),
        other => {
            panic!("expected a gRPC error so the gateway's failure mode applies, got {other:?}")
        }
    }
}

#[tokio::test]
async fn filter_removing_everything_is_429() {
    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/plugins-config/conformance-plugins.yaml"
    ))
    .expect("config");
    let epp = TestEpp::start(&PODS, &config).await;
    for mode in MODES {
        let mut stream = epp.stream().await;
        let outcome = send_request(
            &mut stream,
            mode,
            &Request::new(&[], completion_body("m", "p")),
        )
        .await;
        assert_eq!(
            outcome,
            Outcome::Rejected(
                429,
                "inference gateway: InferencePoolResourceExhausted - failed to find target pod: failed to run scheduler profile 'conformance-profile'".into()
            )
        );
    }
}

#[tokio::test]
async fn sheddable_requests_are_shed_only_when_saturated() {
    let epp = epp().await;
    epp.set_objective("batch", -1);
    let headers = [("x-gateway-inference-objective", "batch")];
    let mut stream = epp.stream().await;
    let outcome = send_request(
        &mut stream,
        BodyMode::FullDuplexStreamed,
        &Request::new(&headers, completion_body("m", "p")),
    )
    .await;
    assert!(
        matches!(outcome, Outcome::Routed { .. }),
        "fresh metrics with headroom: {outcome:?}"
    );
    for pod in PODS {
        epp.set_metrics(pod, metrics(50, 0.95, &[]));
    }
    let mut stream = epp.stream().await;
    let outcome = send_request(
        &mut stream,
        BodyMode::FullDuplexStreamed,
        &Request::new(&headers, completion_body("m", "p")),
    )
    .await;
    assert_eq!(
        outcome,
        Outcome::Rejected(429, "inference gateway: InferencePoolResourceExhausted - system saturated, sheddable request dropped".into())
    );
    // Priority >= 0 is never shed, however saturated.
    let mut stream = epp.stream().await;
    let outcome = send_request(
        &mut stream,
        BodyMode::FullDuplexStreamed,
        &Request::new(&[], completion_body("m", "p")),
    )
    .await;
    assert!(matches!(outcome, Outcome::Routed { .. }));
}

// === messages the service cannot read ===
//
// A stream that ends with status OK and no reply looks like "processing done" to a
// gateway, which may then forward the request unrouted (bypassing fail-closed): these
// must end with an error status.

#[tokio::test]
async fn message_over_the_decode_limit_gets_413_and_resource_exhausted() {
    // The decode limit is the body limit + 1 MiB.
    let epp =
        TestEpp::start_with(&PODS, HERMETIC_CONFIG, |o| o.max_request_body_bytes = 1000).await;
    for mode in MODES {
        let mut stream = epp.stream().await;
        let first = with_modes(request_headers(&[], false), mode, mode);
        match mode {
            BodyMode::Buffered => drop(stream.exchange(first, 1).await),
            // FULL_DUPLEX_STREAMED: the headers reply waits for the body.
            _ => stream.send(first).await,
        }
        stream
            .send(request_body(&vec![b'x'; (1 << 20) + 2000], true))
            .await;
        let reply = stream.reply().await;
        assert_eq!(
            immediate(&reply),
            Some((
                413,
                "inference gateway: PayloadTooLarge - request body exceeds the limit of 1000 bytes"
                    .to_owned()
            )),
            "{mode:?}"
        );
        match stream.end().await {
            Next::Error(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}")
            }
            other => panic!("{mode:?}: expected RESOURCE_EXHAUSTED, got {other:?}"),
        }
    }
    assert_drained(&epp).await;
}

#[tokio::test]
async fn message_over_the_decode_limit_after_routing_ends_with_resource_exhausted() {
    let epp =
        TestEpp::start_with(&PODS, HERMETIC_CONFIG, |o| o.max_request_body_bytes = 1000).await;
    let mut stream = epp.stream().await;
    let outcome = send_request(
        &mut stream,
        BodyMode::FullDuplexStreamed,
        &Request::new(&[], completion_body("m", "p")),
    )
    .await;
    assert!(matches!(outcome, Outcome::Routed { .. }));
    stream
        .exchange(
            response_headers(&[("content-type", "text/plain")], false),
            1,
        )
        .await;
    // The request is already on its way: no 413, just the error status.
    stream
        .send(response_body(&vec![b'x'; (1 << 20) + 2000], true))
        .await;
    assert!(
        matches!(stream.end().await, Next::Error(s) if s.code() == tonic::Code::ResourceExhausted)
    );
    assert_drained(&epp).await;
}

/// A message with field 2 (`request_headers`, a message) sent as a varint: valid gRPC
/// framing, invalid protobuf for `ProcessingRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct NotAProcessingRequest {
    #[prost(uint64, tag = "2")]
    request_headers_as_a_number: u64,
}

#[tokio::test]
async fn undecodable_message_ends_with_invalid_argument() {
    use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse;

    let epp = epp().await;
    let url = format!("http://127.0.0.1:{}", epp.running.ext_proc_address.port());
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let codec = tonic_prost::ProstCodec::<NotAProcessingRequest, ProcessingResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/envoy.service.ext_proc.v3.ExternalProcessor/Process",
    );
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(NotAProcessingRequest {
        request_headers_as_a_number: 7,
    })
    .await
    .expect("queued");
    let mut replies = grpc
        .streaming(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            path,
            codec,
        )
        .await
        .expect("stream opens")
        .into_inner();
    let ended = tokio::time::timeout(epp_testkit::REPLY_TIMEOUT, replies.message())
        .await
        .expect("the stream ends in time");
    match ended {
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
            assert!(status.message().contains("cannot decode"), "{status}");
        }
        Ok(other) => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
    drop(tx);
}
