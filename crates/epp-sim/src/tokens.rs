//! Text → token approximation and the deterministic output text.
//!
//! A token is 4 bytes: text is cut into 4-byte pieces (the last one zero-padded), so a prompt
//! of `len` bytes has `ceil(len / 4)` tokens; a list of token ids keeps one id per token (as
//! 4 little-endian bytes). Output tokens are 4-character words from [`VOCAB`], so text that a
//! client sends back (multi-turn) re-tokenizes to the same units and can hit the prefix cache.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use xxhash_rust::xxh64::Xxh64;

/// Bytes per token.
pub const TOKEN_BYTES: usize = 4;

/// One token's bytes.
pub type Token = [u8; TOKEN_BYTES];

/// The output vocabulary: each word is exactly one token (4 bytes with its trailing space).
pub const VOCAB: [&str; 32] = [
    "the ", "sim ", "and ", "for ", "you ", "are ", "not ", "all ", "any ", "can ", "had ", "her ",
    "was ", "one ", "our ", "out ", "day ", "get ", "has ", "him ", "his ", "how ", "man ", "new ",
    "now ", "old ", "see ", "two ", "way ", "who ", "boy ", "did ",
];

/// A tokenized prompt: `TOKEN_BYTES` bytes per token, at least one token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizedPrompt {
    bytes: Vec<u8>,
}

impl TokenizedPrompt {
    /// Tokenizes text; an empty text gives one (padding) token, as a BOS token would.
    pub fn from_text(text: &str) -> Self {
        let mut bytes = text.as_bytes().to_vec();
        let padded = bytes.len().div_ceil(TOKEN_BYTES).max(1) * TOKEN_BYTES;
        bytes.resize(padded, 0);
        Self { bytes }
    }

    /// Token ids as given (`prompt: [1, 2, 3]`); an empty list gives one padding token.
    pub fn from_ids(ids: &[u32]) -> Self {
        let mut bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
        if bytes.is_empty() {
            bytes.resize(TOKEN_BYTES, 0);
        }
        Self { bytes }
    }

    /// Number of tokens (≥ 1).
    pub fn len(&self) -> usize {
        self.bytes.len() / TOKEN_BYTES
    }

    /// The token ids: each token's 4 bytes read little-endian.
    pub fn token_ids(&self) -> Vec<u32> {
        self.bytes
            .chunks_exact(TOKEN_BYTES)
            .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
            .collect()
    }

    /// Each token's text: its bytes as UTF-8 (lossy), without the zero padding.
    pub fn token_strs(&self) -> Vec<String> {
        self.bytes
            .chunks_exact(TOKEN_BYTES)
            .map(|t| {
                let end = t.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                String::from_utf8_lossy(&t[..end]).into_owned()
            })
            .collect()
    }

    /// A digest of the prompt and `salt`, for seeding per-request randomness.
    pub fn digest(&self, salt: &[u8]) -> u64 {
        let mut hasher = Xxh64::new(0);
        hasher.update(salt);
        hasher.update(&self.bytes);
        hasher.digest()
    }
}

/// How a rendered chat ends (vLLM's `add_generation_prompt` and `continue_final_message`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatEnding {
    /// Every message closed, then the assistant's header: what chat completions generate from.
    GenerationPrompt,
    /// Every message closed, nothing after.
    Closed,
    /// The last message left open, for the model to continue.
    OpenFinal,
}

/// Renders chat messages with a Llama-3-style template, so that a conversation's earlier turns
/// are a byte prefix of its later turns' prompts (the chat template of chat completions and
/// `/tokenize`).
pub fn render_chat<'a>(
    messages: impl IntoIterator<Item = (&'a str, &'a str)>,
    ending: ChatEnding,
) -> String {
    const END_OF_TURN: &str = "<|eot_id|>";
    let mut text = String::from("<|begin_of_text|>");
    for (role, content) in messages {
        text.push_str("<|start_header_id|>");
        text.push_str(role);
        text.push_str("<|end_header_id|>\n\n");
        text.push_str(content);
        text.push_str(END_OF_TURN);
    }
    match ending {
        ChatEnding::GenerationPrompt => {
            text.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
        }
        ChatEnding::Closed => {}
        ChatEnding::OpenFinal => {
            if text.ends_with(END_OF_TURN) {
                text.truncate(text.len() - END_OF_TURN.len());
            }
        }
    }
    text
}

