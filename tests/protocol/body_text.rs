//! Text model servers accept is routed: lone surrogate escapes and invalid UTF-8 in the
//! prompt, the messages or `model` (issue 11, item 4). Only bodies that are not JSON, or
//! have no string `model`, are 400, and the message says which.

use epp_testkit::driver::{MODES, Outcome, Request, send_request};
use epp_testkit::{HERMETIC_CONFIG, metrics};

use crate::TestEpp;

const PODS: [&str; 2] = ["10.0.0.1:8000", "10.0.0.2:8000"];

async fn outcome(headers: &[(&str, &str)], body: &[u8]) -> Vec<Outcome> {
    let epp = TestEpp::start(&PODS, HERMETIC_CONFIG).await;
    for pod in PODS {
        epp.set_metrics(pod, metrics(0, 0.1, &[]));
    }
    let mut outcomes = Vec::new();
    for mode in MODES {
        let mut stream = epp.stream().await;
        let request = Request::new(headers, body.to_vec());
        outcomes.push(send_request(&mut stream, mode, &request).await);
    }
    outcomes
}

/// Routed in every mode, with the body forwarded byte for byte.
async fn assert_routed_unchanged(body: &[u8]) {
    for outcome in outcome(&[], body).await {
        let Outcome::Routed { body: sent, .. } = &outcome else {
            panic!(
                "{} was not routed: {outcome:?}",
                String::from_utf8_lossy(body)
            );
        };
        assert_eq!(sent, body, "the model server gets the client's bytes");
    }
}

#[tokio::test]
async fn a_lone_surrogate_in_a_completion_prompt_is_routed() {
    assert_routed_unchanged(br#"{"model":"m","prompt":"cut emoji \ud83d","max_tokens":5}"#).await;
}

#[tokio::test]
async fn a_lone_surrogate_in_chat_messages_is_routed() {
    assert_routed_unchanged(br#"{"model":"m","messages":[{"role":"user","content":"\ud83d"}]}"#)
        .await;
}

#[tokio::test]
async fn invalid_utf8_in_a_completion_prompt_is_routed() {
    assert_routed_unchanged(b"{\"model\":\"m\",\"prompt\":\"bad \xff\xfe bytes\"}").await;
}

#[tokio::test]
async fn invalid_utf8_in_chat_messages_is_routed() {
    assert_routed_unchanged(
        b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\xc3\"}]}",
    )
    .await;
}

#[tokio::test]
async fn a_lone_surrogate_in_the_model_is_routed_not_model_not_found() {
    assert_routed_unchanged(br#"{"model":"llama\ud83d","prompt":"hi"}"#).await;
}

#[tokio::test]
async fn a_rewrite_replaces_a_model_with_invalid_bytes_and_keeps_the_rest() {
    let body = b"{\"prompt\":\"\xff\",\"model\":\"m\xff\"}";
    for outcome in outcome(&[("x-gateway-model-name-rewrite", "target")], body).await {
        let Outcome::Routed { body: sent, .. } = &outcome else {
            panic!("not routed: {outcome:?}");
        };
        assert_eq!(sent, b"{\"prompt\":\"\xff\",\"model\":\"target\"}");
    }
}

#[tokio::test]
async fn what_is_not_json_is_400_saying_so() {
    for body in [
        &b"no healthy upstream"[..],
        b"\xff\xfe",
        br#"{"model":"m","prompt":"\ud83d"#,
    ] {
        for outcome in outcome(&[], body).await {
            assert_eq!(
                outcome,
                Outcome::Rejected(
                    400,
                    "inference gateway: BadRequest - Error unmarshaling request body".into()
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

#[tokio::test]
async fn json_without_a_usable_model_is_400_saying_so() {
    for body in [
        &br#"{"prompt":"\ud83d"}"#[..],
        br#"{"model":42,"prompt":"x"}"#,
        b"{\"model\":null,\"prompt\":\"\xff\"}",
    ] {
        for outcome in outcome(&[], body).await {
            assert_eq!(
                outcome,
                Outcome::Rejected(
                    400,
                    "inference gateway: BadRequest - model not found in request body".into()
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
