//! The `openai` Python SDK against the router mode: chat, streamed chat and completions.

use epp_testkit::python::{kv_python, require_openai_python};

use crate::{MODEL, simulated};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_chat_streamed_chat_and_completions() {
    require_openai_python();
    let epp = simulated(2, "", |_| {}).await;
    let base = format!(
        "http://{}",
        epp.running.proxy_address.expect("router mode is on")
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proxy/openai_client.py");
    // The EPP answers on this runtime's workers while the script runs.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(kv_python())
            .args([script, &base, MODEL])
            .output()
    })
    .await
    .expect("the script's thread")
    .expect("python runs");
    assert!(
        output.status.success(),
        "the SDK failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    let sims: Vec<String> = epp
        .running
        .simulated
        .iter()
        .map(|s| s.address().to_string())
        .collect();
    let destination = got["chat_destination"]
        .as_str()
        .expect("a destination header");
    assert!(sims.iter().any(|s| s == destination), "{got}");
    assert_eq!(got["chat_completion_tokens"], 5, "{got}");
    assert!(
        !got["chat_content"].as_str().unwrap_or_default().is_empty(),
        "{got}"
    );
    // One delta per token, plus the role-only first chunk.
    assert!(got["stream_chunks"].as_u64().unwrap_or(0) >= 8, "{got}");
    assert!(
        !got["stream_text"].as_str().unwrap_or_default().is_empty(),
        "{got}"
    );
    assert_eq!(got["completion_tokens"], 3, "{got}");
    assert!(
        !got["completion_text"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{got}"
    );
}
