//! One generation sequence inside the engine, and the token events it sends to its client.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use crate::kv_cache::{BlockId, KvCache, chain_hash};
use crate::tokens::{OutputPlan, TOKEN_BYTES, TokenizedPrompt, word_token};

/// Why a sequence ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// Reached `max_tokens`.
    Length,
    /// Ended before `max_tokens` (random output lengths only).
    Stop,
    /// The client went away.
    Abort,
}

impl FinishReason {
    /// The OpenAI / vLLM spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Length => "length",
            Self::Stop => "stop",
            Self::Abort => "abort",
        }
    }
}

/// End-of-sequence details carried by the last token's event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finish {
    /// Why it ended (never `Abort`: an aborted sequence has no client to tell).
    pub reason: FinishReason,
    /// Prompt tokens served from the prefix cache at the first admission.
    pub cached_tokens: usize,
}

/// One output token of choice `index`; the last one carries `finish`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenEvent {
    /// The choice (prompt) this token belongs to.
    pub index: u32,
    /// Index of the word in [`crate::tokens::VOCAB`].
    pub word: u8,
    /// Set on the sequence's last token.
    pub finish: Option<Finish>,
}

/// What a client submits: one prompt to complete.
#[derive(Debug)]
pub struct NewSequence {
    /// The choice index reported back in events.
    pub index: u32,
    /// The LoRA adapter, `None` for the base model.
    pub adapter: Option<Arc<str>>,
    /// Start of the block-hash chain (the model or adapter name's hash).
    pub hash_seed: u64,
    /// The prompt.
    pub prompt: TokenizedPrompt,
    /// The output to produce.
    pub output: OutputPlan,
    /// The request's `max_tokens` (decides `length` vs `stop`).
    pub max_tokens: usize,
    /// Where tokens go; a closed channel aborts the sequence.
    pub events: UnboundedSender<TokenEvent>,
}

/// A sequence's state in the engine (vLLM's `Request`).
#[derive(Debug)]
pub struct Sequence {
    pub index: u32,
    pub adapter: Option<Arc<str>>,
    hash_seed: u64,
    /// Prompt then output tokens, `TOKEN_BYTES` each.
    tokens: Vec<u8>,
    pub prompt_len: usize,
    output: OutputPlan,
    max_tokens: usize,
    pub num_output: usize,
    /// Tokens whose KV is computed.
    pub num_computed: usize,
    /// Tokens scheduled in the current step.
    pub scheduled: usize,
    /// Hashes of full blocks, computed lazily.
    pub block_hashes: Vec<u64>,
    /// The block table.
    pub blocks: Vec<BlockId>,
    /// `blocks[..num_indexed]` have been offered to the prefix index.
    pub num_indexed: usize,
    pub cached_tokens: Option<usize>,
    pub arrival: Instant,
    pub first_token: Option<Instant>,
    pub finish: Option<FinishReason>,
    events: UnboundedSender<TokenEvent>,
}

impl Sequence {
    /// A waiting sequence that arrived at `now`.
    pub fn new(new: NewSequence, now: Instant) -> Self {
        let prompt_len = new.prompt.len();
        Self {
            index: new.index,
            adapter: new.adapter,
            hash_seed: new.hash_seed,
            tokens: new.prompt.into_bytes(),
            prompt_len,
            output: new.output,
            max_tokens: new.max_tokens,
            num_output: 0,
            num_computed: 0,
            scheduled: 0,
            block_hashes: Vec::new(),
            blocks: Vec::new(),
            num_indexed: 0,
            cached_tokens: None,
            arrival: now,
            first_token: None,
            finish: None,
            events: new.events,
        }
    }

    /// Prompt plus generated tokens.
    pub fn num_tokens(&self) -> usize {
        self.tokens.len() / TOKEN_BYTES
    }

    /// Tokens still to compute before the next output token.
    pub fn remaining(&self) -> usize {
        self.num_tokens() - self.num_computed
    }

    /// Whether the client is gone.
    pub fn is_abandoned(&self) -> bool {
        self.events.is_closed()
    }

    /// Whether scheduling `n` tokens is a decode (the last generated token) rather than a
    /// prefill or a recompute.
    pub fn is_decode(&self, n: usize) -> bool {
        self.num_output > 0 && n == 1 && self.remaining() == 1
    }

    /// Makes sure the hashes of the first `blocks` full blocks exist.
    pub fn ensure_hashes(&mut self, blocks: usize, block_size: usize) {
        let block_bytes = block_size * TOKEN_BYTES;
        while self.block_hashes.len() < blocks {
            let i = self.block_hashes.len();
            let previous = self.block_hashes.last().copied().unwrap_or(self.hash_seed);
            let bytes = &self.tokens[i * block_bytes..(i + 1) * block_bytes];
            self.block_hashes.push(chain_hash(previous, bytes));
        }
    }

    /// Offers every full, computed block to the prefix index.
    pub fn index_full_blocks(&mut self, kv: &mut KvCache) {
        let full = (self.num_computed / kv.block_size()).min(self.blocks.len());
        self.ensure_hashes(full, kv.block_size());
        for i in self.num_indexed..full {
            kv.cache_block(self.blocks[i], self.block_hashes[i]);
        }
        self.num_indexed = self.num_indexed.max(full);
    }

    /// Appends the next output token and sends it; sets `finish` when this was the last one
    /// or the client is gone. Returns whether it was the first token.
    pub fn emit_token(&mut self, now: Instant) -> bool {
        let word = self.output.word(self.num_output);
        self.tokens.extend_from_slice(&word_token(word));
        self.num_output += 1;
        let first = self.first_token.is_none();
        if first {
            self.first_token = Some(now);
        }
        let done = self.num_output >= self.output.len;
        let reason = match self.output.len < self.max_tokens {
            true => FinishReason::Stop,
            false => FinishReason::Length,
        };
        let finish = done.then(|| Finish {
            reason,
            cached_tokens: self.cached_tokens.unwrap_or(0),
        });
        let event = TokenEvent {
            index: self.index,
            word,
            finish,
        };
        self.finish = match self.events.send(event) {
            Ok(()) => finish.map(|f| f.reason),
            Err(_) => Some(FinishReason::Abort),
        };
        first
    }

    /// Forgets computed state after a preemption; hashes are kept (vLLM keeps them too).
    pub fn reset_for_recompute(&mut self) {
        self.blocks.clear();
        self.num_indexed = 0;
        self.num_computed = 0;
        self.scheduled = 0;
    }
}
