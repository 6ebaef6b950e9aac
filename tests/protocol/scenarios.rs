//! The upstream hermetic test table (`test/integration/epp/hermetic_test.go`), rows 1–7
//! and 12–17, in both body modes. Endpoints stand in for pods `192.168.1.{1,2,3}:8000`.

use epp_extproc::BodyMode;
use epp_testkit::driver::{MODES, Outcome, Request, send_request};
use epp_testkit::messages::*;
use epp_testkit::{HERMETIC_CONFIG, metrics};

use crate::TestEpp;

const PODS: [&str; 3] = ["192.168.1.1:8000", "192.168.1.2:8000", "192.168.1.3:8000"];

/// Pod metrics as (queue, kv, active adapters).
type PodMetrics<'a> = [(u64, f64, &'a [&'a str]); 3];

async fn hermetic_epp(pods: &PodMetrics<'_>) -> TestEpp {
    let epp = TestEpp::start(&PODS, HERMETIC_CONFIG).await;
    for (address, (queue, kv, active)) in PODS.iter().zip(pods) {
        epp.set_metrics(address, metrics(*queue, *kv, active));
    }
    // Objectives of `inferencepool-with-model-hermetic.yaml`.
    epp.set_objective("sql-lora", 2);
    epp.set_objective("my-model", 2);
    epp.set_objective("direct-model", 2);
    epp.set_objective("sql-lora-sheddable", 0);
    epp
}

/// The standard headers: `hi: mom`, objective, rewrite, request id.
fn standard_headers<'a>(objective: &'a str, target: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("hi", "mom"),
        ("x-gateway-inference-objective", objective),
        ("x-gateway-model-name-rewrite", target),
        ("x-request-id", "test-request-id"),
    ]
}

async fn run(mode: BodyMode, pods: &PodMetrics<'_>, request: Request<'_>) -> Outcome {
    let epp = hermetic_epp(pods).await;
    let mut stream = epp.stream().await;
    send_request(&mut stream, mode, &request).await
}

fn expect_routed(outcome: &Outcome, destination: &str, model: &str) {
    let Outcome::Routed {
        destination: got,
        body,
        content_length,
        ..
    } = outcome
    else {
        panic!("expected a route to {destination}, got {outcome:?}");
    };
    assert_eq!(got, destination);
    let json: serde_json::Value = serde_json::from_slice(body).expect("body stays JSON");
    assert_eq!(json["model"], model, "model rewritten in the body");
    assert_eq!(json["max_tokens"], 100, "other fields untouched");
    if let Some(length) = content_length {
        assert_eq!(
            length,
            &body.len().to_string(),
            "content-length matches the body"
        );
    }
}

