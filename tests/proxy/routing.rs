//! Requests are routed by the director and answered by the endpoint it picked; the headers
//! of the router mode (request id, destination, subset, testing, model rewrite) do what the
//! README says.

use crate::{
    CONFIG, MODEL, TestEpp, completion, echo_upstream, eventually, h2c, header, http1, metric,
    post_completion, router_mode, simulated, url,
};

async fn json(response: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&response.bytes().await.expect("a body")).expect("a JSON body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_is_routed_answered_and_counted() {
    let epp = simulated(2, "", |_| {}).await;
    let response = post_completion(&epp, completion("Hello there", 4, false)).await;
    assert_eq!(response.status(), 200);
    // The client is told which endpoint served, and it is the simulator that answered.
    let destination = header(&response, "x-gateway-destination-endpoint").to_owned();
    let served_by = header(&response, "x-sim-server").to_owned();
    assert_eq!(destination, format!("127.0.0.1:{served_by}"));
    assert!(
        epp.running
            .simulated
            .iter()
            .any(|s| s.address().to_string() == destination)
    );
    let request_id = header(&response, "x-request-id").to_owned();
    assert_eq!(request_id.len(), 36, "a generated UUID: {request_id}");
    let body = json(response).await;
    assert_eq!(body["usage"]["completion_tokens"], 4);

    // Response-side metrics as ext_proc records them.
    let pair = format!("model_name=\"{MODEL}\",target_model_name=\"{MODEL}\"");
    assert_eq!(
        metric(&epp, &format!("inference_model_request_total{{{pair}}}")),
        1.0
    );
    eventually("the response is recorded", || {
        metric(
            &epp,
            &format!("inference_model_request_duration_seconds_count{{{pair}}}"),
        ) == 1.0
    })
    .await;
    assert_eq!(
        metric(
            &epp,
            &format!("inference_model_output_tokens_sum{{{pair}}}")
        ),
        4.0
    );
    assert!(
        metric(
            &epp,
            &format!("inference_model_response_sizes_sum{{{pair}}}")
        ) > 100.0
    );
    assert_eq!(metric(&epp, "inference_extension_proxy_requests"), 0.0);
    // The in-flight count of the pick is back to 0.
    for endpoint in epp.datastore().snapshot().endpoints() {
        assert_eq!(endpoint.in_flight(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_requests_are_served() {
    let epp = simulated(1, "", |_| {}).await;
    let response = h2c()
        .post(url(&epp, "/v1/chat/completions"))
        .body(
            serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
                .to_string(),
        )
        .send()
        .await
        .expect("answered");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body["object"], "chat.completion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodyless_requests_go_to_an_endpoint() {
    let epp = simulated(1, "", |_| {}).await;
    let response = http1()
        .get(url(&epp, "/v1/models"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body["data"][0]["id"], MODEL);
}

/// An EPP over the echo upstream, which answers with what it received.
async fn over_echo() -> (TestEpp, String) {
    let upstream = echo_upstream().await.to_string();
    let epp = TestEpp::start_with(&[upstream.as_str()], CONFIG, router_mode).await;
    (epp, upstream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_propagated_both_ways() {
    let (epp, upstream) = over_echo().await;
    let response = http1()
        .post(url(&epp, "/v1/completions?x=1"))
        .header("x-request-id", "rid-42")
        .header("authorization", "Bearer k")
        .header("x-gateway-destination-endpoint", "6.6.6.6:1")
        .body(completion("Hello", 1, false))
        .send()
        .await
        .expect("answered");
    assert_eq!(header(&response, "x-request-id"), "rid-42");
    assert_eq!(
        header(&response, "x-gateway-destination-endpoint"),
        upstream
    );
    let echo = json(response).await;
    let seen = &echo["headers"];
    assert_eq!(echo["path"], "/v1/completions");
    assert_eq!(seen["x-request-id"], "rid-42");
    assert_eq!(seen["authorization"], "Bearer k");
    // The client's routing header is replaced, not forwarded.
    assert_eq!(seen["x-gateway-destination-endpoint"], upstream.as_str());
    assert_eq!(seen["host"], upstream.as_str());

    // Without one, the generated id goes upstream and back.
    let response = post_completion(&epp, completion("Hello", 1, false)).await;
    let generated = header(&response, "x-request-id").to_owned();
    let echo = json(response).await;
    assert_eq!(echo["headers"]["x-request-id"], generated.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_rewrite_header_rewrites_the_body_sent() {
    let (epp, _) = over_echo().await;
    let response = http1()
        .post(url(&epp, "/v1/completions"))
        .header("x-gateway-model-name-rewrite", "served-model")
        .body(completion("Hello", 1, false))
        .send()
        .await
        .expect("answered");
    let echo = json(response).await;
    let sent: serde_json::Value =
        serde_json::from_str(echo["body"].as_str().expect("body text")).expect("JSON body");
    assert_eq!(sent["model"], "served-model");
    assert_eq!(sent["prompt"], "Hello");
    assert_eq!(
        echo["headers"]["content-length"],
        echo["body"]
            .as_str()
            .map(|b| b.len().to_string())
            .as_deref()
            .unwrap_or_default()
    );
    assert_eq!(
        metric(
            &epp,
            &format!(
                "inference_model_request_total{{model_name=\"{MODEL}\",target_model_name=\"served-model\"}}"
            )
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subset_header_limits_the_pick() {
    let epp = simulated(3, "", |_| {}).await;
    let allowed = epp.running.simulated[2].address().to_string();
    for i in 0..8 {
        let response = http1()
            .post(url(&epp, "/v1/completions"))
            .header(
                "x-gateway-destination-endpoint-subset",
                format!("10.9.9.9:1, {allowed}"),
            )
            .body(completion(&format!("prompt {i}"), 1, false))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-gateway-destination-endpoint"), allowed);
    }
    // A subset with no endpoint of the pool: 503, as ext_proc answers.
    let response = http1()
        .post(url(&epp, "/v1/completions"))
        .header("x-gateway-destination-endpoint-subset", "10.9.9.9:1")
        .body(completion("hi", 1, false))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.text().await.expect("text"),
        "inference gateway: ServiceUnavailable - failed to find candidate pods for serving the request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testing_header_picks_the_named_endpoint() {
    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/plugins-config/conformance-plugins.yaml"
    ))
    .expect("conformance config");
    let epp = TestEpp::start_with(&[], &config, |o| {
        o.endpoint_source = epp::cli::EndpointSource::Simulated(3);
        o.simulate_endpoints = 3;
        router_mode(o);
    })
    .await;
    for sim in &epp.running.simulated {
        let named = sim.address().to_string();
        let response = http1()
            .post(url(&epp, "/v1/completions"))
            .header("test-epp-endpoint-selection", named.as_str())
            .body(completion("same prompt", 1, false))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-gateway-destination-endpoint"), named);
        assert_eq!(
            header(&response, "x-sim-server"),
            sim.address().port().to_string()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_records_routed_requests() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("requests.jsonl");
    let log_path = path.clone();
    let epp = simulated(1, "", move |o| o.request_log_file = Some(log_path)).await;
    let response = http1()
        .post(url(&epp, "/v1/completions"))
        .header("x-session-id", "s-1")
        .body(completion("Hello log", 3, false))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let destination = header(&response, "x-gateway-destination-endpoint").to_owned();
    let _ = response.bytes().await.expect("the body");
    let mut line = String::new();
    eventually("the request is logged", || {
        line = std::fs::read_to_string(&path).unwrap_or_default();
        line.ends_with('\n')
    })
    .await;
    let entry: serde_json::Value = serde_json::from_str(line.trim()).expect("a JSON line");
    assert_eq!(entry["endpoint"], destination.as_str());
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["output_tokens"], 3);
    assert_eq!(entry["session"], "s-1");
    assert_eq!(entry["model"], MODEL);
    assert!(!line.contains("Hello log"), "no prompt text in the log");
}
