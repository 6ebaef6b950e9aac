//! `POST /v1/responses`: OpenAI's Responses API as vLLM serves it, without stored responses.
//!
//! `instructions` (as a system message) and `input` (a text, or input items: messages and
//! function-call outputs) are rendered with the chat template and generated like a chat
//! completion. The answer is one `message` output item holding one `output_text` part, as a
//! JSON `response` object or, with `"stream": true`, as the Responses event sequence:
//! `response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, one `response.output_text.delta` per token, then the
//! matching `.done` events and `response.completed`. As vLLM does (and the `openai` SDK's
//! stream helper expects), the last event is `response.completed` even when
//! `max_output_tokens` cut the answer short; its response's `status` then says
//! `incomplete`. Every SSE event is `event: <type>` plus `data: <json>`, numbered by
//! `sequence_number`; there is no `[DONE]`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::api::{ApiError, Generation, SimExtension, message_text, output_limits, resolve_model};
use crate::config::SimConfig;
use crate::respond::engine_gone;
use crate::sequence::{Finish, TokenEvent};
use crate::tokens::{ChatEnding, TokenizedPrompt, render_chat, word_text};
use epp_engine::FinishReason;

/// A validated Responses request.
#[derive(Debug)]
pub struct ResponsesRequest {
    /// The engine's view: one prompt (the rendered conversation).
    pub generation: Generation,
    instructions: Option<String>,
    max_output_tokens: Option<i64>,
}

#[derive(Deserialize)]
struct RawRequest {
    model: Option<String>,
    input: Option<Value>,
    instructions: Option<String>,
    max_output_tokens: Option<i64>,
    stream: Option<bool>,
    previous_response_id: Option<String>,
    sim: Option<SimExtension>,
}

impl ResponsesRequest {
    /// Parses and validates a body against the server's `config`.
    pub fn parse(body: &[u8], config: &SimConfig) -> Result<Self, ApiError> {
        let raw: RawRequest = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}"), None))?;
        if raw.previous_response_id.is_some() {
            return Err(ApiError::bad_request(
                "previous_response_id is not supported: the simulator stores no responses; \
                 send the whole conversation in input",
                Some("previous_response_id"),
            ));
        }
        let model = raw.model.unwrap_or_else(|| config.model.clone());
        let adapter = resolve_model(&model, config)?;
        let mut messages = Vec::new();
        if let Some(instructions) = &raw.instructions {
            messages.push(("system".to_owned(), instructions.clone()));
        }
        messages.extend(input_messages(raw.input.as_ref())?);
        let text = render_chat(
            messages.iter().map(|(r, c)| (r.as_str(), c.as_str())),
            ChatEnding::GenerationPrompt,
        );
        let (max_tokens, forced_output) = output_limits(
            raw.max_output_tokens,
            "max_output_tokens",
            raw.sim.as_ref(),
            config,
        )?;
        let generation = Generation {
            model,
            adapter,
            prompts: vec![TokenizedPrompt::from_text(&text)],
            max_tokens,
            forced_output,
            stream: raw.stream.unwrap_or(false),
            include_usage: false,
        };
        generation.check_context(config.effective_max_model_len(), "max_output_tokens")?;
        Ok(Self {
            generation,
            instructions: raw.instructions,
            max_output_tokens: raw.max_output_tokens,
        })
    }

    /// What every event of the answer repeats; `id` is `resp_…`, the message gets `msg_…`.
    pub fn reply(self, id: String, created_at: u64) -> Reply {
        let message_id = format!("msg_{}", id.trim_start_matches("resp_"));
        Reply {
            input_tokens: self.generation.prompts.iter().map(|p| p.len()).sum(),
            model: self.generation.model,
            id,
            message_id,
            created_at,
            instructions: self.instructions,
            max_output_tokens: self.max_output_tokens,
        }
    }
}