#[tokio::test]
async fn row1_lower_queue_and_kv_with_model_rewrite() {
    for mode in MODES {
        let pods: PodMetrics = [(3, 0.2, &[]), (0, 0.1, &[]), (10, 0.2, &[])];
        let request = Request::new(
            &standard_headers("my-model", "my-model-12345"),
            completion_body("my-model", "test1"),
        );
        let outcome = run(mode, &pods, request).await;
        expect_routed(&outcome, "192.168.1.2:8000", "my-model-12345");
        let Outcome::Routed {
            headers,
            content_length,
            ..
        } = &outcome
        else {
            unreachable!()
        };
        // The rewrite changes the length, so both modes set it; the client's own
        // request id is kept and not re-sent.
        assert!(content_length.is_some(), "{mode:?}");
        assert!(headers.contains(&"x-gateway-destination-endpoint".to_string()));
        assert!(
            !headers.contains(&"x-request-id".to_string()),
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn row2_invalid_json_is_400() {
    for mode in MODES {
        let pods: PodMetrics = [(0, 0.1, &[]); 3];
        let request = Request::new(
            &standard_headers("my-model", "my-model"),
            b"no healthy upstream".to_vec(),
        );
        assert_eq!(
            run(mode, &pods, request).await,
            Outcome::Rejected(
                400,
                "inference gateway: BadRequest - Error unmarshaling request body".into()
            ),
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn row3_active_lora_low_queue() {
    for mode in MODES {
        let pods: PodMetrics = [
            (0, 0.2, &["foo", "bar"]),
            (0, 0.1, &["foo", "sql-lora-1fdg2"]),
            (10, 0.2, &["foo", "bar"]),
        ];
        let request = Request::new(
            &standard_headers("sql-lora", "sql-lora-1fdg2"),
            completion_body("sql-lora", "test3"),
        );
        expect_routed(
            &run(mode, &pods, request).await,
            "192.168.1.2:8000",
            "sql-lora-1fdg2",
        );
    }
}

#[tokio::test]
async fn row4_lora_despite_higher_kv() {
    for mode in MODES {
        let pods: PodMetrics = [
            (10, 0.2, &["foo", "bar"]),
            (10, 0.4, &["foo", "sql-lora-1fdg2"]),
            (10, 0.3, &["foo"]),
        ];
        let request = Request::new(
            &standard_headers("sql-lora", "sql-lora-1fdg2"),
            completion_body("sql-lora", "test4"),
        );
        expect_routed(
            &run(mode, &pods, request).await,
            "192.168.1.2:8000",
            "sql-lora-1fdg2",
        );
    }
}

#[tokio::test]
async fn row5_critical_requests_are_not_shed() {
    for mode in MODES {
        let pods: PodMetrics = [
            (6, 0.2, &["foo", "bar", "sql-lora-1fdg2"]),
            (0, 0.85, &["foo"]),
            (10, 0.9, &["foo"]),
        ];
        let request = Request::new(
            &standard_headers("sql-lora", "sql-lora-1fdg2"),
            completion_body("sql-lora", "test5"),
        );
        expect_routed(
            &run(mode, &pods, request).await,
            "192.168.1.1:8000",
            "sql-lora-1fdg2",
        );
    }
}

#[tokio::test]
async fn row6_body_in_two_chunks_unset_priority_is_not_shed() {
    for mode in MODES {
        let pods: PodMetrics = [
            (4, 0.2, &["foo", "bar", "sql-lora-1fdg3"]),
            (4, 0.85, &["foo", "sql-lora-1fdg3"]),
            (10, 0.9, &["foo", "sql-lora-1fdg3"]),
        ];
        let body = completion_body("sql-lora-sheddable", "test6");
        let (a, b) = body.split_at(17);
        let request = Request::chunked(
            &standard_headers("sql-lora-sheddable", "sql-lora-1fdg3"),
            vec![a.to_vec(), b.to_vec()],
        );
        expect_routed(
            &run(mode, &pods, request).await,
            "192.168.1.1:8000",
            "sql-lora-1fdg3",
        );
    }
}

#[tokio::test]
async fn row7_rewrite_header_sent_twice_last_wins() {
    for mode in MODES {
        let pods: PodMetrics = [
            (4, 0.2, &["foo", "bar"]),
            (0, 0.85, &["foo"]),
            (10, 0.9, &["foo"]),
        ];
        let mut headers = standard_headers("direct-model", "ignored-first");
        headers.push(("x-gateway-model-name-rewrite", "direct-model"));
        let request = Request::new(&headers, completion_body("direct-model", "test7"));
        let outcome = run(mode, &pods, request).await;
        expect_routed(&outcome, "192.168.1.1:8000", "direct-model");
        let Outcome::Routed {
            body,
            content_length,
            ..
        } = &outcome
        else {
            unreachable!()
        };
        // Target equals the body's model: the body goes upstream byte for byte.
        assert_eq!(body, &completion_body("direct-model", "test7"));
        if mode == BodyMode::Buffered {
            assert!(
                content_length.is_none(),
                "an unchanged buffered body keeps its length header"
            );
        }
    }
}

#[tokio::test]
async fn rows13_to_15_subset_hint() {
    let pods: PodMetrics = [
        (0, 0.2, &["foo", "bar"]),
        (0, 0.1, &["foo", "sql-lora-1fdg2"]),
        (10, 0.2, &["foo", "bar"]),
    ];
    for mode in MODES {
        let headers = standard_headers("sql-lora", "sql-lora-1fdg2");
        let body = completion_body("sql-lora", "test13");
        let all = Request::new(&headers, body.clone()).subset(&[
            "192.168.1.1:8000",
            "192.168.1.2:8000",
            "192.168.1.3:8000",
        ]);
        expect_routed(
            &run(mode, &pods, all).await,
            "192.168.1.2:8000",
            "sql-lora-1fdg2",
        );
        let only3 = Request::new(&headers, body.clone()).subset(&["192.168.1.3:8000"]);
        expect_routed(
            &run(mode, &pods, only3).await,
            "192.168.1.3:8000",
            "sql-lora-1fdg2",
        );
        let none = Request::new(&headers, body.clone()).subset(&[
            "192.168.1.4:8000",
            "192.168.1.5:8000",
            "192.168.1.6:8000",
        ]);
        assert_eq!(
            run(mode, &pods, none).await,
            Outcome::Rejected(503, "inference gateway: ServiceUnavailable - failed to find candidate pods for serving the request".into())
        );
        let empty = Request::new(&headers, body).subset(&[]);
        assert!(
            matches!(run(mode, &pods, empty).await, Outcome::Rejected(503, _)),
            "an empty subset is 503"
        );
    }
}

#[tokio::test]
async fn row17_body_without_model_is_400() {
    for mode in MODES {
        let pods: PodMetrics = [(0, 0.1, &[]); 3];
        let request = Request::new(&[], br#"{"hello":"world"}"#.to_vec());
        assert_eq!(
            run(mode, &pods, request).await,
            Outcome::Rejected(
                400,
                "inference gateway: BadRequest - model not found in request body".into()
            )
        );
    }
}

#[tokio::test]
async fn row12_bodyless_get_goes_to_a_random_endpoint() {
    let epp = hermetic_epp(&[(0, 0.1, &[]); 3]).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..60 {
        let mut stream = epp.stream().await;
        let reply = stream
            .exchange(
                with_modes(
                    request_headers(&[(":method", "GET"), (":path", "/")], true),
                    BodyMode::FullDuplexStreamed,
                    BodyMode::FullDuplexStreamed,
                ),
                1,
            )
            .await
            .remove(0);
        assert_eq!(kind(&reply), "request_headers");
        let destination = destination(&reply);
        assert!(PODS.contains(&destination.as_str()), "{destination}");
        assert!(set_header(&reply, "content-length").is_none());
        assert!(
            set_header(&reply, "x-request-id").is_some(),
            "a generated request id is sent upstream"
        );
        seen.insert(destination);
    }
    assert_eq!(seen.len(), 3, "random over every endpoint");
}

#[tokio::test]
async fn row16_bodyless_get_with_no_endpoints_is_500() {
    let epp = TestEpp::start(&[], HERMETIC_CONFIG).await;
    let mut stream = epp.stream().await;
    let reply = stream
        .exchange(request_headers(&[(":method", "GET")], true), 1)
        .await
        .remove(0);
    assert_eq!(
        immediate(&reply),
        Some((
            500,
            "inference gateway: Internal - no pods available in datastore".into()
        ))
    );
}

#[tokio::test]
async fn request_with_body_and_no_endpoints_is_503() {
    let epp = TestEpp::start(&[], HERMETIC_CONFIG).await;
    for mode in MODES {
        let mut stream = epp.stream().await;
        let outcome = send_request(
            &mut stream,
            mode,
            &Request::new(&[], completion_body("m", "p")),
        )
        .await;
        assert!(matches!(outcome, Outcome::Rejected(503, _)), "{outcome:?}");
    }
}
