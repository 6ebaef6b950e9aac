//! Token sources for the precise prefix-cache scorer: the `epp_core::tokens` contract
//! implemented by vLLM's `/tokenize` on a pool endpoint ([`ModelServerSource`], with an
//! LRU cache) or by a Hugging Face `tokenizer.json` in process ([`FileSource`]).
//!
//! [`build`] turns a scorer's `TokenizerSpec` into one. Every source reads the request
//! body the same way ([`body`]), enforces its own timeout, and keeps counters
//! ([`TokenizeStats`]) for the binary's metrics.

#![forbid(unsafe_code)]

pub mod body;
mod builder;
mod cache;
mod chat_template;
mod file;
mod model_server;
mod single_flight;
mod stats;

pub use builder::{BuildError, BuiltSource, build, build_with_stats};
pub use chat_template::ChatTemplate;
pub use file::FileSource;
pub use model_server::{MAX_RESPONSE_BYTES, ModelServerConfig, ModelServerSource};
pub use stats::{ErrorCounts, StatsHandle, TokenizeStats};
