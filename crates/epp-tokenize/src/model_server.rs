//! Tokens from vLLM's `POST /tokenize` on an endpoint of the pool, with an LRU cache.
//!
//! The server applies the model's own chat template, so its ids are the ones the engine
//! hashes into KV blocks. Endpoints are asked in turn (round-robin over the current
//! snapshot); a cache hit makes no call, and callers asking for a prompt whose call is in
//! progress share that call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use epp_core::datastore::Datastore;
use epp_core::tokens::{TokenSource, TokenizeError, TokenizeFuture, TokenizeRequest, Tokens};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::body::{MAX_TOKENS, Prompt, read_prompt};
use crate::cache::{TokenCache, key};
use crate::single_flight::{self, InFlight, Role};
use crate::stats::{Counters, StatsHandle, TokenizeStats};

/// Longest `/tokenize` response read (bytes); a million ids fit in well under this.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// How the model-server source behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelServerConfig {
    /// Longest wait for one call (choosing an endpoint, sending, reading the answer).
    pub timeout: Duration,
    /// Prompts kept in the cache; 0 turns the cache off.
    pub cache_entries: usize,
    /// Bytes of ids (plus bookkeeping) the cache may hold.
    pub cache_bytes: usize,
}

impl ModelServerConfig {
    /// Default byte cap of the cache: 4096 prompts of 4096 tokens.
    pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;
}

/// Asks the pool's model servers for token ids.
#[derive(Clone)]
pub struct ModelServerSource {
    inner: Arc<Inner>,
}

struct Inner {
    datastore: Arc<Datastore>,
    client: reqwest::Client,
    timeout: Duration,
    cache: Option<Mutex<TokenCache>>,
    next_endpoint: AtomicUsize,
    in_flight: Arc<InFlight>,
    stats: StatsHandle,
}

impl std::fmt::Debug for ModelServerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelServerSource")
            .field("timeout", &self.inner.timeout)
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

impl ModelServerSource {
    pub fn new(
        datastore: Arc<Datastore>,
        client: reqwest::Client,
        config: ModelServerConfig,
    ) -> Self {
        let cache = (config.cache_entries > 0)
            .then(|| Mutex::new(TokenCache::new(config.cache_entries, config.cache_bytes)));
        ModelServerSource {
            inner: Arc::new(Inner {
                datastore,
                client,
                timeout: config.timeout,
                cache,
                next_endpoint: AtomicUsize::new(0),
                in_flight: Arc::new(InFlight::default()),
                stats: StatsHandle::default(),
            }),
        }
    }

    pub fn stats(&self) -> TokenizeStats {
        self.inner.stats.read()
    }

    /// A reader of this source's counters that outlives the concrete type.
    pub fn stats_handle(&self) -> StatsHandle {
        self.inner.stats.clone()
    }
}

impl TokenSource for ModelServerSource {
    fn tokenize(&self, request: TokenizeRequest) -> TokenizeFuture {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let result = inner.tokenize(request).await;
            if let Err(error) = &result {
                inner.stats.counters().error(error);
            }
            result
        })
    }
}

// === impl Inner ===

impl Inner {
    async fn tokenize(&self, request: TokenizeRequest) -> Result<Tokens, TokenizeError> {
        let prompt = read_prompt(&request.body)?;
        let counters = self.stats.counters();
        if let Prompt::Tokens(tokens) = prompt {
            counters.passthrough();
            return Ok(tokens);
        }
        let key = key(&request.model, &prompt);
        if let Some(tokens) = self.cached(key) {
            counters.cache_hit();
            return Ok(tokens);
        }
        tokio::time::timeout(self.timeout, self.ask_once(key, &request.model, prompt))
            .await
            .unwrap_or(Err(TokenizeError::Timeout))
    }

    /// Asks a server unless the same prompt is being asked for already, in which case it
    /// waits for that answer (the caller's timeout bounds both).
    async fn ask_once(
        &self,
        key: u64,
        model: &str,
        prompt: Prompt,
    ) -> Result<Tokens, TokenizeError> {
        let counters = self.stats.counters();
        let leader = loop {
            match self.in_flight.join(key) {
                Role::Leader(leader) => break leader,
                Role::Follower(call) => {
                    if let Some(result) = single_flight::wait(call).await {
                        counters.coalesced();
                        return result;
                    }
                    // The leader gave up: try again, perhaps leading.
                }
            }
        };
        let _timing = MissTiming {
            counters,
            started: Instant::now(),
        };
        let result = self.ask(model, prompt).await;
        if let Ok(tokens) = &result {
            self.remember(key, Tokens::clone(tokens));
        }
        leader.finish(&result);
        result
    }

    fn cached(&self, key: u64) -> Option<Tokens> {
        self.cache.as_ref()?.lock().get(key)
    }

