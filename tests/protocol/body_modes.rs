//! Body-mode detection, fallbacks, trailers, STREAMED routing and body shapes.

use epp_extproc::BodyMode;
use epp_testkit::driver::{MODES, Outcome, Request, send_request};
use epp_testkit::messages::*;
use epp_testkit::{HERMETIC_CONFIG, metrics};

use crate::TestEpp;

const PODS: [&str; 3] = ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"];

async fn epp_with(config: &str) -> TestEpp {
    let epp = TestEpp::start(&PODS, config).await;
    epp.set_metrics(PODS[0], metrics(5, 0.5, &[]));
    epp.set_metrics(PODS[1], metrics(0, 0.1, &[]));
    epp.set_metrics(PODS[2], metrics(9, 0.9, &[]));
    epp
}

#[tokio::test]
async fn without_protocol_config_full_duplex_is_assumed() {
    let epp = epp_with(HERMETIC_CONFIG).await;
    let mut stream = epp.stream().await;
    stream.send(request_headers(&[], false)).await;
    stream.expect_silence().await;
    let replies = stream
        .exchange(request_body(&completion_body("m", "p"), true), 2)
        .await;
    assert_eq!(destination(&replies[0]), PODS[1]);
    assert!(streamed(&replies[1]).is_some_and(|(_, end)| end));
}

#[tokio::test]
async fn fallback_flag_selects_buffered() {
    let epp = TestEpp::start_with(&PODS, HERMETIC_CONFIG, |o| {
        o.body_mode_fallback = epp::cli::BodyModeFallback::Buffered;
    })
    .await;
    let mut stream = epp.stream().await;
    let reply = stream
        .exchange(request_headers(&[], false), 1)
        .await
        .remove(0);
    assert_eq!(kind(&reply), "request_headers");
    let reply = stream
        .exchange(request_body(&completion_body("m", "p"), true), 1)
        .await
        .remove(0);
    assert!(PODS.contains(&destination(&reply).as_str()));
    assert!(streamed(&reply).is_none());
}

#[tokio::test]
async fn streamed_mode_routes_at_headers_and_passes_chunks() {
    let epp = epp_with(HERMETIC_CONFIG).await;
    let mut stream = epp.stream().await;
    let reply = stream
        .exchange(
            with_modes(
                request_headers(&[], false),
                BodyMode::Streamed,
                BodyMode::Streamed,
            ),
            1,
        )
        .await
        .remove(0);
    assert_eq!(kind(&reply), "request_headers");
    assert_eq!(destination(&reply), PODS[1], "picked by load alone");
    for end in [false, true] {
        let reply = stream
            .exchange(request_body(b"{\"model\":\"m\"}", end), 1)
            .await
            .remove(0);
        assert_eq!(kind(&reply), "request_body");
        assert!(common(&reply).is_none(), "unchanged chunk: {reply:?}");
    }
    let page = epp.running.metrics.render();
    assert!(
        page.contains("inference_extension_picks_total{reason=\"headers_only\"} 1\n"),
        "{page}"
    );
}

#[tokio::test]
async fn full_duplex_request_trailers_end_the_body() {
    let epp = epp_with(HERMETIC_CONFIG).await;
    let mut stream = epp.stream().await;
    stream.start_full_duplex().await;
    stream
        .send(request_body(&completion_body("m", "p"), false))
        .await;
    stream.expect_silence().await;
    let replies = stream.exchange(request_trailers(), 3).await;
    assert_eq!(destination(&replies[0]), PODS[1]);
    // The trailers follow the body: the body reply must not claim end-of-stream.
    assert_eq!(
        streamed(&replies[1]),
        Some((completion_body("m", "p"), false))
    );
    assert_eq!(kind(&replies[2]), "request_trailers");
}

#[tokio::test]
async fn with_trailers_no_replayed_or_rewritten_chunk_claims_end_of_stream() {
    let epp = epp_with(HERMETIC_CONFIG).await;
    let body = completion_body("m", &"p".repeat(150_000));
    for rewrite in [None, Some("other")] {
        let headers: Vec<(&str, &str)> = rewrite
            .map(|model| ("x-gateway-model-name-rewrite", model))
            .into_iter()
            .collect();
        let mut stream = epp.stream().await;
        stream
            .send(with_modes(
                request_headers(&headers, false),
                BodyMode::FullDuplexStreamed,
                BodyMode::FullDuplexStreamed,
            ))
            .await;
        for chunk in body.chunks(10_000) {
            stream.send(request_body(chunk, false)).await;
        }
        stream.send(request_trailers()).await;
        assert_eq!(kind(&stream.reply().await), "request_headers");
        let mut sent = Vec::new();
        let mut chunks = 0;
        let trailers = loop {
            let reply = stream.reply().await;
            let Some((chunk, end)) = streamed(&reply) else {
                break reply;
            };
            assert!(!end, "{rewrite:?}: chunk {chunks} claims end-of-stream");
            sent.extend_from_slice(&chunk);
            chunks += 1;
        };
        assert_eq!(kind(&trailers), "request_trailers", "{rewrite:?}");
        assert_eq!(chunks, sent.len().div_ceil(62_000), "{rewrite:?}");
        let expected = match rewrite {
            None => body.clone(),
            Some(model) => completion_body(model, &"p".repeat(150_000)),
        };
        assert!(sent == expected, "{rewrite:?}: the body arrives whole");
    }
}

