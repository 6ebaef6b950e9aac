//! `POST /v1/embeddings`, as vLLM serves it for an embedding model.
//!
//! Each input runs through the engine as a prefill-only sequence: its single engine token marks
//! the end of prefill and is not returned, so embeddings queue, batch, fill the KV cache and
//! count in `/metrics` like the prefill of a generation. The vector is a deterministic function
//! of the model and the input's tokens, L2-normalised (vLLM normalises embeddings by default);
//! `dimensions` keeps a prefix of it, renormalised, as Matryoshka models do.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::api::{ApiError, Generation, prompt_list, resolve_model};
use crate::config::SimConfig;
use crate::sequence::TokenEvent;
use crate::tokens::TokenizedPrompt;

/// Inputs × dimensions one response may hold (about 50 MB of JSON), so that a request
/// cannot make the server build an unbounded answer.
pub const MAX_VALUES_PER_RESPONSE: usize = 4 * 1024 * 1024;

/// How vectors are written: JSON numbers, or base64 of little-endian `f32`s (what the
/// `openai` Python SDK asks for by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `"float"`.
    Float,
    /// `"base64"`.
    Base64,
}

/// A validated embeddings request.
#[derive(Debug)]
pub struct EmbeddingRequest {
    /// The engine's view: one prompt per input, one token each, never streamed.
    pub generation: Generation,
    /// Vector length.
    pub dimensions: usize,
    /// Vector encoding.
    pub encoding: Encoding,
}

#[derive(Deserialize)]
struct RawRequest {
    model: Option<String>,
    input: Option<Value>,
    encoding_format: Option<String>,
    dimensions: Option<i64>,
}

impl EmbeddingRequest {
    /// Parses and validates a body against the server's `config`.
    pub fn parse(body: &[u8], config: &SimConfig) -> Result<Self, ApiError> {
        let raw: RawRequest = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}"), None))?;
        let model = raw.model.unwrap_or_else(|| config.model.clone());
        let adapter = resolve_model(&model, config)?;
        let prompts = prompt_list(raw.input.as_ref(), "input")?;
        let dimensions = match raw.dimensions {
            None => config.embedding_dim,
            Some(n) if n >= 1 && n <= config.embedding_dim as i64 => n as usize,
            Some(n) => {
                return Err(ApiError::bad_request(
                    format!(
                        "dimensions must be between 1 and the model's {}, got {n}",
                        config.embedding_dim
                    ),
                    Some("dimensions"),
                ));
            }
        };
        let values = prompts.len().saturating_mul(dimensions);
        if values > MAX_VALUES_PER_RESPONSE {
            return Err(ApiError::bad_request(
                format!(
                    "{} inputs of {dimensions} dimensions exceed the simulator's \
                     {MAX_VALUES_PER_RESPONSE} values per response; send fewer inputs",
                    prompts.len()
                ),
                Some("input"),
            ));
        }
        let encoding = match raw.encoding_format.as_deref() {
            None | Some("float") => Encoding::Float,
            Some("base64") => Encoding::Base64,
            Some(other) => {
                return Err(ApiError::bad_request(
                    format!("encoding_format must be \"float\" or \"base64\", got {other:?}"),
                    Some("encoding_format"),
                ));
            }
        };
        let generation = Generation {
            model,
            adapter,
            prompts,
            max_tokens: 1,
            forced_output: Some(1),
            stream: false,
            include_usage: false,
        };
        check_context(&generation.prompts, config.effective_max_model_len())?;
        Ok(Self {
            generation,
            dimensions,
            encoding,
        })
    }

    /// Waits until the engine has prefilled every input, then builds the response.
    pub async fn respond(
        &self,
        id: String,
        created: u64,
        mut events: UnboundedReceiver<TokenEvent>,
    ) -> Result<Value, ApiError> {
        let prompts = &self.generation.prompts;
        let mut done = vec![false; prompts.len()];
        let mut open = prompts.len();
        while open > 0 {
            let event = events
                .recv()
                .await
                .ok_or_else(crate::respond::engine_gone)?;
            let slot = done.get_mut(event.index as usize);
            if let (Some(slot), Some(_)) = (slot, event.finish)
                && !*slot
            {
                *slot = true;
                open -= 1;
            }
        }
        let data: Vec<Value> = prompts
            .iter()
            .enumerate()
            .map(|(index, prompt)| {
                let vector = embedding(&self.generation.model, prompt, self.dimensions);
                json!({"index": index, "object": "embedding", "embedding": self.encode(&vector)})
            })
            .collect();
        let prompt_tokens: usize = prompts.iter().map(TokenizedPrompt::len).sum();
        Ok(json!({
            "id": id, "object": "list", "created": created, "model": self.generation.model,
            "data": data,
            "usage": {
                "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens,
                "completion_tokens": 0, "prompt_tokens_details": null,
            },
        }))
    }

    fn encode(&self, vector: &[f32]) -> Value {
        match self.encoding {
            // Via the shortest decimal of each f32: as f64 they would print 17 digits, twice
            // the bytes of what vLLM sends.
            Encoding::Float => vector
                .iter()
                .filter_map(|x| x.to_string().parse::<f64>().ok())
                .filter_map(serde_json::Number::from_f64)
                .map(Value::Number)
                .collect(),
            Encoding::Base64 => {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(STANDARD.encode(bytes))
            }
        }
    }
}

/// 400 when an input does not fit the context with the one token that ends its prefill.
fn check_context(prompts: &[TokenizedPrompt], max_model_len: usize) -> Result<(), ApiError> {
    match prompts
        .iter()
        .map(TokenizedPrompt::len)
        .find(|&n| n >= max_model_len)
    {
        None => Ok(()),
        Some(tokens) => Err(ApiError::bad_request(
            format!(
                "This model's maximum context length is {max_model_len} tokens. However, you \
                 requested {tokens} tokens in the input for embedding generation. Please reduce \
                 the length of the input."
            ),
            Some("input"),
        )),
    }
}

/// The unit vector of `prompt` under `model`: its first `dimensions` components, which do not
/// depend on how many are asked for, renormalised.
pub fn embedding(model: &str, prompt: &TokenizedPrompt, dimensions: usize) -> Vec<f32> {
    let mut rng = SmallRng::seed_from_u64(prompt.digest(model.as_bytes()));
    let mut vector: Vec<f32> = (0..dimensions)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}
