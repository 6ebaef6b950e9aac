//! Response side: rows 8–11 of the upstream table, trailers, and BUFFERED responses.

use epp_extproc::BodyMode;
use epp_testkit::driver::{Request, send_request};
use epp_testkit::messages::*;
use epp_testkit::{ExtProcStream, HERMETIC_CONFIG, Next, metrics};

use crate::TestEpp;

async fn routed_stream(epp: &TestEpp, mode: BodyMode) -> ExtProcStream {
    let mut stream = epp.stream().await;
    send_request(
        &mut stream,
        mode,
        &Request::new(&[], completion_body("m", "p")),
    )
    .await;
    stream
}

async fn epp() -> TestEpp {
    let epp = TestEpp::start(&["10.0.0.1:8000"], HERMETIC_CONFIG).await;
    epp.set_metrics("10.0.0.1:8000", metrics(0, 0.1, &[]));
    epp
}

/// Sends response chunks and returns the echoed bytes, checking end-of-stream placement.
async fn echo(stream: &mut ExtProcStream, chunks: &[&[u8]]) -> Vec<u8> {
    let mut echoed = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let reply = stream
            .exchange(response_body(chunk, last), 1)
            .await
            .remove(0);
        assert_eq!(kind(&reply), "response_body");
        let (bytes, end) = streamed(&reply).expect("streamed echo");
        assert_eq!(end, last);
        echoed.extend(bytes);
    }
    echoed
}

#[tokio::test]
async fn row8_and_10_json_response_passes_through() {
    let epp = epp().await;
    let json = br#"{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
    for chunks in [vec![&json[..20], &json[20..]], vec![&json[..], &b""[..]]] {
        let mut stream = routed_stream(&epp, BodyMode::FullDuplexStreamed).await;
        let reply = stream
            .exchange(
                response_headers(
                    &[("content-type", "application/json"), (":status", "200")],
                    false,
                ),
                1,
            )
            .await
            .remove(0);
        assert_eq!(kind(&reply), "response_headers");
        assert_eq!(
            set_header(&reply, "x-went-into-resp-headers").as_deref(),
            Some("true")
        );
        assert_eq!(echo(&mut stream, &chunks).await, json);
    }
}

#[tokio::test]
async fn row9_non_json_response_unchanged() {
    let epp = epp().await;
    let mut stream = routed_stream(&epp, BodyMode::FullDuplexStreamed).await;
    stream
        .exchange(
            response_headers(&[("content-type", "text/plain")], false),
            1,
        )
        .await;
    assert_eq!(
        echo(&mut stream, &[b"no healthy upstream"]).await,
        b"no healthy upstream"
    );
}

#[tokio::test]
async fn row11_sse_chunks_are_echoed_one_by_one() {
    let epp = epp().await;
    let mut stream = routed_stream(&epp, BodyMode::FullDuplexStreamed).await;
    let reply = stream
        .exchange(
            response_headers(
                &[("content-type", "text/event-stream"), ("status", "200")],
                false,
            ),
            1,
        )
        .await
        .remove(0);
    assert_eq!(
        set_header(&reply, "x-went-into-resp-headers").as_deref(),
        Some("true")
    );
    let chunks: Vec<String> = (0..5)
        .map(|i| format!("data: {{\"choices\":[{{\"text\":\"{i}\"}}]}}\n\n"))
        .chain([
            "data: {\"usage\":{\"prompt_tokens\":7,\"total_tokens\":17,\"completion_tokens\":10}}\n\ndata: [DONE]\n\n".to_string(),
            String::new(),
        ])
        .collect();
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_bytes()).collect();
    assert_eq!(echo(&mut stream, &refs).await, chunks.concat().into_bytes());
}

#[tokio::test]
async fn trailers_are_answered() {
    let epp = epp().await;
    let mut stream = routed_stream(&epp, BodyMode::FullDuplexStreamed).await;
    stream
        .exchange(
            response_headers(&[("content-type", "application/grpc")], false),
            1,
        )
        .await;
    let reply = stream
        .exchange(response_body(b"\0\0\0\0\0", false), 1)
        .await
        .remove(0);
    assert_eq!(streamed(&reply).map(|(_, end)| end), Some(false));
    let reply = stream.exchange(response_trailers(), 1).await.remove(0);
    assert_eq!(kind(&reply), "response_trailers");
    stream.close_send();
    assert!(matches!(stream.end().await, Next::Closed));
}

#[tokio::test]
async fn response_trailers_end_the_response_not_its_body() {
    let epp = epp().await;
    let mut stream = routed_stream(&epp, BodyMode::FullDuplexStreamed).await;
    stream
        .exchange(
            response_headers(&[("content-type", "application/json")], false),
            1,
        )
        .await;
    // Envoy sends the body without end-of-stream when trailers follow; the echo keeps it.
    for chunk in [&b"{\"usage\":"[..], b"{}}"] {
        let reply = stream
            .exchange(response_body(chunk, false), 1)
            .await
            .remove(0);
        assert_eq!(streamed(&reply), Some((chunk.to_vec(), false)));
    }
    let reply = stream.exchange(response_trailers(), 1).await.remove(0);
    assert_eq!(kind(&reply), "response_trailers");
    stream.close_send();
    assert!(matches!(stream.end().await, Next::Closed));
}

#[tokio::test]
async fn buffered_response_body_gets_no_mutation() {
    let epp = epp().await;
    let mut stream = routed_stream(&epp, BodyMode::Buffered).await;
    stream
        .exchange(
            response_headers(&[("content-type", "application/json")], false),
            1,
        )
        .await;
    let reply = stream
        .exchange(response_body(b"{\"id\":1}", true), 1)
        .await
        .remove(0);
    assert_eq!(kind(&reply), "response_body");
    assert!(
        common(&reply).is_none(),
        "a BUFFERED body is answered without a mutation: {reply:?}"
    );
}

#[tokio::test]
async fn response_headers_with_end_of_stream() {
    let epp = epp().await;
    let mut stream = routed_stream(&epp, BodyMode::FullDuplexStreamed).await;
    let reply = stream
        .exchange(response_headers(&[(":status", "204")], true), 1)
        .await
        .remove(0);
    assert_eq!(kind(&reply), "response_headers");
    stream.send(response_body(b"late", true)).await;
    assert!(
        matches!(stream.end().await, Next::Error(s) if s.message().contains("after the response ended"))
    );
}