#[tokio::test]
async fn buffered_partial_routes_on_what_arrived() {
    let epp = epp_with(HERMETIC_CONFIG).await;
    let mut stream = epp.stream().await;
    stream
        .exchange(
            with_modes(
                request_headers(&[], false),
                BodyMode::BufferedPartial,
                BodyMode::BufferedPartial,
            ),
            1,
        )
        .await;
    let reply = stream
        .exchange(request_body(&completion_body("m", "p"), false), 1)
        .await
        .remove(0);
    assert_eq!(destination(&reply), PODS[1]);
}

/// Sends the first `part` of a body larger than the gateway's buffer, as Envoy does in
/// BUFFERED_PARTIAL mode (`end_of_stream: false`), and returns the body reply.
async fn send_cut_body(
    epp: &TestEpp,
    headers: &[(&str, &str)],
    part: &[u8],
) -> envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse {
    let mut stream = epp.stream().await;
    let first = with_modes(
        request_headers(headers, false),
        BodyMode::BufferedPartial,
        BodyMode::BufferedPartial,
    );
    assert_eq!(kind(&stream.exchange(first, 1).await[0]), "request_headers");
    stream
        .exchange(request_body(part, false), 1)
        .await
        .remove(0)
}

#[tokio::test]
async fn buffered_partial_cut_body_is_routed_never_400() {
    let epp = epp_with(HERMETIC_CONFIG).await;
    let cuts: [&[u8]; 4] = [
        // Cut inside the prompt: the model is read.
        br#"{"max_tokens":100,"model":"m","prompt":"a long prompt that goes o"#,
        // Cut inside the model: no model.
        br#"{"model":"my-mo"#,
        // Chat clients send messages first: cut inside them, neither is known.
        br#"{"messages":[{"role":"user","content":"a long quest"#,
        // Not even JSON so far.
        b"{",
    ];
    for part in cuts {
        let reply = send_cut_body(&epp, &[], part).await;
        assert_eq!(immediate(&reply), None, "{}", String::from_utf8_lossy(part));
        assert_eq!(kind(&reply), "request_body");
        // By load: the least loaded endpoint; the part passes unchanged.
        assert_eq!(destination(&reply), PODS[1]);
        assert_eq!(replaced_body(&reply), None);
    }
    // A model read from the cut body is counted as that model.
    let page = epp.running.metrics.render();
    assert!(
        page.contains(
            "inference_model_request_total{model_name=\"m\",target_model_name=\"m\"} 1\n"
        ),
        "{page}"
    );
}

