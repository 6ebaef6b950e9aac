//! A sequence's state in the engine (vLLM's `Request`), and the [`Client`] it reports to.

use std::sync::Arc;
use std::time::Duration;

use crate::kv_cache::{BlockId, KvCache, chain_hash_tokens};

/// Why a sequence ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// Reached its output length at `max_tokens`.
    Length,
    /// Ended before `max_tokens` (a shorter planned output).
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

/// End-of-sequence details carried by the last token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finish {
    /// Why it ended (never `Abort`: an aborted sequence has no client to tell).
    pub reason: FinishReason,
    /// Prompt tokens served from the prefix cache at the first admission.
    pub cached_tokens: usize,
}

/// One output token as the engine hands it to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Emitted {
    /// Position in the output (0 = the first token).
    pub n: usize,
    /// The token id.
    pub token: u32,
    /// When the step that produced it ended.
    pub now: Duration,
    /// Set on the sequence's last token.
    pub finish: Option<Finish>,
}

/// Who a sequence reports to: an HTTP stream in `epp-sim`, a request record in `epp-lab`.
pub trait Client {
    /// The id of output token `n`: decides what later blocks of the sequence hash to.
    fn output_token(&mut self, n: usize) -> u32;
    /// Receives one output token; `false` means the client is gone and the sequence aborts.
    fn emit(&mut self, token: Emitted) -> bool;
    /// Whether the client is gone (checked before each step).
    fn is_abandoned(&self) -> bool {
        false
    }
}

/// What a client submits: one prompt to complete.
#[derive(Debug)]
pub struct NewSequence<C> {
    /// The LoRA adapter, `None` for the base model.
    pub adapter: Option<Arc<str>>,
    /// Start of the block-hash chain (the model or adapter name's hash).
    pub hash_seed: u64,
    /// Prompt token ids (at least one).
    pub prompt: Vec<u32>,
    /// Output tokens to produce (≥ 1).
    pub output_len: usize,
    /// The request's `max_tokens` (decides `length` vs `stop`).
    pub max_tokens: usize,
    /// Where tokens go.
    pub client: C,
}

/// A sequence's state in the engine.
#[derive(Debug)]
pub struct Sequence<C> {
    pub adapter: Option<Arc<str>>,
    hash_seed: u64,
    /// Prompt then output token ids.
    tokens: Vec<u32>,
    pub prompt_len: usize,
    output_len: usize,
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
    /// Prompt tokens found cached at the first admission.
    pub cached_tokens: Option<usize>,
    /// Times this sequence was preempted.
    pub preemptions: u32,
    pub arrival: Duration,
    /// When it was first scheduled.
    pub scheduled_at: Option<Duration>,
    pub first_token: Option<Duration>,
    pub finish: Option<FinishReason>,
    pub client: C,
}

impl<C: Client> Sequence<C> {
    /// A waiting sequence that arrived at `now`.
    pub fn new(new: NewSequence<C>, now: Duration) -> Self {
        let mut tokens = new.prompt;
        if tokens.is_empty() {
            tokens.push(0); // as a BOS token would
        }
        let prompt_len = tokens.len();
        Self {
            adapter: new.adapter,
            hash_seed: new.hash_seed,
            tokens,
            prompt_len,
            output_len: new.output_len.max(1),
            max_tokens: new.max_tokens,
            num_output: 0,
            num_computed: 0,
            scheduled: 0,
            block_hashes: Vec::new(),
            blocks: Vec::new(),
            num_indexed: 0,
            cached_tokens: None,
            preemptions: 0,
            arrival: now,
            scheduled_at: None,
            first_token: None,
            finish: None,
            client: new.client,
        }
    }

    /// Prompt plus generated tokens.
    pub fn num_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// Tokens still to compute before the next output token.
    pub fn remaining(&self) -> usize {
        self.num_tokens() - self.num_computed
    }

    /// Whether the client is gone.
    pub fn is_abandoned(&self) -> bool {
        self.client.is_abandoned()
    }

    /// Whether scheduling `n` tokens is a decode (the last generated token) rather than a
    /// prefill or a recompute.
    pub fn is_decode(&self, n: usize) -> bool {
        self.num_output > 0 && n == 1 && self.remaining() == 1
    }

    /// Makes sure the hashes of the first `blocks` full blocks exist.
    pub fn ensure_hashes(&mut self, blocks: usize, block_size: usize) {
        while self.block_hashes.len() < blocks {
            let i = self.block_hashes.len();
            let previous = self.block_hashes.last().copied().unwrap_or(self.hash_seed);
            let block = &self.tokens[i * block_size..(i + 1) * block_size];
            self.block_hashes.push(chain_hash_tokens(previous, block));
        }
    }

    /// Offers every full, computed block not offered yet to the prefix index, as one run.
    pub fn index_full_blocks(&mut self, kv: &mut KvCache) {
        let block_size = kv.block_size();
        let full = (self.num_computed / block_size).min(self.blocks.len());
        if full <= self.num_indexed {
            return;
        }
        self.ensure_hashes(full, block_size);
        let first = self.num_indexed;
        let parent = first.checked_sub(1).map(|i| self.block_hashes[i]);
        kv.cache_blocks(
            &self.blocks[first..full],
            &self.block_hashes[first..full],
            parent,
            &self.tokens[first * block_size..full * block_size],
        );
        self.num_indexed = full;
    }

    /// Appends the next output token and hands it to the client; sets `finish` when this was
    /// the last one or the client is gone. Returns whether it was the first token.
    pub fn emit_token(&mut self, now: Duration) -> bool {
        let n = self.num_output;
        let token = self.client.output_token(n);
        self.tokens.push(token);
        self.num_output += 1;
        let first = self.first_token.is_none();
        if first {
            self.first_token = Some(now);
        }
        let done = self.num_output >= self.output_len;
        let reason = match self.output_len < self.max_tokens {
            true => FinishReason::Stop,
            false => FinishReason::Length,
        };
        let finish = done.then(|| Finish {
            reason,
            cached_tokens: self.cached_tokens.unwrap_or(0),
        });
        let attached = self.client.emit(Emitted {
            n,
            token,
            now,
            finish,
        });
        self.finish = match attached {
            true => finish.map(|f| f.reason),
            false => Some(FinishReason::Abort),
        };
        first
    }

    /// Forgets computed state after a preemption; hashes are kept (vLLM keeps them too).
    pub fn reset_for_recompute(&mut self) {
        self.blocks.clear();
        self.num_indexed = 0;
        self.num_computed = 0;
        self.scheduled = 0;
        self.preemptions += 1;
    }
}