    fn remember(&self, key: u64, tokens: Tokens) {
        if let Some(cache) = &self.cache {
            let mut cache = cache.lock();
            cache.insert(key, tokens);
            self.stats.counters().cache_size(cache.len(), cache.bytes());
        }
    }

    /// One `/tokenize` call to the next endpoint in turn.
    async fn ask(&self, model: &str, prompt: Prompt) -> Result<Tokens, TokenizeError> {
        let address = self.next_address()?;
        let url = format!("http://{address}/tokenize");
        let body = request_body(model, prompt);
        let response = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| TokenizeError::Unavailable(format!("{url}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(TokenizeError::BadResponse(format!(
                "{url} answered {status}"
            )));
        }
        let bytes = read_limited(response, &url).await?;
        parse_tokens(&bytes)
            .map_err(|reason| TokenizeError::BadResponse(format!("{url}: {reason}")))
    }

    fn next_address(&self) -> Result<std::net::SocketAddr, TokenizeError> {
        let snapshot = self.datastore.snapshot();
        let endpoints = snapshot.endpoints();
        if endpoints.is_empty() {
            return Err(TokenizeError::Unavailable(
                "the pool has no endpoints".to_owned(),
            ));
        }
        let turn = self.next_endpoint.fetch_add(1, Ordering::Relaxed);
        Ok(endpoints[turn % endpoints.len()].address())
    }
}

/// Counts a call that asked a server and its latency when the call ends, also when it
/// ends by the timeout dropping it.
struct MissTiming<'a> {
    counters: &'a Counters,
    started: Instant,
}

impl Drop for MissTiming<'_> {
    fn drop(&mut self) {
        self.counters.cache_miss(self.started.elapsed());
    }
}

/// The vLLM `/tokenize` request: completion form with special tokens, or chat form with
/// no extra special tokens (the template writes them), the chat's own flags (by default a
/// generation prompt and no prefill), and its `tools` and `chat_template_kwargs` when sent.
fn request_body(model: &str, prompt: Prompt) -> Value {
    match prompt {
        Prompt::Chat(chat) => {
            let mut body = json!({
                "model": model,
                "messages": chat.messages,
                "add_generation_prompt": chat.add_generation_prompt,
                "continue_final_message": chat.continue_final_message,
                "add_special_tokens": false,
            });
            if let Some(tools) = chat.tools {
                body["tools"] = tools;
            }
            if let Some(kwargs) = chat.template_kwargs {
                body["chat_template_kwargs"] = Value::Object(kwargs);
            }
            body
        }
        Prompt::Text(text) => json!({
            "model": model,
            "prompt": text,
            "add_special_tokens": true,
        }),
        Prompt::Tokens(tokens) => json!({
            "model": model,
            "prompt": &tokens[..],
            "add_special_tokens": true,
        }),
    }
}

/// Reads the response body, refusing one over [`MAX_RESPONSE_BYTES`].
async fn read_limited(
    mut response: reqwest::Response,
    url: &str,
) -> Result<Vec<u8>, TokenizeError> {
    let too_long =
        || TokenizeError::BadResponse(format!("{url}: response over {MAX_RESPONSE_BYTES} bytes"));
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(too_long());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| TokenizeError::Unavailable(format!("{url}: reading the response: {e}")))?
    {
        if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_long());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// `{"tokens": [ids...], ...}` → the ids.
fn parse_tokens(bytes: &[u8]) -> Result<Tokens, String> {
    let mut response: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("response is not JSON: {e}"))?;
    let Some(Value::Array(ids)) = response.get_mut("tokens").map(Value::take) else {
        return Err("response has no `tokens` array".to_owned());
    };
    if ids.len() > MAX_TOKENS {
        return Err(format!(
            "{} tokens, over the limit of {MAX_TOKENS}",
            ids.len()
        ));
    }
    ids.iter()
        .map(|id| {
            id.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| format!("`tokens` holds {id}, not a token id"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tokens_of_a_response() {
        let ok = br#"{"count":3,"max_model_len":8,"tokens":[1,2,70000],"token_strs":null}"#;
        assert_eq!(parse_tokens(ok).as_deref(), Ok(&[1, 2, 70000][..]));
        let cases: &[(&[u8], &str)] = &[
            (b"<html>", "not JSON"),
            (br#"{"count":1}"#, "no `tokens`"),
            (br#"{"tokens":"1 2"}"#, "no `tokens`"),
            (br#"{"tokens":[1,"x"]}"#, "not a token id"),
            (br#"{"tokens":[-1]}"#, "not a token id"),
        ];
        for (body, want) in cases {
            let Err(reason) = parse_tokens(body) else {
                panic!("{body:?} parsed");
            };
            assert!(reason.contains(want), "{reason}");
        }
    }
}
