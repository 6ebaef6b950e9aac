//! `--request-log-file`: a routed request whose response ends is written as one JSON
//! line with its model, prompt block hashes (never its text), token counts and session.

use epp_core::prefix::hash_prompt;
use epp_extproc::BodyMode;
use epp_testkit::driver::{Outcome, Request, send_request};
use epp_testkit::messages::*;
use epp_testkit::metrics;

use crate::TestEpp;

/// The prefix scorer with 16-byte blocks: the log must hash in the same blocks.
const CONFIG: &str = r#"
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: prefix-cache-scorer
  parameters:
    hashBlockSize: 16
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
  - pluginRef: prefix-cache-scorer
"#;

const PROMPT: &str = "Summarise the quarterly report of the umbrella factory in three short \
                      sentences for the board";

/// Reads the log until it has a line (the writer is a background thread).
async fn first_line(path: &std::path::Path) -> (String, serde_json::Value) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            let value = serde_json::from_str(line).expect("JSON line");
            return (text, value);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no request-log line"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_routed_request_is_logged_at_end_of_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("requests.jsonl");
    let log_path = path.clone();
    let epp = TestEpp::start_with(&["10.0.0.1:8000"], CONFIG, move |o| {
        o.request_log_file = Some(log_path);
        o.request_log_session_header = "x-conversation".into();
    })
    .await;
    epp.set_metrics("10.0.0.1:8000", metrics(0, 0.1, &[]));
    let mut stream = epp.stream().await;
    let request = Request::new(
        &[
            ("x-conversation", "chat-41"),
            ("x-gateway-model-name-rewrite", "food-review-v2"),
        ],
        completion_body("food-review", PROMPT),
    );
    let outcome = send_request(&mut stream, BodyMode::FullDuplexStreamed, &request).await;
    assert!(matches!(outcome, Outcome::Routed { .. }), "{outcome:?}");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs_f64()
        * 1000.0;
    stream
        .exchange(
            response_headers(
                &[(":status", "200"), ("content-type", "text/event-stream")],
                false,
            ),
            1,
        )
        .await;
    // Nothing is written before the response ends.
    assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "");
    let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":9,\
                 \"total_tokens\":30,\"prompt_tokens_details\":{\"cached_tokens\":16}}}\n\n\
                 data: [DONE]\n\n";
    stream
        .exchange(response_body(usage.as_bytes(), true), 1)
        .await;

    let (text, line) = first_line(&path).await;
    let mut want_hashes = Vec::new();
    hash_prompt(
        "food-review-v2",
        PROMPT.as_bytes(),
        16,
        256,
        &mut want_hashes,
    );
    let hashes: Vec<u64> = line["prompt_block_hashes"]
        .as_array()
        .expect("hashes")
        .iter()
        .map(|h| h.as_u64().expect("u64"))
        .collect();
    assert_eq!(hashes, want_hashes);
    assert_eq!(hashes.len(), PROMPT.len() / 16);
    assert_eq!(line["model"], "food-review");
    assert_eq!(line["target_model"], "food-review-v2");
    assert_eq!(line["block_size_bytes"], 16);
    assert_eq!(line["prompt_bytes"], PROMPT.len());
    assert_eq!(line["input_tokens"], 21);
    assert_eq!(line["output_tokens"], 9);
    assert_eq!(line["cached_tokens"], 16);
    assert_eq!(line["session"], "chat-41");
    assert_eq!(line["endpoint"], "10.0.0.1:8000");
    assert_eq!(line["status"], 200);
    let arrival = line["arrival_unix_ms"].as_f64().expect("arrival");
    assert!(
        arrival <= before && arrival > before - 10_000.0,
        "arrival {arrival} vs {before}"
    );
    for words in ["quarterly", "umbrella", "Summarise"] {
        assert!(!text.contains(words), "prompt text in the log: {text}");
    }
    assert_eq!(text.lines().count(), 1);
}
