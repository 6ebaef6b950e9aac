//! vLLM KV-cache events as a router receives them: the ZMQ message `[topic, seq, payload]`, the
//! msgpack `KVEventBatch` inside it (decoded in [`wire`], encoded in [`encode`]), and
//! engine-independent block keys ([`keys`]). No I/O here: the ZMQ transport uses this crate.

mod decode_event;
pub mod encode;
mod error;
mod event;
pub mod keys;
mod reader;
pub mod wire;

pub use encode::{Layout, encode_batch, encode_batch_with, encode_message};
pub use error::DecodeError;
pub use event::{
    BlockHash, BlockRemoved, BlockStored, EventBatch, HashBytes, KvEvent, MAX_HASH_BYTES, Medium,
};
pub use keys::{block_keys, chain_key, key_seed};
pub use wire::{
    Limits, Message, REPLAY_TERMINATOR_SEQ, decode_batch, decode_message, decode_replay_message,
    decode_seq,
};
