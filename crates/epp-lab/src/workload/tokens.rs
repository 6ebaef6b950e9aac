//! Token ids, their text, and deterministic token blocks.
//!
//! The engine caches by token ids; the approximate prefix scorer hashes prompt bytes. A
//! prompt therefore carries both: its ids, and a text rendered at 4 bytes per token, about
//! what real English text averages, so byte blocks cover as many tokens as on real traffic.

use std::sync::OnceLock;

use xxhash_rust::xxh64::xxh64;

/// Token ids are drawn from `0..VOCAB`.
pub const VOCAB: u32 = 32_000;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A prompt: token ids, plus their text rendered on first use.
#[derive(Debug)]
pub struct Prompt {
    pub tokens: Vec<u32>,
    text: OnceLock<String>,
}

impl Prompt {
    pub fn new(tokens: Vec<u32>) -> Self {
        Prompt {
            tokens,
            text: OnceLock::new(),
        }
    }

    /// The prompt text (see [`render`]), rendered once.
    pub fn text(&self) -> &str {
        self.text.get_or_init(|| render(&self.tokens))
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Renders token ids as text, 4 ASCII characters per token (base-64 digits of the low 24
/// bits), so equal token prefixes give equal byte prefixes and the byte length is 4 × tokens.
pub fn render(tokens: &[u32]) -> String {
    let mut text = String::with_capacity(tokens.len() * 4);
    for &token in tokens {
        for shift in [18u32, 12, 6, 0] {
            let digit = (token >> shift) & 0x3f;
            text.push(char::from(ALPHABET[digit as usize]));
        }
    }
    text
}

/// A token id derived from a key and a position: the same (key, n) always gives the same id.
pub fn derived_token(key: u64, n: u64) -> u32 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&key.to_le_bytes());
    bytes[8..].copy_from_slice(&n.to_le_bytes());
    (xxh64(&bytes, 0x0065_7070_2d6c_6162) % u64::from(VOCAB)) as u32
}

/// The n-th output token of a request. Deterministic, so a later round of a multi-turn
/// session can contain the earlier answer and hit the cache the answer filled.
pub fn output_token(output_key: u64, n: u32) -> u32 {
    derived_token(output_key ^ 0x6f75_7470_7574, u64::from(n))
}

/// `len` tokens standing for one trace block hash: the same hash gives the same tokens.
pub fn block_tokens(hash: u64, len: usize, out: &mut Vec<u32>) {
    out.extend((0..len as u64).map(|n| derived_token(hash, n)));
}

/// A key derived from several numbers (seed, index, ...), for output keys and block ids.
pub fn mix(parts: &[u64]) -> u64 {
    let mut bytes = Vec::with_capacity(parts.len() * 8);
    for part in parts {
        bytes.extend_from_slice(&part.to_le_bytes());
    }
    xxh64(&bytes, 0x006d_6978)
}
