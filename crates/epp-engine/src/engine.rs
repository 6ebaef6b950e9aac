//! The engine: a vLLM V1-style scheduler, stepped by the caller (`epp-sim` or `epp-lab`).
//!
//! One step (`schedule`, then `complete` after the step's modelled duration):
//! 1. Running sequences first, in order: a decode takes 1 token, a partial prefill
//!    `min(remaining, budget)`. When one cannot get a block, the **last** running sequence is
//!    preempted (blocks freed, pushed to the front of the queue, recomputed later).
//! 2. Then waiting sequences, FCFS (skipped when step 1 preempted yet scheduled something):
//!    pass over those whose LoRA adapter has no slot, reuse the longest cached prefix (at most
//!    prompt−1 tokens), schedule `min(uncached, budget)` tokens, and stop at `max_num_seqs`,
//!    an empty budget or a full cache.
//! 3. At the end of the step, computed blocks are indexed (one `Stored` event per sequence
//!    when [`EngineConfig::emit_cache_events`] is on), and each sequence whose tokens are
//!    all computed emits one token; sequences at their output length finish.
//!
//! Everything here is synchronous and clock-free: the caller passes `now`, a [`Duration`]
//! since an epoch of its choosing (the wall clock's start in `epp-sim`, virtual time zero in
//! `epp-lab`).

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use crate::events::{CacheEvent, DEFAULT_EVENT_CAPACITY};
use crate::histogram::{E2E_BUCKETS, Histogram, TTFT_BUCKETS};
use crate::kv_cache::{BlockId, KvCache};
use crate::lora::{self, LoraSlots};
use crate::sequence::{Client, FinishReason, NewSequence, Sequence};
use crate::step_time::{BatchShape, StepTime};

/// The limits of one engine (vLLM's scheduler and cache settings).
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Running sequences at most (`max_num_seqs`, ≥ 1).
    pub max_num_seqs: usize,
    /// Token budget of one step (`max_num_batched_tokens`, ≥ 1).
    pub max_num_batched_tokens: usize,
    /// Tokens per KV block (≥ 1).
    pub block_size: usize,
    /// KV blocks on the GPU(s).
    pub num_gpu_blocks: usize,
    /// Adapters that can be active at once (≥ 1).
    pub max_loras: usize,
    /// How long a step lasts.
    pub step_time: StepTime,
    /// Record KV-cache events for [`Engine::take_cache_events`] (vLLM
    /// `--kv-events-config` `enable_kv_cache_events`).
    pub emit_cache_events: bool,
}

impl Default for EngineConfig {
    /// vLLM's online-serving defaults on a large GPU, with 100,000 tokens of KV cache.
    fn default() -> Self {
        Self {
            max_num_seqs: 1024,
            max_num_batched_tokens: 8192,
            block_size: 16,
            num_gpu_blocks: 6250,
            max_loras: 1,
            step_time: StepTime::default(),
            emit_cache_events: false,
        }
    }
}

/// Monotonic counters of one engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Sequences submitted.
    pub received: u64,
    /// Prompt tokens of sequences that produced their first token.
    pub prompt_tokens: u64,
    /// Output tokens produced.
    pub generation_tokens: u64,
    /// Tokens looked up in the prefix cache at admission.
    pub prefix_queries: u64,
    /// Tokens found in the prefix cache at admission.
    pub prefix_hits: u64,
    /// Sequences preempted.
    pub preemptions: u64,
    /// Sequences ended, by reason: length, stop, abort.
    pub finished: [u64; 3],
    /// KV-cache events discarded because they were not drained in time.
    pub cache_events_dropped: u64,
}

/// A copy of the engine's observable state, taken under the lock.
#[derive(Clone, Debug)]
pub struct EngineSnapshot {
    pub running: usize,
    pub waiting: usize,
    pub kv_usage: f64,
    pub free_blocks: usize,
    pub total_blocks: usize,
    pub cached_blocks: usize,
    pub counters: Counters,
    pub ttft: Histogram,
    pub e2e: Histogram,
    pub max_loras: usize,
    pub running_loras: String,
    pub waiting_loras: String,
}

