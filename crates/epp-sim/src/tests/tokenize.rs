//! `POST /tokenize`: vLLM's shape, and the same tokens the engine sees.

use serde_json::{Value, json};

use super::*;

fn ids(v: &Value) -> Vec<u64> {
    v["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_u64().expect("an id"))
        .collect()
}

fn le_ids(text: &[u8]) -> Vec<u64> {
    text.chunks(4)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            u64::from(u32::from_le_bytes(b))
        })
        .collect()
}

#[tokio::test]
async fn the_completion_form_gives_the_engine_tokens_in_vllm_shape() {
    let sim = start_local(fast()).await;
    let model = sim.config().model.clone();
    let body = json!({"model": model, "prompt": "hello world!!", "add_special_tokens": true});
    let reply = post(&sim, "/tokenize", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["count", "max_model_len", "token_strs", "tokens"]);
    assert_eq!(ids(&v), le_ids(b"hello world!!"));
    assert_eq!(v["count"], 4);
    assert_eq!(v["token_strs"], Value::Null);
    let models = get(&sim, "/v1/models").await.json();
    assert_eq!(v["max_model_len"], models["data"][0]["max_model_len"]);

    let completion = json!({"model": model, "prompt": "hello world!!", "max_tokens": 1});
    let usage = post(&sim, "/v1/completions", &completion).await.json()["usage"].clone();
    assert_eq!(usage["prompt_tokens"], v["count"]);

    let strs = json!({"prompt": "hello world!!", "return_token_strs": true});
    let v = post(&sim, "/tokenize", &strs).await.json();
    assert_eq!(v["token_strs"], json!(["hell", "o wo", "rld!", "!"]));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_chat_form_applies_the_chat_template_of_chat_completions() {
    let sim = start_local(fast()).await;
    let messages = json!([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi there"}]},
    ]);
    let body = json!({"messages": messages, "return_token_strs": true});
    let v = post(&sim, "/tokenize", &body).await.json();
    let text: String = v["token_strs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let template = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nbe brief<|eot_id|>\
        <|start_header_id|>user<|end_header_id|>\n\nhi there<|eot_id|>\
        <|start_header_id|>assistant<|end_header_id|>\n\n";
    assert_eq!(text, template);
    assert_eq!(ids(&v), le_ids(template.as_bytes()));

    let chat = json!({"messages": messages, "max_tokens": 1});
    let usage = post(&sim, "/v1/chat/completions", &chat).await.json()["usage"].clone();
    assert_eq!(usage["prompt_tokens"], v["count"]);

    // Without the generation prompt: the closed turns only.
    let closed = json!({"messages": messages, "add_generation_prompt": false});
    let closed = ids(&post(&sim, "/tokenize", &closed).await.json());
    let end = template.find("<|start_header_id|>assistant").unwrap();
    assert_eq!(closed, le_ids(&template.as_bytes()[..end]));
    sim.shutdown().await;
}

#[tokio::test]
async fn token_id_prompts_are_echoed() {
    let sim = start_local(fast()).await;
    let v = post(&sim, "/tokenize", &json!({"prompt": [5, 6, 70000]}))
        .await
        .json();
    assert_eq!(ids(&v), [5, 6, 70000]);
    assert_eq!(v["count"], 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_are_answered_as_vllm_does() {
    let sim = start_local(fast()).await;
    let unknown = post(&sim, "/tokenize", &json!({"model": "nope", "prompt": "x"})).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.json()["error"]["param"], "model");
    let cases = [
        json!("not an object"),
        json!({"model": sim.config().model}),
        json!({"prompt": 5}),
        json!({"prompt": [-1]}),
        json!({"messages": []}),
        json!({"messages": [{"role": "user", "content": "x"}],
               "add_generation_prompt": true, "continue_final_message": true}),
    ];
    for body in cases {
        let reply = post(&sim, "/tokenize", &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert_eq!(reply.json()["error"]["code"], 400);
    }
    let garbage = client()
        .post(format!("{}/tokenize", sim.url()))
        .body("{not json");
    assert_eq!(send(garbage).await.status, 400);
    assert_eq!(get(&sim, "/tokenize").await.status, 405);
    let v1 = post(&sim, "/v1/tokenize", &json!({"prompt": "x"})).await;
    assert_eq!(v1.status, 404, "vLLM serves /tokenize only");
    sim.shutdown().await;
}
