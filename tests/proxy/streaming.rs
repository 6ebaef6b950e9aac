//! Responses stream through frame by frame (nothing is buffered), and a client that leaves
//! cancels the request at the model server and ends the EPP's in-flight accounting.

use std::time::{Duration, Instant};

use crate::{completion, eventually, h2c, header, http1, metric, simulated, url};

/// Reads an SSE completion of `tokens` tokens; returns (data events, body chunks read,
/// first chunk after, end after) measured from the request.
async fn stream_timings(
    client: reqwest::Client,
    target: String,
    tokens: u32,
) -> (usize, usize, Duration, Duration) {
    let started = Instant::now();
    let mut response = client
        .post(target)
        .body(completion("Tell me a story", tokens, true))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("text/event-stream"));
    let (mut events, mut chunks, mut first, mut text) = (0, 0, None, String::new());
    while let Some(chunk) = response.chunk().await.expect("a chunk") {
        chunks += 1;
        first.get_or_insert_with(|| started.elapsed());
        let chunk = String::from_utf8_lossy(&chunk).into_owned();
        events += chunk.matches("data: ").count();
        text.push_str(&chunk);
    }
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    (
        events,
        chunks,
        first.expect("a first chunk"),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_arrives_chunk_by_chunk_over_http1_and_h2c() {
    let epp = simulated(1, "", |_| {}).await;
    for (name, client) in [("HTTP/1.1", http1()), ("h2c", h2c())] {
        let (events, chunks, first, end) =
            stream_timings(client, url(&epp, "/v1/completions"), 64).await;
        // 64 tokens plus [DONE], one event per engine step.
        assert!(events >= 64, "{name}: {events} events");
        // The first token arrives long before the last, and the events one by one: not
        // buffered (a buffered answer comes as one or a few large chunks at the end).
        assert!(
            end - first > Duration::from_millis(100),
            "{name}: first chunk after {first:?}, end after {end:?}"
        );
        assert!(
            chunks >= 32,
            "{name}: {events} events in only {chunks} chunks"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_mid_stream_cancels_upstream_and_ends_in_flight() {
    let epp = simulated(1, "", |_| {}).await;
    let sim = &epp.running.simulated[0];
    for (round, client) in [http1(), h2c()].into_iter().enumerate() {
        let mut response = client
            .post(url(&epp, "/v1/completions"))
            .body(completion("A very long story", 4000, true))
            .send()
            .await
            .expect("answered");
        assert!(response.chunk().await.expect("a chunk").is_some());
        let endpoint = epp.datastore().snapshot().endpoints()[0].clone();
        assert_eq!(endpoint.in_flight(), 1, "the stream holds its pick");
        // The client leaves mid-stream (4000 tokens take tens of seconds).
        drop(response);
        drop(client);
        let want = round as u64 + 1;
        eventually("the model server aborts the request", || {
            sim.stats().requests_aborted == want
        })
        .await;
        eventually("in-flight accounting ends", || endpoint.in_flight() == 0).await;
        eventually("the cancellation is counted", || {
            metric(&epp, "inference_extension_proxy_client_cancellations_total") == want as f64
        })
        .await;
        assert_eq!(metric(&epp, "inference_extension_proxy_requests"), 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_before_the_answer_cancels_upstream() {
    let epp = simulated(1, "", |_| {}).await;
    let sim = &epp.running.simulated[0];
    // Not streamed: the server answers only when all 4000 tokens are done (tens of
    // seconds); the client gives up long before.
    let gave_up = http1()
        .post(url(&epp, "/v1/completions"))
        .timeout(Duration::from_millis(500))
        .body(completion("A very long story", 4000, false))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    eventually("the model server aborts the request", || {
        sim.stats().requests_aborted == 1
    })
    .await;
    let endpoint = epp.datastore().snapshot().endpoints()[0].clone();
    eventually("in-flight accounting ends", || endpoint.in_flight() == 0).await;
    eventually("the cancellation is counted", || {
        metric(&epp, "inference_extension_proxy_client_cancellations_total") == 1.0
    })
    .await;
    assert_eq!(metric(&epp, "inference_extension_proxy_requests"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_open_streams_finish() {
    let epp = simulated(1, "", |_| {}).await;
    let target = url(&epp, "/v1/completions");
    let proxy = epp.running.proxy_address.expect("router mode is on");
    let mut response = http1()
        .post(target)
        .body(completion("Tell me a story", 64, true))
        .send()
        .await
        .expect("answered");
    assert!(response.chunk().await.expect("a chunk").is_some());
    // SIGTERM's path: stop accepting, drain what is open.
    let crate::TestEpp { running } = epp;
    let stopping = tokio::spawn(running.shutdown(Duration::from_secs(30)));
    let mut rest = String::new();
    while let Some(chunk) = response.chunk().await.expect("the stream goes on") {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(rest.trim_end().ends_with("data: [DONE]"), "{rest}");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the EPP stops once the stream ended")
        .expect("the shutdown task");
    assert!(
        tokio::net::TcpStream::connect(proxy).await.is_err(),
        "no new connections after shutdown"
    );
}
