//! vLLM's `POST /tokenize`: a prompt (completion form) or chat messages (chat form, rendered
//! with the chat template chat completions use) → the token ids the engine hashes for the same
//! request, so a router that tokenizes here computes the engine's block keys.
//!
//! Response: `{"count", "max_model_len", "tokens", "token_strs"}`, as vLLM's
//! `TokenizeResponse`. vLLM serves the route at `/tokenize` only (not under `/v1`).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, RawMessage, chat_prompt, resolve_model, token_ids};
use crate::config::SimConfig;
use crate::tokens::{ChatEnding, TokenizedPrompt};

/// Both forms of vLLM's `TokenizeRequest`: `prompt` wins when both are given, as vLLM tries
/// the completion form first.
#[derive(Deserialize)]
struct RawTokenize {
    model: Option<String>,
    prompt: Option<Value>,
    messages: Option<Vec<RawMessage>>,
    /// Accepted; the sim's tokenizer has no special tokens to add.
    #[serde(default, rename = "add_special_tokens")]
    _add_special_tokens: Option<bool>,
    add_generation_prompt: Option<bool>,
    #[serde(default)]
    continue_final_message: bool,
    #[serde(default)]
    return_token_strs: Option<bool>,
}

/// Answers a `/tokenize` body against the server's `config`.
pub(crate) fn tokenize(body: &[u8], config: &SimConfig) -> Result<Value, ApiError> {
    let raw: RawTokenize = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}"), None))?;
    if let Some(model) = &raw.model {
        resolve_model(model, config)?;
    }
    let prompt = match (&raw.prompt, &raw.messages) {
        (Some(prompt), _) => completion_prompt(prompt)?,
        (None, Some(messages)) => chat_prompt(Some(messages), chat_ending(&raw)?)?,
        (None, None) => {
            return Err(ApiError::bad_request(
                "either prompt or messages is required",
                Some("prompt"),
            ));
        }
    };
    let tokens = prompt.token_ids();
    let token_strs = raw
        .return_token_strs
        .unwrap_or(false)
        .then(|| prompt.token_strs());
    Ok(json!({
        "count": tokens.len(),
        "max_model_len": config.effective_max_model_len(),
        "tokens": tokens,
        "token_strs": token_strs,
    }))
}

/// A string, or a list of token ids (the engine's view of it: an empty list is one padding
/// token, as a completion of `[]` would be).
fn completion_prompt(prompt: &Value) -> Result<TokenizedPrompt, ApiError> {
    match prompt {
        Value::String(text) => Ok(TokenizedPrompt::from_text(text)),
        Value::Array(items) => token_ids(items)
            .map(|ids| TokenizedPrompt::from_ids(&ids))
            .ok_or_else(|| ApiError::bad_request("prompt ids must be u32", Some("prompt"))),
        _ => Err(ApiError::bad_request(
            "prompt must be a string or a list of token ids",
            Some("prompt"),
        )),
    }
}

/// vLLM's defaults: the generation prompt is added unless the final message is continued;
/// asking for both is an error.
fn chat_ending(raw: &RawTokenize) -> Result<ChatEnding, ApiError> {
    match (raw.add_generation_prompt, raw.continue_final_message) {
        (Some(true), true) => Err(ApiError::bad_request(
            "Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
            Some("continue_final_message"),
        )),
        (_, true) => Ok(ChatEnding::OpenFinal),
        (Some(false), false) => Ok(ChatEnding::Closed),
        (None | Some(true), false) => Ok(ChatEnding::GenerationPrompt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Endpoint, Generation};

    /// The ids `/tokenize` answers are the ones the engine is given for the same request.
    #[test]
    fn tokens_equal_what_the_engine_is_given() {
        let config = SimConfig::default();
        let messages = json!([{"role": "user", "content": "a question, please"}]);
        let cases = [
            (Endpoint::Completions, json!({"prompt": "some prompt text"})),
            (Endpoint::Completions, json!({"prompt": [9, 8, 7]})),
            (Endpoint::Chat, json!({"messages": messages})),
        ];
        for (endpoint, body) in cases {
            let bytes = body.to_string().into_bytes();
            let answer = tokenize(&bytes, &config).expect("tokenizes");
            let generation = Generation::parse(endpoint, &bytes, &config).expect("parses");
            let engine: Vec<u32> = generation.prompts[0].token_ids();
            assert_eq!(answer["tokens"], json!(engine), "{body}");
            assert_eq!(answer["count"], engine.len(), "{body}");
        }
    }

    #[test]
    fn chat_endings_follow_vllms_flags() {
        let ending = |body: Value| {
            let raw: RawTokenize = serde_json::from_value(body).expect("a request");
            chat_ending(&raw)
        };
        let cases = [
            (json!({}), Some(ChatEnding::GenerationPrompt)),
            (
                json!({"add_generation_prompt": false}),
                Some(ChatEnding::Closed),
            ),
            (
                json!({"continue_final_message": true}),
                Some(ChatEnding::OpenFinal),
            ),
            (
                json!({"add_generation_prompt": false, "continue_final_message": true}),
                Some(ChatEnding::OpenFinal),
            ),
            (
                json!({"add_generation_prompt": true, "continue_final_message": true}),
                None,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(ending(body.clone()).ok(), want, "{body}");
        }
    }
}
