//! OpenAI request bodies → what to generate, with vLLM's error shapes.

use std::sync::Arc;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{OutputLength, SimConfig};
use crate::sequence::TokenEvent;
use crate::sequence::{NewSequence, new_sequence};
use crate::tokens::{ChatEnding, OutputPlan, TokenizedPrompt, render_chat};

/// Which OpenAI route a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/completions`.
    Completions,
    /// `POST /v1/chat/completions`.
    Chat,
}

impl Endpoint {
    /// The prefix of its response ids, as vLLM's.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Self::Completions => "cmpl-",
            Self::Chat => "chatcmpl-",
        }
    }
}

/// An error answered to the client, as vLLM's `ErrorResponse`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status (400 bad request, 404 unknown model, 413 body too large, 503 shutting down).
    pub status: StatusCode,
    /// The message, safe to show.
    pub message: String,
    /// The offending parameter, if one.
    pub param: Option<&'static str>,
}

impl ApiError {
    /// A 400 about `param`.
    pub fn bad_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param,
        }
    }

    /// The JSON body: `{"error":{"message","type","param","code"}}`.
    pub fn body(&self) -> Value {
        let kind = match self.status {
            StatusCode::NOT_FOUND => "NotFoundError",
            StatusCode::BAD_REQUEST => "BadRequestError",
            StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
            _ => "InternalServerError",
        };
        json!({"error": {
            "message": self.message, "type": kind, "param": self.param, "code": self.status.as_u16()
        }})
    }
}

/// A validated generation request.
#[derive(Debug)]
pub struct Generation {
    /// The model name as requested (echoed in responses).
    pub model: String,
    /// The adapter, `None` for the base model.
    pub adapter: Option<Arc<str>>,
    /// One prompt per choice.
    pub prompts: Vec<TokenizedPrompt>,
    /// `max_tokens` after the default and the cap.
    pub max_tokens: usize,
    /// Output length forced by the `sim.output_tokens` extension.
    pub forced_output: Option<usize>,
    /// SSE streaming.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
}

#[derive(Deserialize)]
struct RawRequest {
    model: Option<String>,
    prompt: Option<Value>,
    messages: Option<Vec<RawMessage>>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    sim: Option<SimExtension>,
}