/// Adds `n` scheduled tokens of `seq` to the batch's shape.
fn add_to_batch<C: Client>(batch: &mut BatchShape, seq: &Sequence<C>, n: usize) {
    match seq.is_decode(n) {
        true => batch.add_decode(seq.num_computed),
        false => batch.add_prefill(n, seq.num_computed),
    }
}

/// A sequence the engine is done with, handed back by [`Engine::complete`].
#[derive(Debug)]
pub struct Retired<C> {
    /// Why it ended.
    pub reason: FinishReason,
    /// When it arrived, was first scheduled, emitted its first token, and ended.
    pub arrival: Duration,
    pub scheduled_at: Option<Duration>,
    pub first_token: Option<Duration>,
    pub finished_at: Duration,
    pub prompt_len: usize,
    /// Prompt tokens found cached at the first admission.
    pub cached_tokens: usize,
    pub output_tokens: usize,
    pub preemptions: u32,
    pub client: C,
}

/// The scheduler state of one simulated server.
#[derive(Debug)]
pub struct Engine<C> {
    max_num_seqs: usize,
    max_num_batched_tokens: usize,
    step_time: StepTime,
    kv: KvCache,
    lora: LoraSlots,
    running: Vec<Sequence<C>>,
    waiting: VecDeque<Sequence<C>>,
    counters: Counters,
    ttft: Histogram,
    e2e: Histogram,
    hits: Vec<BlockId>,
    retired: Vec<Retired<C>>,
}

impl<C: Client> Engine<C> {
    /// An idle engine with an empty cache.
    pub fn new(config: &EngineConfig) -> Self {
        let mut kv = KvCache::new(config.num_gpu_blocks, config.block_size);
        if config.emit_cache_events {
            kv.enable_events(DEFAULT_EVENT_CAPACITY);
        }
        Self {
            max_num_seqs: config.max_num_seqs,
            max_num_batched_tokens: config.max_num_batched_tokens,
            step_time: config.step_time.clone(),
            kv,
            lora: LoraSlots::new(config.max_loras),
            running: Vec::new(),
            waiting: VecDeque::new(),
            counters: Counters::default(),
            ttft: Histogram::new(TTFT_BUCKETS),
            e2e: Histogram::new(E2E_BUCKETS),
            hits: Vec::new(),
            retired: Vec::new(),
        }
    }

    /// Queues new sequences (at the back of the waiting queue).
    pub fn submit(&mut self, sequences: impl IntoIterator<Item = NewSequence<C>>, now: Duration) {
        for new in sequences {
            self.waiting.push_back(Sequence::new(new, now));
            self.counters.received += 1;
        }
    }

    /// Plans one step; returns its modelled duration, or `None` if nothing runs.
    pub fn schedule(&mut self, now: Duration) -> Option<Duration> {
        self.drop_abandoned(now);
        let mut budget = self.max_num_batched_tokens;
        let mut batch = BatchShape::default();
        let preempted = self.schedule_running(&mut budget, &mut batch);
        if !preempted || batch.seqs == 0 {
            self.schedule_waiting(&mut budget, &mut batch, now);
        }
        (batch.seqs > 0).then(|| self.step_time.step(&batch))
    }

    /// Whether any sequence is running or waiting.
    pub fn has_work(&self) -> bool {
        !self.running.is_empty() || !self.waiting.is_empty()
    }

