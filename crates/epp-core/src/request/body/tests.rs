use std::borrow::Cow;

use super::*;

fn prompt_of(body: &str) -> Option<String> {
    parse_body(body.as_bytes())
        .expect("valid body")
        .prompt
        .map(Cow::into_owned)
}

#[test]
fn completion_prompt_and_model() {
    let body = br#"{"max_tokens":100,"model":"my-model","prompt":"hello","temperature":0}"#;
    let parsed = parse_body(body).expect("valid");
    assert_eq!(parsed.model, "my-model");
    assert_eq!(&body[parsed.model_span.clone()], br#""my-model""#);
    assert_eq!(parsed.prompt.as_deref(), Some("hello"));
}

#[test]
fn chat_template_matches_v1_0_1() {
    let body = r#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#;
    assert_eq!(
        prompt_of(body).as_deref(),
        Some("<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n")
    );
}

#[test]
fn chat_content_parts_contribute_text() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]}"#;
    assert_eq!(
        prompt_of(body).as_deref(),
        Some("<|im_start|>user\nab<|im_end|>\n")
    );
}

#[test]
fn messages_without_string_role_or_content_are_skipped() {
    let body = r#"{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[]},{"role":"user","content":"q"},{"content":"no role"}]}"#;
    assert_eq!(
        prompt_of(body).as_deref(),
        Some("<|im_start|>user\nq<|im_end|>\n")
    );
}

