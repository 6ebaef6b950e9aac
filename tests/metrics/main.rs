//! The EPP's Prometheus page end to end: requests driven over ext_proc as Envoy sends them,
//! then `/metrics` scraped over HTTP from `--metrics-port`; and its protection with
//! TokenReview and SubjectAccessReview against the fake API server.

epp_testkit::loopback_epp!();

use epp_extproc::BodyMode;
use epp_testkit::driver::{Outcome, Request, send_request};
use epp_testkit::fake_apiserver::{FakeApiServer, inference_pool_v1};
use epp_testkit::messages::*;
use epp_testkit::prometheus::sample;
use epp_testkit::{HERMETIC_CONFIG, metrics};

/// GETs `/metrics` with an optional bearer token; returns the status and the body.
async fn scrape(epp: &TestEpp, token: Option<&str>) -> (u16, String) {
    epp_net::tls::install_crypto_provider();
    let url = format!(
        "http://127.0.0.1:{}/metrics",
        epp.running.metrics_address.port()
    );
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("scrape /metrics");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
}

const PAIR: &str = r#"{model_name="m",target_model_name="m"}"#;

#[tokio::test]
async fn requests_errors_tokens_and_scheduling_are_exported() {
    let epp = TestEpp::start(&["10.0.0.1:8000", "10.0.0.2:8000"], HERMETIC_CONFIG).await;
    epp.set_metrics("10.0.0.1:8000", metrics(0, 0.1, &[]));
    epp.set_metrics("10.0.0.2:8000", metrics(5, 0.9, &[]));

    // Three routed requests, each with a streamed response carrying usage.
    for _ in 0..3 {
        let mut stream = epp.stream().await;
        let routed = send_request(
            &mut stream,
            BodyMode::FullDuplexStreamed,
            &Request::new(&[], completion_body("m", "a prompt of some length to hash")),
        )
        .await;
        assert!(matches!(routed, Outcome::Routed { .. }));
        stream
            .exchange(
                response_headers(
                    &[(":status", "200"), ("content-type", "text/event-stream")],
                    false,
                ),
                1,
            )
            .await;
        let sse = b"data: {\"choices\":[]}\n\ndata: {\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5,\"total_tokens\":12}}\n\ndata: [DONE]\n\n";
        stream.exchange(response_body(sse, true), 1).await;
        stream.close_send();
        stream.end().await;
    }
    // Two bad requests: invalid JSON, and a body without a model.
    for body in [&b"{not json"[..], &br#"{"prompt":"p"}"#[..]] {
        let mut stream = epp.stream().await;
        let outcome = send_request(
            &mut stream,
            BodyMode::Buffered,
            &Request::new(&[], body.to_vec()),
        )
        .await;
        assert!(matches!(outcome, Outcome::Rejected(400, _)), "{outcome:?}");
    }

    let (status, page) = scrape(&epp, None).await;
    assert_eq!(status, 200, "standalone: /metrics is open");
    assert_eq!(
        sample(&page, &format!("inference_model_request_total{PAIR}")),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &page,
            r#"inference_model_request_error_total{error_code="BadRequest",model_name="",target_model_name=""}"#
        ),
        Some(2.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, &format!("inference_model_input_tokens_sum{PAIR}")),
        Some(21.0)
    );
    assert_eq!(
        sample(&page, &format!("inference_model_output_tokens_sum{PAIR}")),
        Some(15.0)
    );
    assert_eq!(
        sample(
            &page,
            &format!("inference_model_request_duration_seconds_count{PAIR}")
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&page, &format!("inference_model_request_sizes_count{PAIR}")),
        Some(3.0)
    );
    assert_eq!(
        sample(&page, r#"inference_model_running_requests{model_name="m"}"#),
        Some(0.0),
        "every stream ended"
    );
    assert_eq!(
        sample(
            &page,
            "inference_extension_scheduler_e2e_duration_seconds_count"
        ),
        Some(3.0)
    );
    for plugin in [
        r#"extension_point="Scorer",plugin_name="queue-scorer",plugin_type="queue-scorer""#,
        r#"extension_point="Scorer",plugin_name="prefix-cache-scorer",plugin_type="prefix-cache-scorer""#,
        r#"extension_point="Picker",plugin_name="max-score-picker",plugin_type="max-score-picker""#,
    ] {
        let series = format!("inference_extension_plugin_duration_seconds_count{{{plugin}}}");
        assert_eq!(sample(&page, &series), Some(3.0), "{series}\n{page}");
    }
    // The prompt is shorter than one block: every lookup matches 0 bytes.
    assert_eq!(
        sample(
            &page,
            r#"inference_extension_prefix_indexer_hit_bytes_bucket{le="0"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &page,
            r#"inference_extension_picks_total{reason="scheduled"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &page,
            r#"inference_extension_request_phase_duration_seconds_count{phase="schedule"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&page, "inference_extension_ext_proc_streams"),
        Some(0.0)
    );
    assert!(
        page.contains("inference_pool_per_pod_queue_size{"),
        "{page}"
    );
    assert!(page.contains("inference_extension_info{"), "{page}");
    assert!(
        sample(&page, "inference_extension_prefix_indexer_size").is_some(),
        "{page}"
    );
}

#[tokio::test]
async fn shed_and_unroutable_requests_are_counted_by_code() {
    let epp = TestEpp::start(&["10.0.0.1:8000"], HERMETIC_CONFIG).await;
    epp.set_metrics("10.0.0.1:8000", metrics(0, 0.1, &[]));
    let mut stream = epp.stream().await;
    let outcome = send_request(
        &mut stream,
        BodyMode::FullDuplexStreamed,
        &Request::new(&[], completion_body("m", "p")).subset(&["10.9.9.9:8000"]),
    )
    .await;
    assert!(matches!(outcome, Outcome::Rejected(503, _)), "{outcome:?}");
    let (_, page) = scrape(&epp, None).await;
    assert_eq!(
        sample(
            &page,
            r#"inference_model_request_error_total{error_code="ServiceUnavailable",model_name="m",target_model_name="m"}"#
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, &format!("inference_model_request_total{PAIR}")),
        None,
        "a rejected request is not counted as a request, as upstream"
    );
}

/// An EPP discovering pool `pool` through `server`, with the metrics auth flag as given.
async fn kube_epp(server: &FakeApiServer, auth: bool) -> KubeEpp {
    server.apply(inference_pool_v1(
        "default",
        "pool",
        &[("app", "vllm")],
        &[8000],
        "epp",
    ));
    KubeEpp::start_with(server, "inference.networking.k8s.io", |o| {
        o.metrics_endpoint_auth = auth;
    })
    .await
}

#[tokio::test]
async fn in_a_cluster_metrics_need_an_authorized_token() {
    let server = FakeApiServer::start().await;
    server.add_token(
        "prometheus-token",
        "system:serviceaccount:monitoring:prometheus",
        &["system:serviceaccounts"],
    );
    server.add_token("nosy-token", "system:serviceaccount:default:nosy", &[]);
    server.grant(
        "system:serviceaccount:monitoring:prometheus",
        "get",
        "/metrics",
    );
    let kube = kube_epp(&server, true).await;
    let epp = &kube.epp;

    assert_eq!(scrape(epp, None).await.0, 401, "no token");
    assert_eq!(scrape(epp, Some("forged")).await.0, 401, "unknown token");
    let (status, body) = scrape(epp, Some("nosy-token")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("system:serviceaccount:default:nosy"),
        "{body}"
    );
    let (status, page) = scrape(epp, Some("prometheus-token")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("inference_extension_info{"), "{page}");

    // Answers are cached: a second scrape asks the API server nothing new.
    let reviews = || {
        server
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("reviews"))
            .count()
    };
    let before = reviews();
    assert_eq!(scrape(epp, Some("prometheus-token")).await.0, 200);
    assert_eq!(reviews(), before);
}

#[tokio::test]
async fn metrics_endpoint_auth_false_serves_metrics_openly() {
    let server = FakeApiServer::start().await;
    let kube = kube_epp(&server, false).await;
    let (status, page) = scrape(&kube.epp, None).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        server
            .requests()
            .iter()
            .all(|r| !r.path.ends_with("reviews")),
        "no review was asked for"
    );
}
