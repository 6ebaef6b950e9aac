//! OpenAI response bodies for a running generation: one JSON document, or SSE chunks
//! (`data: {…}\n\n` per token, then an optional usage chunk with empty `choices`, then
//! `data: [DONE]\n\n`), shaped like vLLM's.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::StatusCode;
use hyper::body::{Body, Frame};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::api::{ApiError, Endpoint};
use crate::sequence::{Finish, TokenEvent};
use crate::tokens::word_text;

/// What every response or chunk of one request repeats.
#[derive(Debug)]
pub struct ResponseMeta {
    /// `cmpl-…` or `chatcmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The requested model name.
    pub model: String,
    /// Completions or chat.
    pub endpoint: Endpoint,
    /// Prompt tokens per choice.
    pub prompt_tokens: Vec<usize>,
}

/// Per-choice progress.
#[derive(Debug, Default, Clone)]
struct ChoiceState {
    text: String,
    tokens: usize,
    finish: Option<Finish>,
}

impl ResponseMeta {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Completions, _) => "text_completion",
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
        }
    }

    fn usage(&self, choices: &[ChoiceState]) -> Value {
        let prompt: usize = self.prompt_tokens.iter().sum();
        let completion: usize = choices.iter().map(|c| c.tokens).sum();
        let cached: usize = choices
            .iter()
            .filter_map(|c| c.finish)
            .map(|f| f.cached_tokens)
            .sum();
        json!({
            "prompt_tokens": prompt,
            "total_tokens": prompt + completion,
            "completion_tokens": completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        })
    }

    fn envelope(&self, chunk: bool, choices: Value) -> Value {
        json!({
            "id": self.id, "object": self.object(chunk), "created": self.created,
            "model": self.model, "choices": choices,
        })
    }

    fn full_choice(&self, index: usize, choice: &ChoiceState) -> Value {
        let reason = choice.finish.map(|f| f.reason.as_str());
        match self.endpoint {
            Endpoint::Completions => json!({
                "index": index, "text": choice.text, "logprobs": null,
                "finish_reason": reason, "stop_reason": null,
            }),
            Endpoint::Chat => json!({
                "index": index,
                "message": {"role": "assistant", "content": choice.text, "tool_calls": []},
                "logprobs": null, "finish_reason": reason, "stop_reason": null,
            }),
        }
    }

    fn token_chunk(&self, event: &TokenEvent) -> Value {
        let text = word_text(event.word);
        let reason = event.finish.map(|f| f.reason.as_str());
        let choice = match self.endpoint {
            Endpoint::Completions => json!({
                "index": event.index, "text": text, "logprobs": null,
                "finish_reason": reason, "stop_reason": null,
            }),
            Endpoint::Chat => json!({
                "index": event.index, "delta": {"content": text}, "logprobs": null,
                "finish_reason": reason,
            }),
        };
        self.envelope(true, json!([choice]))
    }

    fn role_chunk(&self, index: u32) -> Value {
        let choice = json!({
            "index": index, "delta": {"role": "assistant", "content": ""},
            "logprobs": null, "finish_reason": null,
        });
        self.envelope(true, json!([choice]))
    }
}

pub(crate) fn engine_gone() -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "the server is shutting down".to_owned(),
        param: None,
    }
}

/// Waits for every choice to finish and builds the non-streaming response.
pub async fn collect(
    meta: ResponseMeta,
    mut events: UnboundedReceiver<TokenEvent>,
) -> Result<Value, ApiError> {
    let mut choices = vec![ChoiceState::default(); meta.prompt_tokens.len()];
    let mut open = choices.len();
    while open > 0 {
        let event = events.recv().await.ok_or_else(engine_gone)?;
        let Some(choice) = choices.get_mut(event.index as usize) else {
            continue;
        };
        choice.text.push_str(word_text(event.word));
        choice.tokens += 1;
        if event.finish.is_some() {
            choice.finish = event.finish;
            open -= 1;
        }
    }
    let list: Vec<Value> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| meta.full_choice(i, c))
        .collect();
    let mut body = meta.envelope(false, Value::Array(list));
    body["usage"] = meta.usage(&choices);
    Ok(body)
}

/// The SSE body of a streaming response.
pub struct SseBody {
    meta: ResponseMeta,
    events: UnboundedReceiver<TokenEvent>,
    choices: Vec<ChoiceState>,
    open: usize,
    include_usage: bool,
    done: bool,
}

impl SseBody {
    /// A stream over `events`.
    pub fn new(
        meta: ResponseMeta,
        events: UnboundedReceiver<TokenEvent>,
        include_usage: bool,
    ) -> Self {
        let choices = vec![ChoiceState::default(); meta.prompt_tokens.len()];
        let open = choices.len();
        Self {
            meta,
            events,
            choices,
            open,
            include_usage,
            done: false,
        }
    }

    fn on_event(&mut self, event: TokenEvent) -> Bytes {
        let mut out = Vec::with_capacity(512);
        let Some(choice) = self.choices.get_mut(event.index as usize) else {
            return Bytes::new();
        };
        if choice.tokens == 0 && self.meta.endpoint == Endpoint::Chat {
            push_data(&mut out, &self.meta.role_chunk(event.index));
        }
        choice.tokens += 1;
        if event.finish.is_some() {
            choice.finish = event.finish;
            self.open -= 1;
        }
        push_data(&mut out, &self.meta.token_chunk(&event));
        if self.open == 0 {
            if self.include_usage {
                let mut last = self.meta.envelope(true, json!([]));
                last["usage"] = self.meta.usage(&self.choices);
                push_data(&mut out, &last);
            }
            out.extend_from_slice(b"data: [DONE]\n\n");
            self.done = true;
        }
        Bytes::from(out)
    }

    fn on_engine_gone(&mut self) -> Bytes {
        self.done = true;
        let mut out = Vec::new();
        push_data(&mut out, &engine_gone().body());
        out.extend_from_slice(b"data: [DONE]\n\n");
        Bytes::from(out)
    }
}

fn push_data(out: &mut Vec<u8>, value: &Value) {
    out.extend_from_slice(b"data: ");
    // Serializing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
    out.extend_from_slice(b"\n\n");
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let data = match ready!(this.events.poll_recv(cx)) {
            Some(event) => this.on_event(event),
            None => this.on_engine_gone(),
        };
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}