/// A chat message as requests carry it.
#[derive(Deserialize)]
pub(crate) struct RawMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The test extension `"sim": {"output_tokens": N}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimExtension {
    output_tokens: Option<usize>,
}

impl Generation {
    /// Parses and validates a request body for `endpoint` against the server's `config`.
    pub fn parse(endpoint: Endpoint, body: &[u8], config: &SimConfig) -> Result<Self, ApiError> {
        let raw: RawRequest = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}"), None))?;
        let model = raw.model.clone().unwrap_or_else(|| config.model.clone());
        let adapter = resolve_model(&model, config)?;
        let prompts = match endpoint {
            Endpoint::Completions => prompt_list(raw.prompt.as_ref(), "prompt")?,
            Endpoint::Chat => vec![chat_prompt(
                raw.messages.as_deref(),
                ChatEnding::GenerationPrompt,
            )?],
        };
        let requested = raw.max_completion_tokens.or(raw.max_tokens);
        let (max_tokens, forced_output) =
            output_limits(requested, "max_tokens", raw.sim.as_ref(), config)?;
        let generation = Self {
            model,
            adapter,
            prompts,
            max_tokens,
            forced_output,
            stream: raw.stream.unwrap_or(false),
            include_usage: raw.stream_options.is_some_and(|o| o.include_usage),
        };
        generation.check_context(config.effective_max_model_len(), "max_tokens")?;
        Ok(generation)
    }

    /// The output length a choice aims for.
    fn output_target(&self) -> usize {
        self.forced_output.unwrap_or(self.max_tokens)
    }

    /// The engine sequences, one per prompt, all reporting to `events`.
    pub fn sequences(
        &self,
        config: &SimConfig,
        hash_seed: u64,
        events: &tokio::sync::mpsc::UnboundedSender<TokenEvent>,
    ) -> Vec<NewSequence> {
        let random = self.forced_output.is_none() && config.output_length == OutputLength::Random;
        let target = self.output_target();
        let mut salt = config.seed.to_le_bytes().to_vec();
        salt.extend_from_slice(self.model.as_bytes());
        salt.extend_from_slice(&(target as u64).to_le_bytes());
        let prompts = self.prompts.iter().enumerate();
        prompts
            .map(|(index, prompt)| {
                new_sequence(
                    index as u32,
                    self.adapter.clone(),
                    hash_seed,
                    prompt,
                    OutputPlan::new(prompt.digest(&salt), target, random),
                    target,
                    events.clone(),
                )
            })
            .collect()
    }

    /// 400 when a prompt plus the output would not fit the model's context; `param` names
    /// the request's output-length field.
    pub(crate) fn check_context(
        &self,
        max_model_len: usize,
        param: &'static str,
    ) -> Result<(), ApiError> {
        let output = self.output_target();
        match self
            .prompts
            .iter()
            .map(TokenizedPrompt::len)
            .find(|p| p + output > max_model_len)
        {
            None => Ok(()),
            Some(prompt) => Err(ApiError::bad_request(
                format!(
                    "This model's maximum context length is {max_model_len} tokens. However, you \
                     requested {} tokens ({prompt} in the messages, {output} in the completion). \
                     Please reduce the length of the messages or completion.",
                    prompt + output
                ),
                Some(param),
            )),
        }
    }
}

/// `None` for the base model, the adapter for a configured LoRA name, 404 otherwise.
pub(crate) fn resolve_model(model: &str, config: &SimConfig) -> Result<Option<Arc<str>>, ApiError> {
    if model == config.model {
        return Ok(None);
    }
    match config.lora_modules.iter().find(|name| *name == model) {
        Some(name) => Ok(Some(Arc::from(name.as_str()))),
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("The model `{model}` does not exist."),
            param: Some("model"),
        }),
    }
}

/// `max_tokens` after the default and the cap, and the `sim.output_tokens` override;
/// `param` names the request's output-length field in errors.
pub(crate) fn output_limits(
    requested: Option<i64>,
    param: &'static str,
    sim: Option<&SimExtension>,
    config: &SimConfig,
) -> Result<(usize, Option<usize>), ApiError> {
    let max_tokens = match requested {
        None => config.default_max_tokens,
        Some(n) if n < 1 => {
            return Err(ApiError::bad_request(
                format!("{param} must be at least 1, got {n}."),
                Some(param),
            ));
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let forced = sim.and_then(|s| s.output_tokens);
    if forced == Some(0) {
        return Err(ApiError::bad_request(
            "sim.output_tokens must be at least 1",
            Some("sim"),
        ));
    }
    Ok((max_tokens.min(config.max_output_tokens), forced))
}

/// One prompt per item of a completions `prompt` or an embeddings `input` (`param`): a
/// string, strings, token ids, or lists of token ids.
pub(crate) fn prompt_list(
    prompt: Option<&Value>,
    param: &'static str,
) -> Result<Vec<TokenizedPrompt>, ApiError> {
    let bad = || {
        ApiError::bad_request(
            format!(
                "{param} must be a string, a list of strings, a list of token ids or a list of such lists"
            ),
            Some(param),
        )
    };
    match prompt {
        Some(Value::String(text)) => Ok(vec![TokenizedPrompt::from_text(text)]),
        Some(Value::Array(items)) if !items.is_empty() => {
            if let Some(ids) = token_ids(items) {
                return Ok(vec![TokenizedPrompt::from_ids(&ids)]);
            }
            items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(TokenizedPrompt::from_text(text)),
                    Value::Array(inner) => token_ids(inner)
                        .map(|ids| TokenizedPrompt::from_ids(&ids))
                        .ok_or_else(bad),
                    _ => Err(bad()),
                })
                .collect()
        }
        _ => Err(bad()),
    }
}

/// A JSON list of token ids, or `None` if any item is not a `u32`.
pub(crate) fn token_ids(items: &[Value]) -> Option<Vec<u32>> {
    items
        .iter()
        .map(|v| v.as_u64().and_then(|id| u32::try_from(id).ok()))
        .collect()
}

/// The tokens of chat messages rendered with the chat template, ending as `ending` says.
pub(crate) fn chat_prompt(
    messages: Option<&[RawMessage]>,
    ending: ChatEnding,
) -> Result<TokenizedPrompt, ApiError> {
    let messages = match messages {
        Some(m) if !m.is_empty() => m,
        _ => {
            return Err(ApiError::bad_request(
                "messages must be a non-empty list",
                Some("messages"),
            ));
        }
    };
    let contents: Vec<(&str, String)> = messages
        .iter()
        .map(|m| (m.role.as_str(), message_text(&m.content)))
        .collect();
    let text = render_chat(
        contents
            .iter()
            .map(|(role, content)| (*role, content.as_str())),
        ending,
    );
    Ok(TokenizedPrompt::from_text(&text))
}

/// A message's text: a string, or the `text` of its content parts.
pub(crate) fn message_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}
