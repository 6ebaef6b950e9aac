//! `/v1/embeddings`: vLLM's shapes, deterministic unit vectors, `dimensions`, base64, limits,
//! and the prefill-only pass through the engine.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::*;

fn vector(item: &Value) -> Vec<f64> {
    item["embedding"]
        .as_array()
        .unwrap_or_else(|| panic!("no embedding in {item}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[tokio::test]
async fn each_input_gets_a_deterministic_unit_vector_and_usage_counts_its_tokens() {
    let sim = start_local(fast()).await;
    let model = sim.config().model.clone();
    // 12 bytes → 3 tokens, 5 bytes → 2 tokens.
    let body = json!({"model": model, "input": ["hello world!", "again"]});
    let reply = post(&sim, "/v1/embeddings", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.server, sim.address().port().to_string());
    let v = reply.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], model.as_str());
    assert!(
        v["id"].as_str().unwrap().starts_with("embd-"),
        "{}",
        v["id"]
    );
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["object"], "embedding");
        let values = vector(item);
        assert_eq!(values.len(), 1024, "the default dimension");
        assert!((norm(&values) - 1.0).abs() < 1e-4, "{}", norm(&values));
    }
    assert_ne!(vector(&data[0]), vector(&data[1]));
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], 0);

    // The same text gives the same vector, alone or in a list, on any server of the model.
    let other = start_local(fast()).await;
    let single = post(&other, "/v1/embeddings", &json!({"input": "again"}))
        .await
        .json();
    assert_eq!(vector(&single["data"][0]), vector(&data[1]));
    // Token ids are inputs too: one list, or a list of lists.
    let ids = post(&sim, "/v1/embeddings", &json!({"input": [[1, 2, 3], [4]]}))
        .await
        .json();
    assert_eq!(ids["data"].as_array().unwrap().len(), 2);
    assert_eq!(ids["usage"]["prompt_tokens"], 4);
    sim.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn dimensions_keep_a_renormalised_prefix_and_base64_carries_the_same_floats() {
    let sim = start_local(SimConfig {
        embedding_dim: 64,
        ..fast()
    })
    .await;
    let reply = post(&sim, "/v1/embeddings", &json!({"input": "matryoshka"})).await;
    let full = vector(&reply.json()["data"][0]);
    assert_eq!(full.len(), 64);
    // Each value is written as the shortest decimal of its f32 (at most 12 characters with a
    // sign, point and comma), as vLLM sends them, not as a 17-digit f64.
    assert!(reply.body.len() < 64 * 13 + 300, "{}", reply.body);
    let short = vector(
        &post(
            &sim,
            "/v1/embeddings",
            &json!({"input": "matryoshka", "dimensions": 16}),
        )
        .await
        .json()["data"][0],
    );
    assert_eq!(short.len(), 16);
    let prefix_norm = norm(&full[..16]);
    for (s, f) in short.iter().zip(&full) {
        assert!((s - f / prefix_norm).abs() < 1e-5, "{s} vs {f}");
    }

    let encoded = post(
        &sim,
        "/v1/embeddings",
        &json!({"input": "matryoshka", "encoding_format": "base64"}),
    )
    .await
    .json();
    let bytes = STANDARD
        .decode(encoded["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f64> = bytes
        .chunks_exact(4)
        .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .collect();
    assert_eq!(decoded.len(), 64);
    for (d, f) in decoded.iter().zip(&full) {
        assert!((d - f).abs() < 1e-6, "{d} vs {f}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_embedding_requests_get_vllm_errors_naming_the_field() {
    let sim = start_local(SimConfig {
        embedding_dim: 64,
        max_model_len: Some(100),
        ..fast()
    })
    .await;
    let too_many = vec!["x"; crate::embeddings::MAX_VALUES_PER_RESPONSE / 64 + 1];
    let cases = [
        (json!({"input": "x", "dimensions": 65}), 400, "dimensions"),
        (json!({"input": "x", "dimensions": 0}), 400, "dimensions"),
        (
            json!({"input": "x", "encoding_format": "hex"}),
            400,
            "encoding_format",
        ),
        (json!({"input": 7}), 400, "input"),
        (json!({"input": []}), 400, "input"),
        (json!({}), 400, "input"),
        (json!({"input": "x".repeat(400)}), 400, "input"),
        (json!({"input": too_many}), 400, "input"),
        (json!({"model": "nope", "input": "x"}), 404, "model"),
    ];
    for (body, status, param) in cases {
        let reply = post(&sim, "/v1/embeddings", &body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert_eq!(reply.json()["error"]["param"], param, "{body}");
    }
    // At the limit of values per response, the request is served.
    let at_limit = vec!["x"; crate::embeddings::MAX_VALUES_PER_RESPONSE / 64];
    let reply = post(&sim, "/v1/embeddings", &json!({"input": at_limit})).await;
    assert_eq!(reply.status, 200);
    let wrong_method = get(&sim, "/v1/embeddings").await;
    assert_eq!(wrong_method.status, 405);
    sim.shutdown().await;
}

#[tokio::test]
async fn embeddings_are_prefilled_by_the_engine_and_show_in_its_metrics() {
    // 10 ms per prefill token at full speed: 400 tokens take about 4 s scaled by 0.1.
    let mut config = fast();
    config.step_time.per_prefill_token = Duration::from_millis(10);
    let sim = start_local(config).await;
    let model = sim.config().model.clone();
    let labels = [("model_name", model.as_str())];
    let before = scrape(&sim).await;
    let prompt_tokens = |s: &[Sample]| sample_value(s, "vllm:prompt_tokens_total", &labels);
    let started = std::time::Instant::now();
    let reply = post(
        &sim,
        "/v1/embeddings",
        &json!({"input": "abcd".repeat(400)}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "prefill time was not simulated: {:?}",
        started.elapsed()
    );
    let after = scrape(&sim).await;
    assert_eq!(
        prompt_tokens(&after).unwrap() - prompt_tokens(&before).unwrap(),
        400.0
    );
    let finished = |s: &[Sample]| {
        sample_value(
            s,
            "vllm:request_success_total",
            &[
                ("model_name", model.as_str()),
                ("finished_reason", "length"),
            ],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(finished(&after) - finished(&before), 1.0);
    sim.shutdown().await;
}
