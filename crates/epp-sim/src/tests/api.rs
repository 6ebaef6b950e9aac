//! The OpenAI surface: JSON and SSE shapes, usage, errors, models.

use serde_json::{Value, json};

use super::*;

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

#[tokio::test]
async fn completion_returns_text_usage_and_the_requested_model() {
    let sim = start_local(fast()).await;
    let model = sim.config().model.clone();
    // "hello world!" is 12 bytes: 3 tokens.
    let body = json!({"model": model, "prompt": "hello world!", "max_tokens": 5});
    let reply = post(&sim, "/v1/completions", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.server, sim.address().port().to_string());
    let v = reply.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["model"], model.as_str());
    assert_eq!(words(v["choices"][0]["text"].as_str().unwrap()), 5);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], 8);
    sim.shutdown().await;
}

#[tokio::test]
async fn prompt_lists_and_token_ids_are_accepted() {
    let sim = start_local(fast()).await;
    let cases = [
        (json!(["a", "bbbbbbbbb"]), 2, 1 + 3),
        (json!([1, 2, 3]), 1, 3),
        (json!([[1, 2], [3, 4, 5, 6]]), 2, 6),
    ];
    for (prompt, choices, prompt_tokens) in cases {
        let body = json!({"prompt": prompt, "max_tokens": 2});
        let v = post(&sim, "/v1/completions", &body).await.json();
        let list = v["choices"].as_array().unwrap();
        assert_eq!(list.len(), choices, "{prompt}");
        for (i, choice) in list.iter().enumerate() {
            assert_eq!(choice["index"], i);
        }
        assert_eq!(v["usage"]["prompt_tokens"], prompt_tokens, "{prompt}");
        assert_eq!(v["usage"]["completion_tokens"], 2 * choices, "{prompt}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn output_length_follows_max_tokens_the_default_the_cap_and_the_extension() {
    let sim = start_local(SimConfig {
        max_output_tokens: 20,
        ..fast()
    })
    .await;
    let cases = [
        (json!({"prompt": "x"}), 16),
        (json!({"prompt": "x", "max_tokens": 3}), 3),
        (json!({"prompt": "x", "max_completion_tokens": 4}), 4),
        (json!({"prompt": "x", "max_tokens": 500}), 20),
        (
            json!({"prompt": "x", "max_tokens": 500, "sim": {"output_tokens": 7}}),
            7,
        ),
    ];
    for (body, want) in cases {
        let v = post(&sim, "/v1/completions", &body).await.json();
        assert_eq!(v["usage"]["completion_tokens"], want, "{body}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn chat_returns_an_assistant_message() {
    let sim = start_local(fast()).await;
    let body = json!({
        "model": sim.config().model,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": 4,
    });
    let v = post(&sim, "/v1/chat/completions", &body).await.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let message = &v["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    assert_eq!(words(message["content"].as_str().unwrap()), 4);
    assert!(
        v["usage"]["prompt_tokens"].as_u64().unwrap() > 10,
        "the chat template counts"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn completion_stream_sends_tokens_usage_and_done() {
    let sim = start_local(fast()).await;
    let body = json!({
        "prompt": "abcdefgh", "max_tokens": 6, "stream": true,
        "stream_options": {"include_usage": true},
    });
    let chunks = stream(&sim, "/v1/completions", &body).await.chunks();
    let (usage_chunk, token_chunks) = chunks.split_last().unwrap();
    assert_eq!(token_chunks.len(), 6);
    let text: String = token_chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(words(&text), 6);
    assert!(
        token_chunks
            .iter()
            .all(|c| c["object"] == "text_completion")
    );
    assert!(
        token_chunks[..5]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );
    assert_eq!(token_chunks[5]["choices"][0]["finish_reason"], "length");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 2);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 6);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 8);
    sim.shutdown().await;
}

#[tokio::test]
async fn chat_stream_starts_with_the_role_and_has_no_usage_unless_asked() {
    let sim = start_local(fast()).await;
    let body =
        json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": true});
    let chunks = stream(&sim, "/v1/chat/completions", &body).await.chunks();
    assert_eq!(chunks.len(), 4, "a role chunk and three content chunks");
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert!(chunk.get("usage").is_none());
    }
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "length");
    sim.shutdown().await;
}

#[tokio::test]
async fn models_lists_the_base_model_and_adapters() {
    let config = SimConfig {
        lora_modules: vec!["food-review-1".into(), "sql".into()],
        ..fast()
    };
    let sim = start_local(config).await;
    let v = get(&sim, "/v1/models").await.json();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [sim.config().model.as_str(), "food-review-1", "sql"]);
    assert_eq!(v["data"][1]["parent"], sim.config().model.as_str());
    // An adapter is servable and echoed.
    let body = json!({"model": "sql", "prompt": "select", "max_tokens": 1});
    assert_eq!(
        post(&sim, "/v1/completions", &body).await.json()["model"],
        "sql"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_have_vllm_shapes_and_statuses() {
    let sim = start_local(SimConfig {
        max_model_len: Some(100),
        ..fast()
    })
    .await;
    let long = "x".repeat(4 * 99);
    let cases: [(&str, &str, u16, &str); 6] = [
        (
            "/v1/completions",
            r#"{"model": "nope", "prompt": "hi"}"#,
            404,
            "NotFoundError",
        ),
        (
            "/v1/completions",
            r#"{"prompt": "hi""#,
            400,
            "BadRequestError",
        ),
        (
            "/v1/chat/completions",
            r#"{"messages": []}"#,
            400,
            "BadRequestError",
        ),
        (
            "/v1/completions",
            r#"{"prompt": {"a": 1}}"#,
            400,
            "BadRequestError",
        ),
        (
            "/v1/completions",
            r#"{"prompt": "hi", "max_tokens": 0}"#,
            400,
            "BadRequestError",
        ),
        (
            "/v1/completions",
            &format!(r#"{{"prompt": "{long}", "max_tokens": 2}}"#),
            400,
            "BadRequestError",
        ),
    ];
    for (path, body, status, kind) in cases {
        let request = client()
            .post(format!("{}{path}", sim.url()))
            .body(body.to_owned());
        let reply = send(request).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        let v = reply.json();
        assert_eq!(v["error"]["type"], kind, "{body}");
        assert_eq!(v["error"]["code"], status);
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let missing = post(
        &sim,
        "/v1/completions",
        &json!({"model": "nope", "prompt": "x"}),
    )
    .await;
    assert_eq!(
        missing.json()["error"]["message"],
        "The model `nope` does not exist."
    );
    assert_eq!(get(&sim, "/health").await.status, 200);
    assert_eq!(get(&sim, "/nowhere").await.status, 404);
    assert_eq!(get(&sim, "/v1/completions").await.status, 405);
    sim.shutdown().await;
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let sim = start_local(fast()).await;
    epp_net::tls::install_crypto_provider();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let response = h2
        .post(format!("{}/v1/completions", sim.url()))
        .body(json!({"prompt": "hi", "max_tokens": 2}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let v: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 2);
    sim.shutdown().await;
}