/// The deterministic output of one sequence: which words, and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputPlan {
    /// Output tokens to generate (≥ 1).
    pub len: usize,
    /// Seeds the word sequence.
    pub seed: u64,
}

impl OutputPlan {
    /// A plan of `len` tokens, or a length drawn uniformly in `1..=max` when `random`.
    pub fn new(seed: u64, max: usize, random: bool) -> Self {
        let len = if random {
            SmallRng::seed_from_u64(seed).random_range(1..=max.max(1))
        } else {
            max.max(1)
        };
        Self { len, seed }
    }

    /// The vocabulary index of output token `i`.
    pub fn word(&self, i: usize) -> u8 {
        let mixed = splitmix64(self.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        (mixed % VOCAB.len() as u64) as u8
    }
}

/// The bytes of vocabulary word `word` as a token.
pub fn word_token(word: u8) -> Token {
    let mut token = [0u8; TOKEN_BYTES];
    token.copy_from_slice(VOCAB[usize::from(word) % VOCAB.len()].as_bytes());
    token
}

/// The text of vocabulary word `word`.
pub fn word_text(word: u8) -> &'static str {
    VOCAB[usize::from(word) % VOCAB.len()]
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tokens_are_ceil_len_over_four() {
        for (text, want) in [
            ("", 1),
            ("a", 1),
            ("abcd", 1),
            ("abcde", 2),
            ("abcdefgh", 2),
        ] {
            assert_eq!(TokenizedPrompt::from_text(text).len(), want, "{text:?}");
        }
        assert_eq!(TokenizedPrompt::from_ids(&[1, 2, 3]).len(), 3);
        assert_eq!(TokenizedPrompt::from_ids(&[]).len(), 1);
    }

    #[test]
    fn vocabulary_words_are_one_token_each() {
        for word in VOCAB {
            assert_eq!(word.len(), TOKEN_BYTES, "{word:?}");
        }
    }

    #[test]
    fn chat_turns_extend_each_other() {
        let chat = |m: &[(&'static str, &'static str)]| {
            render_chat(m.iter().copied(), ChatEnding::GenerationPrompt)
        };
        let first = chat(&[("user", "hi")][..]);
        let second = chat(&[("user", "hi"), ("assistant", "yo"), ("user", "more")][..]);
        let shared = first.trim_end_matches("<|start_header_id|>assistant<|end_header_id|>\n\n");
        assert!(second.starts_with(shared));
    }

    #[test]
    fn chat_endings() {
        let messages = [("user", "hi"), ("assistant", "yo")];
        let closed = render_chat(messages, ChatEnding::Closed);
        assert!(closed.ends_with("yo<|eot_id|>"));
        assert_eq!(
            render_chat(messages, ChatEnding::OpenFinal),
            closed.trim_end_matches("<|eot_id|>")
        );
        let generation = render_chat(messages, ChatEnding::GenerationPrompt);
        assert!(generation.starts_with(&closed));
        assert!(generation.ends_with("assistant<|end_header_id|>\n\n"));
    }

    #[test]
    fn token_strings_are_the_token_bytes() {
        let prompt = TokenizedPrompt::from_text("hello world");
        assert_eq!(prompt.token_strs(), ["hell", "o wo", "rld"]);
    }

    #[test]
    fn output_plans_are_deterministic() {
        let a = OutputPlan::new(42, 100, true);
        let b = OutputPlan::new(42, 100, true);
        assert_eq!(a, b);
        assert!((1..=100).contains(&a.len));
        assert_eq!(OutputPlan::new(42, 7, false).len, 7);
        let words: Vec<u8> = (0..10).map(|i| a.word(i)).collect();
        assert_eq!(words, (0..10).map(|i| b.word(i)).collect::<Vec<_>>());
    }
}
