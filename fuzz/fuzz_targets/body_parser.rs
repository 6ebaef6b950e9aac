//! OpenAI request bodies (completions, chat, content parts, embeddings, responses):
//! `parse_body` and `rewrite_model`.
//!
//! Invariants: no panic; on `Ok`, `model_span` indexes the body and holds the JSON string
//! of `model`, the body is a JSON object whose last `model` is that string, and the
//! rewritten body is valid JSON whose `model` is the target and whose other fields are
//! unchanged. Conversely, a JSON object with a string `model` is never rejected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Rewrite targets: plain, needing escapes, non-ASCII, empty.
const TARGETS: [&str; 4] = ["llama-3-8b", "a\"b\\c\u{1}\n", "模型-😀", ""];

/// `serde_json::Value` errors on bytes that the body parser may skip without decoding.
const LENIENT: [&str; 4] = [
    "number out of range",
    "invalid unicode code point",
    "lone leading surrogate",
    "unexpected end of hex escape",
];

fuzz_target!(|data: &[u8]| {
    let parsed = epp_core::request::parse_body(data);
    // What a general JSON parser thinks of the same bytes (duplicate keys keep the last).
    let value: Option<Value> = match serde_json::from_slice(data) {
        Ok(value) => Some(value),
        // `Value` converts every number and string, so it rejects 1e400, invalid UTF-8
        // and lone surrogates; the body parser skips the fields it does not read without
        // converting them (as Go's decoder accepts such fields), so here only the parser's
        // own checks apply.
        Err(e) if LENIENT.iter().any(|m| e.to_string().contains(m)) => {
            if let Ok(parsed) = epp_core::request::parse_body(data) {
                check_span_and_rewrite(data, &parsed);
            }
            return;
        }
        Err(_) => None,
    };
    let model_of_value = value
        .as_ref()
        .and_then(|v| v.as_object())
        .and_then(|o| o.get("model"))
        .and_then(|m| m.as_str());
    let Ok(parsed) = parsed else {
        assert!(
            model_of_value.is_none(),
            "rejected a JSON object with a string model: {parsed:?}"
        );
        return;
    };
    assert_eq!(
        model_of_value,
        Some(parsed.model.as_str()),
        "accepted body disagrees with a JSON parser on the model"
    );
    let after = check_span_and_rewrite(data, &parsed);
    let mut after: Value = serde_json::from_slice(&after).expect("rewritten body is JSON");
    let target = TARGETS[data.len() % TARGETS.len()];
    assert_eq!(after.get("model").and_then(Value::as_str), Some(target));
    // Everything but the model is unchanged.
    let mut before = value.expect("accepted body is JSON");
    if let (Some(before), Some(after)) = (before.as_object_mut(), after.as_object_mut()) {
        before.remove("model");
        after.remove("model");
    }
    assert_eq!(before, after, "the rewrite changed more than the model");
});

/// The span holds the model as a JSON string, and the rewritten body (returned) parses
/// with the target as model and the same prompt.
fn check_span_and_rewrite(data: &[u8], parsed: &epp_core::request::ParsedBody<'_>) -> Vec<u8> {
    let span = parsed.model_span.clone();
    assert!(
        span.start < span.end && span.end <= data.len(),
        "span {span:?} outside body"
    );
    let raw = &data[span.clone()];
    assert!(
        raw.len() >= 2 && raw.starts_with(b"\"") && raw.ends_with(b"\""),
        "span is not a JSON string"
    );
    match serde_json::from_slice::<String>(raw) {
        Ok(model) => assert_eq!(model, parsed.model, "span does not hold the model"),
        // Invalid UTF-8 or a lone surrogate: the lenient parse read it, so the span alone
        // must read the same way.
        Err(_) => {
            let mut alone = b"{\"model\":".to_vec();
            alone.extend_from_slice(raw);
            alone.push(b'}');
            let again = epp_core::request::parse_body(&alone).expect("the span alone parses");
            assert_eq!(again.model, parsed.model, "span does not hold the model");
        }
    }

    let target = TARGETS[data.len() % TARGETS.len()];
    let rewritten = epp_core::request::rewrite_model(data, parsed, target);
    // The rewritten body parses again, with the target as model.
    let again = epp_core::request::parse_body(&rewritten).expect("rewritten body parses");
    assert_eq!(again.model, target);
    assert_eq!(
        again.prompt, parsed.prompt,
        "the rewrite changed the prompt"
    );
    rewritten
}
