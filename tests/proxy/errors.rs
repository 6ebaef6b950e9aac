//! What the client gets when the EPP does not forward: the same statuses and bodies as the
//! ext_proc immediate responses, and 502/503/504 when the endpoint fails.

use bytes::Bytes;

use crate::{
    CONFIG, MODEL, TestEpp, completion, header, http1, metric, post_completion, resetting_upstream,
    router_mode, simulated, url,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_gets_413_declared_or_chunked() {
    let epp = simulated(1, "", |o| o.max_request_body_bytes = 1_000).await;
    let big = completion(&"x".repeat(2_000), 1, false);
    let response = post_completion(&epp, big.clone()).await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.text().await.expect("text"),
        "inference gateway: PayloadTooLarge - request body exceeds the limit of 1000 bytes"
    );
    // Chunked, without a declared length: cut off when it passes the limit.
    let chunks: Vec<Result<Bytes, std::io::Error>> = big
        .into_bytes()
        .chunks(300)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let response = http1()
        .post(url(&epp, "/v1/completions"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 413);
    assert_eq!(
        metric(
            &epp,
            "inference_model_request_error_total{error_code=\"PayloadTooLarge\",model_name=\"\",target_model_name=\"\"}"
        ),
        2.0
    );
    // Just under the limit is served.
    let response = post_completion(&epp, completion("small", 1, false)).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_budget_exhausted_gets_503() {
    let epp = simulated(1, "", |o| o.max_buffered_request_bytes = 100).await;
    let response = post_completion(&epp, completion(&"y".repeat(200), 1, false)).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.text().await.expect("text"),
        "inference gateway: ServiceUnavailable - request body buffer budget exhausted"
    );
    assert_eq!(
        metric(&epp, "inference_extension_buffer_budget_rejections_total"),
        1.0
    );
    assert_eq!(
        metric(&epp, "inference_extension_buffered_request_bytes"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_gets_400() {
    let epp = simulated(1, "", |_| {}).await;
    let response = post_completion(&epp, "{not json").await;
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .expect("text")
            .starts_with("inference gateway: BadRequest - "),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_pool_gets_503() {
    let epp = TestEpp::start_with(&[], CONFIG, router_mode).await;
    let response = post_completion(&epp, completion("hi", 1, false)).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.text().await.expect("text"),
        "inference gateway: ServiceUnavailable - failed to find candidate pods for serving the request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_down_gets_503_and_reset_gets_502() {
    // Nothing listens on a port just freed.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").to_string()
    };
    let epp = TestEpp::start_with(&[closed.as_str()], CONFIG, router_mode).await;
    let response = post_completion(&epp, completion("hi", 1, false)).await;
    assert_eq!(response.status(), 503);
    assert_eq!(header(&response, "x-gateway-destination-endpoint"), closed);
    let text = response.text().await.expect("text");
    assert!(text.contains("upstream connect error"), "{text}");
    assert_eq!(
        metric(
            &epp,
            "inference_extension_proxy_upstream_errors_total{reason=\"connect\"}"
        ),
        1.0
    );
    // Counted as ext_proc counts a gateway's 503 for an unreachable model server.
    let pair = format!("model_name=\"{MODEL}\",target_model_name=\"{MODEL}\"");
    assert_eq!(
        metric(
            &epp,
            &format!(
                "inference_model_request_error_total{{error_code=\"ModelServerError\",{pair}}}"
            )
        ),
        1.0
    );

    let resetting = resetting_upstream().await.to_string();
    let epp = TestEpp::start_with(&[resetting.as_str()], CONFIG, router_mode).await;
    let response = post_completion(&epp, completion("hi", 1, false)).await;
    assert_eq!(response.status(), 502);
    assert!(
        response
            .text()
            .await
            .expect("text")
            .contains("upstream reset")
    );
    assert_eq!(
        metric(
            &epp,
            "inference_extension_proxy_upstream_errors_total{reason=\"reset\"}"
        ),
        1.0
    );
    for endpoint in epp.datastore().snapshot().endpoints() {
        assert_eq!(endpoint.in_flight(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_not_accepting_gets_504_after_the_connect_timeout() {
    // A listener that never accepts, its backlog already full: new SYNs are dropped, so a
    // connection attempt hangs until the client gives up.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let address = socket.local_addr().expect("address");
    let listener = socket.listen(1).expect("listen");
    let mut queued = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            std::time::Duration::from_millis(100),
            tokio::net::TcpStream::connect(address),
        )
        .await
        {
            Ok(Ok(stream)) => queued.push(stream),
            _ => break, // the backlog is full
        }
    }
    let endpoint = address.to_string();
    let epp = TestEpp::start_with(&[endpoint.as_str()], CONFIG, |o| {
        router_mode(o);
        o.proxy_connect_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let started = std::time::Instant::now();
    let response = post_completion(&epp, completion("hi", 1, false)).await;
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert!(
        response
            .text()
            .await
            .expect("text")
            .contains("upstream connect timeout")
    );
    assert_eq!(
        metric(
            &epp,
            "inference_extension_proxy_upstream_errors_total{reason=\"connect_timeout\"}"
        ),
        1.0
    );
    drop((listener, queued));
}