/// `input` as (role, text) pairs.
fn input_messages(input: Option<&Value>) -> Result<Vec<(String, String)>, ApiError> {
    let bad = |what: &str| ApiError::bad_request(format!("input {what}"), Some("input"));
    match input {
        Some(Value::String(text)) => Ok(vec![("user".to_owned(), text.clone())]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| {
                if let Some(role) = item.get("role").and_then(Value::as_str) {
                    let content = item.get("content").unwrap_or(&Value::Null);
                    return Ok((role.to_owned(), message_text(content)));
                }
                match item.get("type").and_then(Value::as_str) {
                    Some("function_call_output") => {
                        let output = item.get("output").unwrap_or(&Value::Null);
                        Ok(("tool".to_owned(), message_text(output)))
                    }
                    Some("function_call") => {
                        let arguments = item.get("arguments").and_then(Value::as_str);
                        Ok(("assistant".to_owned(), arguments.unwrap_or("").to_owned()))
                    }
                    _ => Err(bad(
                        "items must be messages (role and content), function_call or \
                         function_call_output items",
                    )),
                }
            })
            .collect(),
        _ => Err(bad("must be a string or a non-empty list of input items")),
    }
}

/// The identity and settings of one response, repeated in its JSON and events.
#[derive(Debug)]
pub struct Reply {
    id: String,
    message_id: String,
    created_at: u64,
    model: String,
    instructions: Option<String>,
    max_output_tokens: Option<i64>,
    input_tokens: usize,
}

/// The answer so far.
#[derive(Debug, Default)]
struct Progress {
    text: String,
    tokens: usize,
    finish: Option<Finish>,
}

impl Reply {
    /// `completed`, or `incomplete` when the answer stopped at the client's `max_output_tokens`.
    fn status(&self, finish: Finish) -> &'static str {
        match finish.reason == FinishReason::Length && self.max_output_tokens.is_some() {
            true => "incomplete",
            false => "completed",
        }
    }

    fn output_text(text: &str) -> Value {
        json!({"type": "output_text", "text": text, "annotations": []})
    }

    fn message(&self, status: &str, content: Vec<Value>) -> Value {
        json!({
            "id": self.message_id, "type": "message", "status": status, "role": "assistant",
            "content": content,
        })
    }

    /// The `response` object: in progress (no output yet), or finished with `progress`.
    fn object(&self, progress: Option<&Progress>, failed: Option<&ApiError>) -> Value {
        let finished = progress.and_then(|p| p.finish.map(|f| (p, f)));
        let (status, output, usage, incomplete) = match (finished, failed) {
            (_, Some(_)) => ("failed", json!([]), Value::Null, Value::Null),
            (None, None) => ("in_progress", json!([]), Value::Null, Value::Null),
            (Some((progress, finish)), None) => {
                let status = self.status(finish);
                let incomplete = match status {
                    "incomplete" => json!({"reason": "max_output_tokens"}),
                    _ => Value::Null,
                };
                let item = self.message("completed", vec![Self::output_text(&progress.text)]);
                (
                    status,
                    json!([item]),
                    self.usage(progress, finish),
                    incomplete,
                )
            }
        };
        let error = failed.map_or(
            Value::Null,
            |e| json!({"code": "server_error", "message": e.message}),
        );
        json!({
            "id": self.id, "object": "response", "created_at": self.created_at,
            "status": status, "error": error, "incomplete_details": incomplete,
            "instructions": self.instructions, "max_output_tokens": self.max_output_tokens,
            "model": self.model, "output": output, "parallel_tool_calls": true,
            "previous_response_id": null, "reasoning": {"effort": null, "summary": null},
            "store": false, "temperature": 1.0, "text": {"format": {"type": "text"}},
            "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
            "usage": usage, "user": null, "metadata": {},
        })
    }

    fn usage(&self, progress: &Progress, finish: Finish) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": finish.cached_tokens},
            "output_tokens": progress.tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + progress.tokens,
        })
    }

    /// Waits for the whole answer and builds the non-streaming response.
    pub async fn collect(
        &self,
        mut events: UnboundedReceiver<TokenEvent>,
    ) -> Result<Value, ApiError> {
        let mut progress = Progress::default();
        while progress.finish.is_none() {
            let event = events.recv().await.ok_or_else(engine_gone)?;
            progress.text.push_str(word_text(event.word));
            progress.tokens += 1;
            progress.finish = event.finish;
        }
        Ok(self.object(Some(&progress), None))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Opening,
    Streaming,
    Done,
}

