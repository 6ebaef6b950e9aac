//! What to tokenize, read from an OpenAI request body (shared by every source).

use epp_core::tokens::{TokenizeError, Tokens};
use serde_json::Value;

/// Bodies larger than this are not tokenized (bytes). The ext_proc body budget normally
/// stops larger ones first; this keeps a source safe on its own.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// The most token ids a prompt may have, from the body or from a tokenizer (4 MiB of ids,
/// far beyond any model's context).
pub const MAX_TOKENS: usize = 1 << 20;

/// The part of a request body a source tokenizes.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// A completions `prompt` string (or a one-string array).
    Text(String),
    /// A completions `prompt` that is already token ids: no tokenizer needed.
    Tokens(Tokens),
    /// A chat: the messages and the body fields that change how they are rendered.
    Chat(Chat),
}

/// A chat request's input to the chat template.
#[derive(Debug, Clone, PartialEq)]
pub struct Chat {
    /// `messages` as sent (objects with `role` and `content`).
    pub messages: Vec<Value>,
    /// `tools`, which many templates write into the prompt; `None` when absent.
    pub tools: Option<Value>,
    /// `chat_template_kwargs` (e.g. `enable_thinking`), extra template variables; `None`
    /// when absent.
    pub template_kwargs: Option<serde_json::Map<String, Value>>,
    /// `add_generation_prompt` (vLLM's default: true): end with the assistant's opener.
    pub add_generation_prompt: bool,
    /// `continue_final_message` (default false): leave the last message open (prefill).
    pub continue_final_message: bool,
}

impl Chat {
    /// Messages with vLLM's defaults for everything else.
    pub fn new(messages: Vec<Value>) -> Self {
        Chat {
            messages,
            tools: None,
            template_kwargs: None,
            add_generation_prompt: true,
            continue_final_message: false,
        }
    }
}

/// Reads the prompt of `body`. `messages` wins over `prompt` when both are present (a chat
/// body). Errors are [`TokenizeError::Unsupported`], naming the field.
pub fn read_prompt(body: &[u8]) -> Result<Prompt, TokenizeError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(unsupported(format!(
            "body of {} bytes is over the {MAX_BODY_BYTES}-byte limit",
            body.len()
        )));
    }
    let mut parsed: Value =
        serde_json::from_slice(body).map_err(|e| unsupported(format!("body is not JSON: {e}")))?;
    let Some(object) = parsed.as_object_mut() else {
        return Err(unsupported("body is not a JSON object".to_owned()));
    };
    if let Some(messages) = object.remove("messages") {
        return read_chat(messages, object);
    }
    match object.remove("prompt") {
        Some(prompt) => read_completion_prompt(prompt),
        None => Err(unsupported(
            "body has neither `prompt` nor `messages`".to_owned(),
        )),
    }
}

/// The messages and the rendering fields of a chat body; a field of the wrong type is
/// reported, not ignored, since the server would render it differently.
fn read_chat(
    messages: Value,
    body: &mut serde_json::Map<String, Value>,
) -> Result<Prompt, TokenizeError> {
    let mut chat = Chat::new(read_messages(messages)?);
    chat.tools = body.remove("tools").filter(|tools| !tools.is_null());
    chat.template_kwargs = match body.remove("chat_template_kwargs") {
        None | Some(Value::Null) => None,
        Some(Value::Object(kwargs)) => Some(kwargs),
        Some(_) => {
            return Err(unsupported(
                "`chat_template_kwargs` is not an object".to_owned(),
            ));
        }
    };
    for (field, value) in [
        ("add_generation_prompt", &mut chat.add_generation_prompt),
        ("continue_final_message", &mut chat.continue_final_message),
    ] {
        match body.remove(field) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(set)) => *value = set,
            Some(_) => return Err(unsupported(format!("`{field}` is not a boolean"))),
        }
    }
    Ok(Prompt::Chat(chat))
}

fn read_messages(messages: Value) -> Result<Vec<Value>, TokenizeError> {
    let Value::Array(messages) = messages else {
        return Err(unsupported("`messages` is not an array".to_owned()));
    };
    if messages.is_empty() {
        return Err(unsupported("`messages` is empty".to_owned()));
    }
    if let Some(i) = messages.iter().position(|m| !m.is_object()) {
        return Err(unsupported(format!("`messages[{i}]` is not an object")));
    }
    Ok(messages)
}

