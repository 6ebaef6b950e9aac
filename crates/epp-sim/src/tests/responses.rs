//! `/v1/responses`: the `response` object, input forms, the SSE event sequence and errors.

use serde_json::{Value, json};

use super::*;

/// `input_tokens` must be what `/tokenize` counts for the same conversation.
async fn chat_tokens(sim: &RunningSim, messages: Value) -> u64 {
    let reply = post(sim, "/tokenize", &json!({"messages": messages})).await;
    reply.json()["count"].as_u64().unwrap()
}

fn output_text(response: &Value) -> &str {
    let output = response["output"].as_array().unwrap();
    assert_eq!(output.len(), 1, "{response}");
    let message = &output[0];
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["status"], "completed");
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    let content = message["content"].as_array().unwrap();
    assert_eq!(content.len(), 1);
    assert_eq!(content[0]["type"], "output_text");
    content[0]["text"].as_str().unwrap()
}

#[tokio::test]
async fn a_response_holds_one_output_text_message_and_usage() {
    let sim = start_local(fast()).await;
    let model = sim.config().model.clone();
    let body = json!({"model": model, "input": "Tell me a story", "instructions": "Be brief."});
    let reply = post(&sim, "/v1/responses", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.server, sim.address().port().to_string());
    let v = reply.json();
    assert_eq!(v["object"], "response");
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["model"], model.as_str());
    assert_eq!(v["instructions"], "Be brief.");
    // No max_output_tokens: the answer ends on its own.
    assert_eq!(v["status"], "completed");
    assert_eq!(v["incomplete_details"], Value::Null);
    let text = output_text(&v);
    assert_eq!(text.split_whitespace().count(), 16, "{text}");
    let usage = &v["usage"];
    let messages = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me a story"},
    ]);
    let input_tokens = chat_tokens(&sim, messages).await;
    assert_eq!(usage["input_tokens"], input_tokens);
    assert_eq!(usage["output_tokens"], 16);
    assert_eq!(usage["total_tokens"], input_tokens + 16);
    assert_eq!(usage["input_tokens_details"]["cached_tokens"], 0);

    // Message items with content parts are the same conversation as the plain input.
    let items = json!({
        "instructions": "Be brief.",
        "input": [{"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "Tell me a story"}]}],
        "max_output_tokens": 3,
    });
    let v = post(&sim, "/v1/responses", &items).await.json();
    assert_eq!(v["usage"]["input_tokens"], input_tokens);
    assert_eq!(v["usage"]["output_tokens"], 3);
    // Cut short by the client's limit, as OpenAI reports it.
    assert_eq!(v["status"], "incomplete");
    assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(output_text(&v).split_whitespace().count(), 3);
    // The repeated conversation hits the prefix cache.
    assert!(
        v["usage"]["input_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "{v}"
    );
    sim.shutdown().await;
}

/// One SSE event: its `event:` name and its `data:` JSON.
fn parse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            let (name, data) = event
                .strip_prefix("event: ")
                .and_then(|e| e.split_once("\ndata: "))
                .unwrap_or_else(|| panic!("not an `event:` + `data:` SSE event: {event:?}"));
            (name.to_owned(), serde_json::from_str(data).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_streamed_response_sends_the_responses_event_sequence() {
    let sim = start_local(fast()).await;
    let body = json!({"input": "stream it", "stream": true, "sim": {"output_tokens": 5}});
    let response = client()
        .post(format!("{}/v1/responses", sim.url()))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let events = parse_events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(["response.output_text.delta"; 5]);
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, expected);
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i);
    }
    let created = &events[0].1["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    let message_id = events[2].1["item"]["id"].as_str().unwrap();
    for (_, data) in &events[3..11] {
        assert_eq!(data["item_id"], message_id);
        assert_eq!(data["output_index"], 0);
        assert_eq!(data["content_index"], 0);
    }
    assert_eq!(events[9].1["text"], deltas.as_str());
    let done = &events[12].1["response"];
    assert_eq!(done["id"], created["id"]);
    assert_eq!(done["status"], "completed");
    assert_eq!(output_text(done), deltas);
    assert_eq!(done["usage"]["output_tokens"], 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_streamed_response_cut_by_max_output_tokens_completes_with_status_incomplete() {
    let sim = start_local(fast()).await;
    let body = json!({"input": "x", "stream": true, "max_output_tokens": 2});
    let response = client()
        .post(format!("{}/v1/responses", sim.url()))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let events = parse_events(&response.text().await.unwrap());
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "response.completed");
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert_eq!(last["response"]["usage"]["output_tokens"], 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_responses_requests_get_vllm_errors_naming_the_field() {
    let sim = start_local(SimConfig {
        max_model_len: Some(100),
        ..fast()
    })
    .await;
    let cases = [
        (json!({}), 400, "input"),
        (json!({"input": []}), 400, "input"),
        (json!({"input": 3}), 400, "input"),
        (json!({"input": [{"type": "image"}]}), 400, "input"),
        (
            json!({"input": "x", "max_output_tokens": 0}),
            400,
            "max_output_tokens",
        ),
        (
            json!({"input": "x", "max_output_tokens": 200}),
            400,
            "max_output_tokens",
        ),
        (
            json!({"input": "x", "previous_response_id": "resp_1"}),
            400,
            "previous_response_id",
        ),
        (json!({"model": "nope", "input": "x"}), 404, "model"),
    ];
    for (body, status, param) in cases {
        let reply = post(&sim, "/v1/responses", &body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert_eq!(reply.json()["error"]["param"], param, "{body}");
    }
    // Function-call items are part of the conversation.
    let tools = json!({"input": [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    ], "max_output_tokens": 2});
    let reply = post(&sim, "/v1/responses", &tools).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(get(&sim, "/v1/responses").await.status, 405);
    sim.shutdown().await;
}