/// The SSE body of a streamed response.
pub struct ResponsesSse {
    reply: Reply,
    events: UnboundedReceiver<TokenEvent>,
    progress: Progress,
    sequence_number: u64,
    phase: Phase,
}

impl ResponsesSse {
    /// A stream over `events`.
    pub fn new(reply: Reply, events: UnboundedReceiver<TokenEvent>) -> Self {
        Self {
            reply,
            events,
            progress: Progress::default(),
            sequence_number: 0,
            phase: Phase::Opening,
        }
    }

    /// Appends one event; `fields` is its JSON object without `type` and `sequence_number`.
    fn push(&mut self, out: &mut Vec<u8>, kind: &str, mut fields: Value) {
        fields["type"] = json!(kind);
        fields["sequence_number"] = json!(self.sequence_number);
        self.sequence_number += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        // Serializing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &fields);
        out.extend_from_slice(b"\n\n");
    }

    /// Sent before the first token, so the client sees the response start at once.
    fn opening(&mut self) -> Bytes {
        let mut out = Vec::with_capacity(2048);
        let response = self.reply.object(None, None);
        self.push(&mut out, "response.created", json!({"response": response}));
        self.push(
            &mut out,
            "response.in_progress",
            json!({"response": response}),
        );
        let item = self.reply.message("in_progress", vec![]);
        self.push(
            &mut out,
            "response.output_item.added",
            json!({"output_index": 0, "item": item}),
        );
        let part = Reply::output_text("");
        let ids = self.part_ids();
        self.push(
            &mut out,
            "response.content_part.added",
            merge(ids, json!({"part": part})),
        );
        Bytes::from(out)
    }

    fn part_ids(&self) -> Value {
        json!({"item_id": self.reply.message_id, "output_index": 0, "content_index": 0})
    }

    fn on_token(&mut self, event: TokenEvent) -> Bytes {
        let mut out = Vec::with_capacity(512);
        let delta = word_text(event.word);
        self.progress.text.push_str(delta);
        self.progress.tokens += 1;
        let ids = self.part_ids();
        self.push(
            &mut out,
            "response.output_text.delta",
            merge(ids.clone(), json!({"delta": delta, "logprobs": []})),
        );
        if event.finish.is_none() {
            return Bytes::from(out);
        }
        self.progress.finish = event.finish;
        let text = self.progress.text.clone();
        self.push(
            &mut out,
            "response.output_text.done",
            merge(ids.clone(), json!({"text": text, "logprobs": []})),
        );
        let part = Reply::output_text(&text);
        self.push(
            &mut out,
            "response.content_part.done",
            merge(ids, json!({"part": part})),
        );
        let item = self.reply.message("completed", vec![part]);
        self.push(
            &mut out,
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        );
        let response = self.reply.object(Some(&self.progress), None);
        self.push(
            &mut out,
            "response.completed",
            json!({"response": response}),
        );
        self.phase = Phase::Done;
        Bytes::from(out)
    }

    fn on_engine_gone(&mut self) -> Bytes {
        let mut out = Vec::new();
        let response = self.reply.object(None, Some(&engine_gone()));
        self.push(&mut out, "response.failed", json!({"response": response}));
        self.phase = Phase::Done;
        Bytes::from(out)
    }
}

/// `base` with `extra`'s fields added (both objects).
fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

impl Body for ResponsesSse {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let data = match this.phase {
            Phase::Done => return Poll::Ready(None),
            Phase::Opening => {
                this.phase = Phase::Streaming;
                this.opening()
            }
            Phase::Streaming => match ready!(this.events.poll_recv(cx)) {
                Some(event) => this.on_token(event),
                None => this.on_engine_gone(),
            },
        };
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.phase == Phase::Done
    }
}