/// `"text"`, `["text"]`, `[1, 2, 3]` and `[[1, 2, 3]]` have one prompt; a batch of several
/// prompts has no single token sequence to route by.
fn read_completion_prompt(prompt: Value) -> Result<Prompt, TokenizeError> {
    match prompt {
        Value::String(text) => Ok(Prompt::Text(text)),
        Value::Array(items) => match items.as_slice() {
            [] => Err(unsupported("`prompt` is an empty array".to_owned())),
            [Value::String(text)] => Ok(Prompt::Text(text.clone())),
            [Value::Array(ids)] => token_ids(ids).map(Prompt::Tokens),
            ids if ids.iter().all(Value::is_number) => token_ids(ids).map(Prompt::Tokens),
            _ => Err(unsupported(
                "`prompt` is a batch of several prompts".to_owned(),
            )),
        },
        _ => Err(unsupported(
            "`prompt` is neither a string nor an array".to_owned(),
        )),
    }
}

/// Token ids given in a `prompt` array; each must fit a `u32`.
fn token_ids(ids: &[Value]) -> Result<Tokens, TokenizeError> {
    if ids.is_empty() {
        return Err(unsupported("`prompt` has no token ids".to_owned()));
    }
    if ids.len() > MAX_TOKENS {
        return Err(unsupported(format!(
            "`prompt` has {} token ids, over the limit of {MAX_TOKENS}",
            ids.len()
        )));
    }
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            id.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| unsupported(format!("`prompt[{i}]` is not a token id: {id}")))
        })
        .collect()
}

fn unsupported(reason: String) -> TokenizeError {
    TokenizeError::Unsupported(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(ids: &[u32]) -> Prompt {
        Prompt::Tokens(Tokens::from(ids))
    }

    #[test]
    fn reads_each_prompt_shape() {
        let cases: &[(&str, Prompt)] = &[
            (r#"{"prompt":"hi there"}"#, Prompt::Text("hi there".into())),
            (r#"{"prompt":["hi"]}"#, Prompt::Text("hi".into())),
            (r#"{"prompt":[1,2,3]}"#, tokens(&[1, 2, 3])),
            (r#"{"prompt":[[7,8]]}"#, tokens(&[7, 8])),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"prompt":"ignored"}"#,
                Prompt::Chat(Chat::new(vec![
                    serde_json::json!({"role":"user","content":"x"}),
                ])),
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}],
                    "chat_template_kwargs":{"enable_thinking":false},
                    "add_generation_prompt":false,"continue_final_message":true}"#,
                Prompt::Chat(Chat {
                    tools: Some(serde_json::json!([{"type":"function"}])),
                    template_kwargs: serde_json::json!({"enable_thinking":false})
                        .as_object()
                        .cloned(),
                    add_generation_prompt: false,
                    continue_final_message: true,
                    ..Chat::new(vec![serde_json::json!({"role":"user","content":"x"})])
                }),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(read_prompt(body.as_bytes()).as_ref(), Ok(want), "{body}");
        }
    }

    #[test]
    fn rejects_what_has_no_single_prompt() {
        let cases = [
            ("not json", "not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"model":"m"}"#, "neither `prompt` nor `messages`"),
            (r#"{"prompt":["a","b"]}"#, "batch"),
            (r#"{"prompt":[[1],[2]]}"#, "batch"),
            (r#"{"prompt":[]}"#, "empty array"),
            (r#"{"prompt":[[]]}"#, "no token ids"),
            (r#"{"prompt":[1,-2]}"#, "`prompt[1]` is not a token id: -2"),
            (r#"{"prompt":[4294967296]}"#, "`prompt[0]`"),
            (r#"{"prompt":7}"#, "neither a string nor an array"),
            (r#"{"messages":{}}"#, "`messages` is not an array"),
            (r#"{"messages":[]}"#, "`messages` is empty"),
            (r#"{"messages":[{"role":"user"},"x"]}"#, "`messages[1]`"),
            (
                r#"{"messages":[{}],"chat_template_kwargs":[]}"#,
                "`chat_template_kwargs` is not an object",
            ),
            (
                r#"{"messages":[{}],"add_generation_prompt":"yes"}"#,
                "`add_generation_prompt` is not a boolean",
            ),
        ];
        for (body, want) in cases {
            match read_prompt(body.as_bytes()) {
                Err(TokenizeError::Unsupported(reason)) => {
                    assert!(reason.contains(want), "{body}: {reason}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_a_body_over_the_limit() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        let Err(TokenizeError::Unsupported(reason)) = read_prompt(&body) else {
            panic!("an oversized body was read");
        };
        assert!(reason.contains("limit"), "{reason}");
    }
}