    /// Sequences that ended since the last call (finished or aborted), in the order they ended.
    pub fn take_retired(&mut self) -> std::vec::Drain<'_, Retired<C>> {
        self.retired.drain(..)
    }

    /// KV-cache events recorded since the last call, oldest first; none unless
    /// [`EngineConfig::emit_cache_events`]. Drain after each step: undrained events are
    /// bounded, and an overflow discards them behind a [`CacheEvent::AllCleared`] (counted in
    /// [`Counters::cache_events_dropped`]). Dropping the iterator early discards the rest.
    pub fn take_cache_events(&mut self) -> impl Iterator<Item = CacheEvent> + '_ {
        self.kv.take_events()
    }

    /// Forgets every cached prefix (vLLM `reset_prefix_cache`); refused (`false`, nothing
    /// changes) while any sequence holds blocks. Records [`CacheEvent::AllCleared`].
    pub fn reset_prefix_cache(&mut self) -> bool {
        self.kv.reset_prefix_cache()
    }

    /// Re-bounds the event buffer (tests exercise overflow without 65,536 events).
    #[cfg(test)]
    pub(crate) fn set_cache_event_capacity(&mut self, capacity: usize) {
        self.kv.enable_events(capacity);
    }

    /// Every block hash in the prefix index, in order.
    pub fn cached_hashes(&self) -> BTreeSet<u64> {
        self.kv.cached_hashes()
    }

    /// Ends the step planned by [`Engine::schedule`] at `now`: indexes blocks, emits tokens,
    /// retires finished sequences (collect them with [`Engine::take_retired`]).
    pub fn complete(&mut self, now: Duration) {
        for seq in &mut self.running {
            if seq.scheduled == 0 {
                continue;
            }
            seq.num_computed += seq.scheduled;
            seq.scheduled = 0;
            seq.index_full_blocks(&mut self.kv);
            if seq.remaining() > 0 {
                continue; // a partial prefill
            }
            if seq.emit_token(now) {
                self.counters.prompt_tokens += seq.prompt_len as u64;
                self.ttft
                    .observe(now.saturating_sub(seq.arrival).as_secs_f64());
            }
            self.counters.generation_tokens += 1;
        }
        let done: Vec<Sequence<C>> = self
            .running
            .extract_if(.., |s| s.finish.is_some())
            .collect();
        for seq in done {
            self.retire(seq, now);
        }
    }

    /// The observable state.
    pub fn snapshot(&self) -> EngineSnapshot {
        let waiting: BTreeSet<_> = self
            .waiting
            .iter()
            .filter_map(|s| s.adapter.as_ref())
            .collect();
        EngineSnapshot {
            running: self.running.len(),
            waiting: self.waiting.len(),
            kv_usage: self.kv.usage(),
            free_blocks: self.kv.num_free(),
            total_blocks: self.kv.num_blocks(),
            cached_blocks: self.kv.num_cached(),
            counters: Counters {
                cache_events_dropped: self.kv.events_dropped(),
                ..self.counters.clone()
            },
            ttft: self.ttft.clone(),
            e2e: self.e2e.clone(),
            max_loras: self.lora.max_loras(),
            running_loras: lora::join(self.lora.running()),
            waiting_loras: lora::join(waiting),
        }
    }

    /// Checks the KV invariants plus that running sequences hold the only references.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.kv.check_invariants()?;
        if self.waiting.iter().any(|s| !s.blocks.is_empty()) {
            return Err("a waiting sequence holds blocks".to_owned());
        }
        let referenced: BTreeSet<BlockId> = self
            .running
            .iter()
            .flat_map(|s| s.blocks.iter().copied())
            .collect();
        let allocated = self.kv.num_blocks() - self.kv.num_free();
        match referenced.len() == allocated {
            true => Ok(()),
            false => Err(format!(
                "{} blocks referenced, {allocated} allocated",
                referenced.len()
            )),
        }
    }

    fn schedule_running(&mut self, budget: &mut usize, batch: &mut BatchShape) -> bool {
        let mut preempted = false;
        let mut i = 0;
        while i < self.running.len() && *budget > 0 {
            let n = self.running[i].remaining().min(*budget);
            if !self.grow(i, n, &mut preempted) {
                break;
            }
            let seq = &mut self.running[i];
            seq.scheduled = n;
            *budget -= n;
            add_to_batch(batch, seq, n);
            i += 1;
        }
        preempted
    }

    /// Allocates blocks for `n` more tokens of `running[i]`, preempting from the back until
    /// they fit; `false` when `running[i]` itself had to go.
    fn grow(&mut self, i: usize, n: usize, preempted: &mut bool) -> bool {
        loop {
            let seq = &mut self.running[i];
            if self
                .kv
                .allocate_slots(&mut seq.blocks, &[], seq.num_computed + n)
            {
                return true;
            }
            let Some(victim) = self.running.pop() else {
                return false;
            };
            self.preempt(victim);
            *preempted = true;
            if self.running.len() == i {
                return false;
            }
        }
    }

    fn preempt(&mut self, mut seq: Sequence<C>) {
        self.kv.free(&seq.blocks);
        seq.reset_for_recompute();
        self.lora.stop(seq.adapter.as_ref());
        self.counters.preemptions += 1;
        self.waiting.push_front(seq);
    }

    fn schedule_waiting(&mut self, budget: &mut usize, batch: &mut BatchShape, now: Duration) {
        let mut skipped = Vec::new();
        while *budget > 0 && self.running.len() < self.max_num_seqs {
            let Some(mut seq) = self.waiting.pop_front() else {
                break;
            };
            if !self.lora.can_start(seq.adapter.as_ref()) {
                skipped.push(seq);
                continue;
            }
            let Some(n) = self.admit(&mut seq, *budget) else {
                self.waiting.push_front(seq);
                break;
            };
            *budget -= n;
            add_to_batch(batch, &seq, n);
            seq.scheduled_at.get_or_insert(now);
            self.lora.start(seq.adapter.as_ref());
            self.running.push(seq);
        }
        for seq in skipped.into_iter().rev() {
            self.waiting.push_front(seq);
        }
    }

    /// Reuses the longest cached prefix (at most `num_tokens − 1` tokens) and allocates the
    /// first chunk; returns the chunk size, or `None` when the cache is full.
    fn admit(&mut self, seq: &mut Sequence<C>, budget: usize) -> Option<usize> {
        let block_size = self.kv.block_size();
        let max_hit_blocks = (seq.num_tokens() - 1) / block_size;
        seq.ensure_hashes(max_hit_blocks, block_size);
        self.kv
            .find_cached(&seq.block_hashes[..max_hit_blocks], &mut self.hits);
        let cached = self.hits.len() * block_size;
        let n = (seq.num_tokens() - cached).min(budget);
        if !self
            .kv
            .allocate_slots(&mut seq.blocks, &self.hits, cached + n)
        {
            return None;
        }
        seq.num_computed = cached;
        seq.num_indexed = self.hits.len();
        seq.scheduled = n;
        seq.cached_tokens.get_or_insert(cached);
        self.counters.prefix_queries += seq.num_tokens() as u64;
        self.counters.prefix_hits += cached as u64;
        Some(n)
    }

    fn drop_abandoned(&mut self, now: Duration) {
        let gone: Vec<Sequence<C>> = self.running.extract_if(.., |s| s.is_abandoned()).collect();
        for mut seq in gone {
            seq.finish = Some(FinishReason::Abort);
            self.retire(seq, now);
        }
        if self.waiting.iter().any(Sequence::is_abandoned) {
            let (gone, kept): (VecDeque<_>, VecDeque<_>) =
                self.waiting.drain(..).partition(Sequence::is_abandoned);
            self.waiting = kept;
            for mut seq in gone {
                seq.finish = Some(FinishReason::Abort);
                self.retire_unstarted(seq, now);
            }
        }
    }

    /// Retires a waiting sequence: it holds no blocks and no adapter slot.
    fn retire_unstarted(&mut self, seq: Sequence<C>, now: Duration) {
        debug_assert!(seq.blocks.is_empty());
        self.counters.finished[2] += 1;
        self.push_retired(seq, FinishReason::Abort, now);
    }

    fn retire(&mut self, seq: Sequence<C>, now: Duration) {
        self.kv.free(&seq.blocks);
        self.lora.stop(seq.adapter.as_ref());
        let reason = seq.finish.unwrap_or(FinishReason::Abort);
        let slot = match reason {
            FinishReason::Length => 0,
            FinishReason::Stop => 1,
            FinishReason::Abort => 2,
        };
        self.counters.finished[slot] += 1;
        if reason != FinishReason::Abort {
            self.e2e
                .observe(now.saturating_sub(seq.arrival).as_secs_f64());
        }
        self.push_retired(seq, reason, now);
    }

    fn push_retired(&mut self, seq: Sequence<C>, reason: FinishReason, now: Duration) {
        self.retired.push(Retired {
            reason,
            arrival: seq.arrival,
            scheduled_at: seq.scheduled_at,
            first_token: seq.first_token,
            finished_at: now,
            prompt_len: seq.prompt_len,
            cached_tokens: seq.cached_tokens.unwrap_or(0),
            output_tokens: seq.num_output,
            preemptions: seq.preemptions,
            client: seq.client,
        });
    }
}

#[cfg(test)]
mod tests;
