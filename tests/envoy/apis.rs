//! The OpenAI APIs beyond completions and chat: `/v1/embeddings` and `/v1/responses` (JSON and
//! streamed) are routed by the EPP to its pick and answered by that simulator, in both body
//! modes.

use serde_json::{Value, json};

use crate::client::assert_routed;
use crate::harness::{MODEL, Setup, Stack, TEST_TIMEOUT, within};

async fn embeddings_and_responses_are_routed(stack: &Stack) {
    let embed = json!({"model": MODEL, "input": ["the first text", "the second text"]});
    let reply = stack
        .http
        .post(&stack.url("/v1/embeddings"), &embed, &[])
        .await;
    assert_routed(&reply);
    let v = reply.json();
    assert_eq!(v["object"], "list", "{v}");
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert!(
        data.iter()
            .all(|d| d["embedding"].as_array().is_some_and(|e| !e.is_empty()))
    );
    assert_eq!(v["usage"]["prompt_tokens"], 4 + 4);

    let respond = json!({
        "model": MODEL, "instructions": "You are a food critic.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Best dish?"}]}],
        "max_output_tokens": 6,
    });
    let reply = stack
        .http
        .post(&stack.url("/v1/responses"), &respond, &[])
        .await;
    assert_routed(&reply);
    let v = reply.json();
    assert_eq!(v["object"], "response", "{v}");
    assert_eq!(v["usage"]["output_tokens"], 6);
    let text = v["output"][0]["content"][0]["text"]
        .as_str()
        .expect("output_text");
    assert_eq!(text.split_whitespace().count(), 6, "{text}");

    let mut streamed = respond.clone();
    streamed["stream"] = Value::Bool(true);
    let reply = stack
        .http
        .post(&stack.url("/v1/responses"), &streamed, &[])
        .await;
    assert_routed(&reply);
    let body = reply.text();
    let deltas = body.matches("event: response.output_text.delta\n").count();
    assert_eq!(deltas, 6, "{body}");
    assert!(
        body.trim_end().lines().rev().nth(1) == Some("event: response.completed"),
        "the stream ends with the final response event: {body}"
    );

    // The EPP reads both usage shapes: the embeddings' prompt tokens, and the Responses
    // API's input/output tokens (JSON, and inside the streamed `response.completed`).
    let labels = [("model_name", MODEL), ("target_model_name", MODEL)];
    let page = stack
        .epp_metrics_when("inference_model_output_tokens_sum", &labels, 12.0)
        .await;
    let sample = |name| crate::client::sample(&page, name, &labels);
    // Embeddings have no output tokens, and zero is not observed (as upstream).
    assert_eq!(sample("inference_model_output_tokens_count"), Some(2.0));
    assert_eq!(sample("inference_model_input_tokens_count"), Some(3.0));
    let input = v["usage"]["input_tokens"].as_f64().expect("input_tokens");
    assert_eq!(
        sample("inference_model_input_tokens_sum"),
        Some(8.0 + 2.0 * input)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_duplex_routes_embeddings_and_responses() {
    let stack = Setup::new("full-duplex.yaml").start().await;
    within(TEST_TIMEOUT, embeddings_and_responses_are_routed(&stack)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_routes_embeddings_and_responses() {
    let stack = Setup::new("buffered.yaml").start().await;
    within(TEST_TIMEOUT, async {
        embeddings_and_responses_are_routed(&stack).await;
        // The documented limit of buffered.yaml: Envoy buffers the response body too, and one
        // over the listener's 32 KiB (here four 1024-dimension vectors, about 50 KB) ends in
        // a 500 from Envoy although the simulator answered 200.
        let inputs = ["a", "b", "c", "d"];
        let embed = json!({"model": MODEL, "input": inputs});
        let reply = stack
            .http
            .post(&stack.url("/v1/embeddings"), &embed, &[])
            .await;
        assert_eq!(reply.status, 500, "{}", reply.describe());
        let direct = stack
            .http
            .post(&stack.sim_url(0, "/v1/embeddings"), &embed, &[])
            .await;
        assert_eq!(direct.status, 200);
        assert!(direct.text().len() > 32 * 1024, "{}", direct.text().len());
    })
    .await;
}
