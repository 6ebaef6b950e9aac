//! Token ids for a request, for scorers that match what the engines cache (the precise
//! prefix-cache scorer keys its index by token blocks, as the engines do).
//!
//! Scheduling is synchronous, so tokens are fetched before it: the ext_proc service asks a
//! [`TokenSource`] (built from the scorer's [`TokenizerSpec`] by `epp-tokenize`) while the
//! stream waits, then routes with [`crate::director::RoutingRequest::tokens`] set. A source
//! that fails or times out leaves the tokens unset; the scorer then falls back to its
//! approximate index, and the request is never failed for it.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Token ids of a prompt, as the engine will see them (chat template applied).
pub type Tokens = Arc<[u32]>;

/// What to tokenize: the target model and the request body, whose `prompt` or `messages` the
/// source reads (the body is lent for the call and handed back to the stream afterwards).
#[derive(Debug, Clone)]
pub struct TokenizeRequest {
    /// The model the server will run (after the rewrite header).
    pub model: String,
    /// The OpenAI request body (completions, chat completions).
    pub body: bytes::Bytes,
}

/// Why a request has no tokens. Label values of the tokenization metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenizeError {
    #[error("tokenization timed out")]
    Timeout,
    /// No model server to ask (empty pool) or the server could not be reached.
    #[error("tokenizer unavailable: {0}")]
    Unavailable(String),
    /// The server or tokenizer answered something unusable.
    #[error("bad tokenizer response: {0}")]
    BadResponse(String),
    /// The body has neither a prompt nor messages this source can tokenize.
    #[error("nothing to tokenize: {0}")]
    Unsupported(String),
}

impl TokenizeError {
    /// A short, stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unavailable(_) => "unavailable",
            Self::BadResponse(_) => "bad_response",
            Self::Unsupported(_) => "unsupported",
        }
    }
}

/// A boxed future, so sources can be trait objects without an async-trait dependency.
pub type TokenizeFuture = Pin<Box<dyn Future<Output = Result<Tokens, TokenizeError>> + Send>>;

/// Turns request bodies into token ids. Implementations enforce their own timeout.
pub trait TokenSource: Send + Sync + 'static {
    fn tokenize(&self, request: TokenizeRequest) -> TokenizeFuture;
}

/// Where a scorer wants its tokens from, as configured (`tokenizer:` in its parameters).
#[derive(Debug, Clone, PartialEq)]
pub enum TokenizerSpec {
    /// vLLM's `POST /tokenize` on a ready endpoint of the pool.
    ModelServer {
        /// Longest wait before scoring without tokens.
        timeout: Duration,
        /// Prompts whose tokens are kept (an LRU keyed by the prompt), 0 for none.
        cache_entries: usize,
    },
    /// A Hugging Face `tokenizer.json`, in process.
    File {
        path: PathBuf,
        /// A Jinja chat template (`tokenizer_config.json`'s `chat_template`, or a file
        /// holding the template text); without one, chat messages are joined by newlines.
        chat_template: Option<PathBuf>,
        timeout: Duration,
    },
}

impl TokenizerSpec {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
    pub const DEFAULT_CACHE_ENTRIES: usize = 4096;

    pub fn timeout(&self) -> Duration {
        match self {
            Self::ModelServer { timeout, .. } | Self::File { timeout, .. } => *timeout,
        }
    }
}