#[test]
fn input_variants_are_prompts() {
    let cases = [
        (r#"{"model":"e","input":"embed me"}"#, Some("embed me")),
        (r#"{"model":"e","input":["a","b"]}"#, Some("ab")),
        (
            r#"{"model":"r","input":[{"role":"user","content":"hey"}]}"#,
            Some("<|im_start|>user\nhey<|im_end|>\n"),
        ),
        (r#"{"model":"e","input":[[1,2,3]]}"#, None),
        (r#"{"model":"e","prompt":[1,2,3]}"#, None),
        (r#"{"model":"e","prompt":["x","y"]}"#, Some("xy")),
    ];
    for (body, expected) in cases {
        assert_eq!(prompt_of(body).as_deref(), expected, "{body}");
    }
}

#[test]
fn bodies_without_a_prompt_still_parse() {
    for body in [
        r#"{"model":"m"}"#,
        r#"{"model":"m","messages":[]}"#,
        r#"{"model":"m","messages":"not a list"}"#,
        r#"{"model":"m","prompt":42}"#,
    ] {
        let parsed = parse_body(body.as_bytes()).expect(body);
        assert_eq!(parsed.model, "m");
    }
    assert_eq!(prompt_of(r#"{"model":"m","messages":"x"}"#), None);
}

#[test]
fn errors() {
    let cases: [(&[u8], BodyError); 6] = [
        (b"no healthy upstream", invalid()),
        (b"[1,2]", invalid()),
        (b"{\"model\":\"m\"", invalid()),
        (br#"{"hello":"world"}"#, BodyError::MissingModel),
        (br#"{"model":42}"#, BodyError::MissingModel),
        (br#"{"model":null}"#, BodyError::MissingModel),
    ];
    for (body, expected) in cases {
        let err = parse_body(body).expect_err("must fail");
        assert_eq!(
            std::mem::discriminant(&err),
            std::mem::discriminant(&expected),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

fn invalid() -> BodyError {
    BodyError::InvalidJson {
        detail: String::new(),
    }
}

#[test]
fn duplicate_keys_keep_the_last_value() {
    let parsed = parse_body(br#"{"model":"a","model":"b"}"#).expect("valid");
    assert_eq!(parsed.model, "b");
}

#[test]
fn escaped_model_and_rewrite_keeps_other_bytes() {
    let body = br#"{ "stream" : true, "model" : "caf\u00e9", "prompt": "x" }"#;
    let parsed = parse_body(body).expect("valid");
    assert_eq!(parsed.model, "café");
    let rewritten = rewrite_model(body, &parsed, "target \"quoted\"");
    assert_eq!(
        String::from_utf8(rewritten).expect("utf8"),
        r#"{ "stream" : true, "model" : "target \"quoted\"", "prompt": "x" }"#
    );
}

#[test]
fn nested_model_keys_are_not_the_model() {
    let body = br#"{"metadata":{"model":"inner"},"model":"outer"}"#;
    let parsed = parse_body(body).expect("valid");
    assert_eq!(parsed.model, "outer");
    assert_eq!(&body[parsed.model_span.clone()], br#""outer""#);
}

#[test]
fn an_unescaped_completion_prompt_is_borrowed_from_the_body() {
    let body = br#"{"model":"m","prompt":"a long prompt without escapes"}"#;
    let parsed = parse_body(body).expect("valid");
    assert!(
        matches!(parsed.prompt, Some(Cow::Borrowed(_))),
        "{:?}",
        parsed.prompt
    );
    let escaped = parse_body(br#"{"model":"m","prompt":"line\nbreak"}"#).expect("valid");
    assert_eq!(escaped.prompt.as_deref(), Some("line\nbreak"));
}

#[test]
fn a_malformed_messages_list_is_no_prompt_source_but_the_body_routes() {
    // Any element that is not a message object, or a role that is neither a string nor
    // null, spoils the list; `prompt` is then the prompt source, as before.
    for messages in [
        r#"[{"role":"user","content":"q"},"just text"]"#,
        r#"[{"role":"user","content":"q"},null]"#,
        r#"[{"role":7,"content":"q"}]"#,
        r#"[{"role":{"name":"user"},"content":"q"}]"#,
        r#"[["user","q"]]"#,
        r#"{"role":"user","content":"q"}"#,
    ] {
        let body = format!(r#"{{"model":"m","messages":{messages},"prompt":"fallback"}}"#);
        assert_eq!(prompt_of(&body).as_deref(), Some("fallback"), "{messages}");
    }
}

#[test]
fn messages_are_still_validated_as_json_after_a_bad_element() {
    let body = br#"{"model":"m","messages":[1,{"role":"user","content":"q"},{"role":tru}]}"#;
    assert!(matches!(
        parse_body(body),
        Err(BodyError::InvalidJson { .. })
    ));
}

#[test]
fn message_keys_repeat_as_in_go_and_a_null_role_skips_the_message() {
    let body = r#"{"model":"m","messages":[{"role":"system","role":"user","content":"a","content":"b"},{"role":null,"content":"c"}]}"#;
    assert_eq!(
        prompt_of(body).as_deref(),
        Some("<|im_start|>user\nb<|im_end|>\n")
    );
}

#[test]
fn escaped_chat_content_is_decoded_once_into_the_template() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"line\nbreak \"q\" \u00e9"}]}"#;
    assert_eq!(
        prompt_of(body).as_deref(),
        Some("<|im_start|>user\nline\nbreak \"q\" é<|im_end|>\n")
    );
}

#[test]
fn lone_surrogates_and_invalid_utf8_are_routed_as_replacement_characters() {
    // (body, model, prompt): what Go's encoding/json decodes (U+FFFD), where serde_json
    // alone refuses the body.
    let cases: [(&[u8], &str, &str); 6] = [
        (br#"{"model":"m","prompt":"hi \ud83d"}"#, "m", "hi \u{FFFD}"),
        (
            b"{\"model\":\"m\",\"prompt\":\"hi \xff\"}",
            "m",
            "hi \u{FFFD}",
        ),
        (
            br#"{"model":"m","messages":[{"role":"user","content":"\ude00!"}]}"#,
            "m",
            "<|im_start|>user\n\u{FFFD}!<|im_end|>\n",
        ),
        (
            b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\xc3\"}]}",
            "m",
            "<|im_start|>user\na\u{FFFD}<|im_end|>\n",
        ),
        (br#"{"model":"\ud83d","prompt":"p"}"#, "\u{FFFD}", "p"),
        (br#"{"model":"m","input":"x\ud83d"}"#, "m", "x\u{FFFD}"),
    ];
    for (body, model, prompt) in cases {
        let parsed = parse_body(body).unwrap_or_else(|e| {
            panic!("{e:?} for {}", String::from_utf8_lossy(body));
        });
        assert_eq!(parsed.model, model);
        assert_eq!(parsed.prompt.as_deref(), Some(prompt));
    }
}

#[test]
fn the_model_span_of_a_lenient_parse_points_into_the_original_body() {
    let body = b"{\"prompt\":\"\xff\xfe\",\"model\":\"m\xff\"}";
    let parsed = parse_body(body).expect("routed");
    assert_eq!(parsed.model, "m\u{FFFD}");
    assert_eq!(&body[parsed.model_span.clone()], b"\"m\xff\"");
    let rewritten = rewrite_model(body, &parsed, "t");
    assert_eq!(rewritten, b"{\"prompt\":\"\xff\xfe\",\"model\":\"t\"}");
}

/// Found by the `body_parser` fuzz target: an escape before an invalid byte in `model`.
#[test]
fn an_escaped_model_with_an_invalid_byte_keeps_its_span() {
    let body = b"{\"model\":\"\\re\x99k\"}";
    let parsed = parse_body(body).expect("routed");
    assert_eq!(parsed.model, "\re\u{FFFD}k");
    let span = &body[parsed.model_span.clone()];
    assert_eq!(span, b"\"\\re\x99k\"");
    let mut alone = b"{\"model\":".to_vec();
    alone.extend_from_slice(span);
    alone.push(b'}');
    assert_eq!(
        parse_body(&alone).expect("the span alone").model,
        parsed.model
    );
}

#[test]
fn lenient_parsing_keeps_the_errors_of_bodies_it_cannot_route() {
    // A lone surrogate does not hide a missing model, and text that is not JSON stays so.
    let cases: [(&[u8], BodyError); 4] = [
        (
            br#"{"model":42,"prompt":"\ud83d"}"#,
            BodyError::MissingModel,
        ),
        (br#"{"prompt":"\ud83d"}"#, BodyError::MissingModel),
        (b"\xff\xfe not json", invalid()),
        (br#"{"model":"m","prompt":"\ud83d"#, invalid()),
    ];
    for (body, expected) in cases {
        let err = parse_body(body).expect_err("must fail");
        assert_eq!(
            std::mem::discriminant(&err),
            std::mem::discriminant(&expected),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

// === prefixes of bodies cut by the gateway (BUFFERED_PARTIAL) ===

/// (body prefix, model read, prompt read)
const PREFIXES: &[(&str, Option<&str>, Option<&str>)] = &[
    // The model ends before the cut; the prompt does not.
    (r#"{"model":"m","prompt":"hello wor"#, Some("m"), None),
    // Cut inside the model's value: it is not known.
    (r#"{"model":"my-mo"#, None, None),
    // Chat clients often send messages first: a cut inside them leaves nothing.
    (
        r#"{"messages":[{"role":"user","content":"hi"}],"mod"#,
        None,
        Some("<|im_start|>user\nhi<|im_end|>\n"),
    ),
    (
        r#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","con"#,
        None,
        None,
    ),
    // Both fields complete; the cut is in a later field.
    (
        r#"{"model":"m","prompt":"p","max_tokens":1"#,
        Some("m"),
        Some("p"),
    ),
    // Not JSON, or not an object.
    ("no healthy upstream", None, None),
    ("[1,2", None, None),
    ("", None, None),
];

#[test]
fn prefix_reads_the_fields_that_ended_before_the_cut() {
    for (prefix, model, prompt) in PREFIXES {
        let read = parse_body_prefix(prefix.as_bytes());
        assert_eq!(
            read.model.as_ref().map(|(m, _)| m.as_str()),
            *model,
            "{prefix}"
        );
        assert_eq!(read.prompt.as_deref(), *prompt, "{prefix}");
    }
}

#[test]
fn prefix_model_span_points_at_the_value() {
    let prefix = br#"{"model":"m","prompt":"abc"#;
    let (_, span) = parse_body_prefix(prefix).model.expect("model read");
    assert_eq!(&prefix[span], br#""m""#);
}

#[test]
fn whole_body_reads_the_same_as_a_prefix() {
    let body = br#"{"model":"m","prompt":"p"}"#;
    let read = parse_body_prefix(body);
    let parsed = parse_body(body).expect("valid");
    assert_eq!(read.model, Some((parsed.model, parsed.model_span)));
    assert_eq!(read.prompt, parsed.prompt);
}