#[tokio::test]
async fn buffered_partial_cut_body_gets_the_model_rewrite() {
    let epp = epp_with(HERMETIC_CONFIG).await;
    let part = br#"{"model":"m","prompt":"a long prompt that goes o"#;
    // The whole body would be 1000 bytes; the rewrite adds 4.
    let headers = [
        ("x-gateway-model-name-rewrite", "other"),
        ("content-length", "1000"),
    ];
    let reply = send_cut_body(&epp, &headers, part).await;
    assert_eq!(
        replaced_body(&reply),
        Some(br#"{"model":"other","prompt":"a long prompt that goes o"#.to_vec())
    );
    assert_eq!(
        set_header(&reply, "content-length"),
        Some("1004".to_owned())
    );
    // Without a declared length none is set; a model cut off cannot be rewritten.
    let reply = send_cut_body(&epp, &headers[..1], part).await;
    assert_eq!(set_header(&reply, "content-length"), None);
    assert!(replaced_body(&reply).is_some());
    let reply = send_cut_body(&epp, &headers, br#"{"prompt":"abc"#).await;
    assert_eq!(replaced_body(&reply), None);
    assert_eq!(set_header(&reply, "content-length"), None);
    assert_eq!(destination(&reply), PODS[1]);
}

#[tokio::test]
async fn whole_bodies_still_need_valid_json() {
    // Only a cut body is read leniently: BUFFERED and FULL_DUPLEX keep v1.0.1's 400.
    let epp = epp_with(HERMETIC_CONFIG).await;
    for mode in MODES {
        let mut stream = epp.stream().await;
        let outcome = send_request(
            &mut stream,
            mode,
            &Request::new(&[], br#"{"model":"m","prompt":"cut"#.to_vec()),
        )
        .await;
        assert!(
            matches!(outcome, Outcome::Rejected(400, _)),
            "{mode:?}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn fallback_endpoints_are_listed_in_order() {
    let config = HERMETIC_CONFIG.replace(
        "- type: max-score-picker",
        "- type: max-score-picker\n  parameters: {maxNumOfEndpoints: 2}",
    );
    let epp = epp_with(&config).await;
    for mode in MODES {
        let mut stream = epp.stream().await;
        let outcome = send_request(
            &mut stream,
            mode,
            &Request::new(&[], completion_body("m", "p")),
        )
        .await;
        assert_eq!(
            outcome.destination(),
            "10.0.0.2:8000,10.0.0.1:8000",
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn body_shapes_that_route() {
    let epp = epp_with(HERMETIC_CONFIG).await;
    let bodies: [&[u8]; 6] = [
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#,
        br#"{"model":"e","input":"embed this"}"#,
        br#"{"model":"e","input":[1,2,3]}"#,
        br#"{"model":"m"}"#,
        br#"{"model":"m","messages":"not a list"}"#,
    ];
    for mode in MODES {
        for body in bodies {
            let mut stream = epp.stream().await;
            let outcome = send_request(&mut stream, mode, &Request::new(&[], body.to_vec())).await;
            let Outcome::Routed { body: sent, .. } = &outcome else {
                panic!(
                    "{} was not routed: {outcome:?}",
                    String::from_utf8_lossy(body)
                );
            };
            assert_eq!(sent, body, "unchanged bodies pass byte for byte");
        }
    }
}

#[tokio::test]
async fn megabyte_body_in_many_chunks_is_replayed_intact() {
    let epp = epp_with(HERMETIC_CONFIG).await;
    let prompt: String = (0..1_000_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let body = completion_body("m", &prompt);
    let chunks: Vec<Vec<u8>> = body.chunks(16 * 1024).map(<[u8]>::to_vec).collect();
    for mode in MODES {
        let mut stream = epp.stream().await;
        let outcome = send_request(&mut stream, mode, &Request::chunked(&[], chunks.clone())).await;
        let Outcome::Routed { body: sent, .. } = outcome else {
            panic!("not routed")
        };
        assert_eq!(sent.len(), body.len());
        assert!(sent == body, "{mode:?}: replayed body differs");
    }
    // With a rewrite, the new body is sent in chunks of at most 62000 bytes.
    let mut stream = epp.stream().await;
    stream
        .send(with_modes(
            request_headers(&[("x-gateway-model-name-rewrite", "other")], false),
            BodyMode::FullDuplexStreamed,
            BodyMode::FullDuplexStreamed,
        ))
        .await;
    for chunk in &chunks[..chunks.len() - 1] {
        stream.send(request_body(chunk, false)).await;
    }
    stream
        .send(request_body(&chunks[chunks.len() - 1], true))
        .await;
    let headers = stream.reply().await;
    assert_eq!(
        set_header(&headers, "content-length"),
        Some((body.len() + 4).to_string())
    );
    let mut total = 0;
    loop {
        let (chunk, end) = streamed(&stream.reply().await).expect("chunk");
        assert!(chunk.len() <= 62_000);
        total += chunk.len();
        if end {
            break;
        }
    }
    assert_eq!(total, body.len() + 4);
}

#[tokio::test]
async fn prefix_affinity_through_the_service() {
    let epp = TestEpp::start(&PODS, HERMETIC_CONFIG).await;
    for pod in PODS {
        epp.set_metrics(pod, metrics(0, 0.1, &[]));
    }
    let system = "You are a helpful assistant. ".repeat(40);
    let mut first = None;
    for question in 0..10 {
        let body = serde_json::json!({"model": "m", "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": format!("question {question}")}
        ]})
        .to_string();
        let mut stream = epp.stream().await;
        let outcome = send_request(
            &mut stream,
            BodyMode::FullDuplexStreamed,
            &Request::new(&[], body.into_bytes()),
        )
        .await;
        let chosen = outcome.destination().to_owned();
        let expected = first.get_or_insert(chosen.clone());
        assert_eq!(
            &chosen, expected,
            "question {question} left the endpoint holding its prefix"
        );
    }
}
