//! Tokens from a Hugging Face `tokenizer.json`, in process.
//!
//! Encoding is CPU work, so it runs on tokio's blocking pool; a semaphore bounds how many
//! encodings may be queued or running, and a call that cannot finish (or start) within the
//! timeout gives up while a started encoding completes on its own.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use epp_core::tokens::{TokenSource, TokenizeError, TokenizeFuture, TokenizeRequest, Tokens};
use serde_json::Value;
use tokenizers::Tokenizer;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::body::{MAX_TOKENS, Prompt, read_prompt};
use crate::chat_template::ChatTemplate;
use crate::stats::{StatsHandle, TokenizeStats};

/// Encodes prompts with a tokenizer loaded from a file.
#[derive(Clone)]
pub struct FileSource {
    inner: Arc<Inner>,
}

struct Inner {
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    timeout: Duration,
    /// One permit per encoding queued or running on the blocking pool.
    encodings: Arc<Semaphore>,
    stats: StatsHandle,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("template", &self.inner.template)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl FileSource {
    /// A source over `tokenizer`, rendering chats with `template` (see [`Self::encode`]),
    /// running at most `max_concurrent` encodings at once (at least 1).
    pub fn new(
        tokenizer: Tokenizer,
        template: Option<ChatTemplate>,
        timeout: Duration,
        max_concurrent: usize,
    ) -> Self {
        FileSource {
            inner: Arc::new(Inner {
                tokenizer,
                template,
                timeout,
                encodings: Arc::new(Semaphore::new(max_concurrent.max(1))),
                stats: StatsHandle::default(),
            }),
        }
    }

    /// Loads `tokenizer.json` from `path`; errors are one message without the path.
    pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        Tokenizer::from_bytes(bytes).map_err(|e| format!("not a tokenizer.json: {e}"))
    }

    pub fn stats(&self) -> TokenizeStats {
        self.inner.stats.read()
    }

    /// A reader of this source's counters that outlives the concrete type.
    pub fn stats_handle(&self) -> StatsHandle {
        self.inner.stats.clone()
    }

    /// The ids of `prompt`, synchronously. A completion prompt is encoded with the
    /// tokenizer's special tokens. A chat is rendered with the template and encoded without
    /// them (the template writes them); without a template, the messages are joined as
    /// `role: content` lines and encoded with special tokens, an approximation of what the
    /// server's own template produces, so prefixes match across requests but not
    /// necessarily the engine's blocks.
    pub fn encode(&self, prompt: Prompt) -> Result<Tokens, TokenizeError> {
        self.inner.encode(prompt)
    }
}

impl TokenSource for FileSource {
    fn tokenize(&self, request: TokenizeRequest) -> TokenizeFuture {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let started = Instant::now();
            let result = tokio::time::timeout(inner.timeout, Arc::clone(&inner).run(request))
                .await
                .unwrap_or(Err(TokenizeError::Timeout));
            let counters = inner.stats.counters();
            match result {
                Err(error) => {
                    // A body without a prompt never reached the tokenizer.
                    if !matches!(error, TokenizeError::Unsupported(_)) {
                        counters.cache_miss(started.elapsed());
                    }
                    counters.error(&error);
                    Err(error)
                }
                Ok(Encoded::Passthrough(tokens)) => {
                    counters.passthrough();
                    Ok(tokens)
                }
                Ok(Encoded::Tokenized(tokens)) => {
                    counters.cache_miss(started.elapsed());
                    Ok(tokens)
                }
            }
        })
    }
}

/// Whether the tokenizer ran (for the counters).
enum Encoded {
    Passthrough(Tokens),
    Tokenized(Tokens),
}

// === impl Inner ===

impl Inner {
    /// Waits for a permit, then reads and encodes on the blocking pool. The permit moves
    /// into the blocking task, so it is held until the encoding really ends.
    async fn run(self: Arc<Self>, request: TokenizeRequest) -> Result<Encoded, TokenizeError> {
        let permit = Arc::clone(&self.encodings)
            .acquire_owned()
            .await
            .map_err(|_| TokenizeError::Unavailable("the tokenizer is shut down".to_owned()))?;
        let encoding = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match read_prompt(&request.body)? {
                Prompt::Tokens(tokens) => Ok(Encoded::Passthrough(tokens)),
                prompt => self.encode(prompt).map(Encoded::Tokenized),
            }
        });
        encoding
            .await
            .map_err(|e| TokenizeError::BadResponse(format!("the tokenizer panicked: {e}")))?
    }

    fn encode(&self, prompt: Prompt) -> Result<Tokens, TokenizeError> {
        let (text, add_special_tokens) = match prompt {
            Prompt::Tokens(tokens) => return Ok(tokens),
            Prompt::Text(text) => (text, true),
            Prompt::Chat(chat) => match &self.template {
                Some(template) => (
                    template.render(&chat).map_err(TokenizeError::Unsupported)?,
                    false,
                ),
                None => (join_messages(&chat.messages), true),
            },
        };
        let encoding = self
            .tokenizer
            .encode(text, add_special_tokens)
            .map_err(|e| TokenizeError::BadResponse(format!("the tokenizer failed: {e}")))?;
        let ids = encoding.get_ids();
        if ids.len() > MAX_TOKENS {
            return Err(TokenizeError::Unsupported(format!(
                "{} tokens, over the limit of {MAX_TOKENS}",
                ids.len()
            )));
        }
        Ok(Tokens::from(ids))
    }
}

/// `role: content` lines; array contents contribute their `text` parts.
fn join_messages(messages: &[Value]) -> String {
    let mut joined = String::new();
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            joined.push('\n');
        }
        joined.push_str(
            message
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        joined.push_str(": ");
        match message.get("content") {
            Some(Value::String(text)) => joined.push_str(text),
            Some(Value::Array(parts)) => {
                for text in parts.iter().filter_map(|p| p.get("text")?.as_str()) {
                    joined.push_str(text);
                }
            }
            _ => {}
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_messages_as_role_lines() {
        let messages = serde_json::json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]},
            {"role": "assistant"},
        ]);
        let Value::Array(messages) = messages else {
            panic!("array")
        };
        assert_eq!(
            join_messages(&messages),
            "system: be brief\nuser: ab\nassistant: "
        );
    }
}
