//! The precise prefix index: which endpoints hold which token blocks, as their engines report
//! it through vLLM's KV-cache events (`BlockStored`, `BlockRemoved`, `AllBlocksCleared`).
//!
//! Keys do not depend on the engine's hash function or `PYTHONHASHSEED`: each stored block is
//! re-keyed with the router's own chained hash over its token ids
//! ([`epp_kvevents::chain_key`], seeded by the LoRA adapter when the event names one), and a
//! per-endpoint map from engine hash to router key lets `BlockRemoved` (which carries engine
//! hashes only) find the entries again.
//!
//! Each endpoint's view is *reliable* or not. A sequence gap, a reconnect, a silent publisher,
//! `AllBlocksCleared`, a block-size mismatch or the memory budget make it unreliable; the scorer
//! then scores that endpoint from its approximate index instead (per endpoint, counted and
//! logged once per switch). The view is trusted again once batches have flowed without a gap
//! for [`PreciseIndexConfig::recovery`].
//!
//! Time is the caller's (`now` since the datastore clock's epoch), so the lab and the EPP run
//! the same code.

mod holders;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::Duration;

use hashbrown::{HashMap, HashSet};
use parking_lot::RwLock;

use epp_kvevents::{BlockHash, BlockRemoved, BlockStored, EventBatch, KvEvent, Medium};

use crate::datastore::EndpointId;
use holders::{CPU, GPU, Holder, Holders, OTHER, REPORTED, SPECULATIVE};
use stats::Counters;
pub use stats::{PreciseStats, Unreliable};

thread_local! {
    /// Per-slot scratch of [`PreciseIndex::score`], reused across calls on this thread.
    static SCRATCH: std::cell::RefCell<(u32, Vec<(u32, f64)>)> =
        const { std::cell::RefCell::new((1, Vec::new())) };
}

/// Speculative claims kept per endpoint at most; older ones are forgotten first.
const MAX_SPECULATIVE_PER_ENDPOINT: usize = 65_536;
/// LoRA adapter names learnt from events, at most (beyond that, new names are not learnt).
const MAX_ADAPTERS: usize = 4096;

/// Tier weights of a matched block (GPU 1.0 and CPU 0.8 by default, as llm-d).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MediumWeights {
    pub gpu: f64,
    pub cpu: f64,
    /// Any tier other than GPU and CPU.
    pub other: f64,
}

impl Default for MediumWeights {
    fn default() -> Self {
        Self {
            gpu: 1.0,
            cpu: 0.8,
            other: 0.0,
        }
    }
}

/// Settings of a [`PreciseIndex`].
#[derive(Debug, Clone, PartialEq)]
pub struct PreciseIndexConfig {
    /// Tokens per block; must equal the engines' block size.
    pub block_size: usize,
    pub weights: MediumWeights,
    /// Upper bound on the index's memory; blocks beyond it are refused (and counted).
    pub max_bytes: usize,
    /// How long a block written at pick time counts before the engine confirms it.
    pub speculative_ttl: Duration,
    /// An endpoint that was picked and has published nothing for this long is unreliable.
    pub silence_timeout: Duration,
    /// Gap-free flow needed after a loss before the view is trusted again.
    pub recovery: Duration,
}

impl Default for PreciseIndexConfig {
    fn default() -> Self {
        Self {
            block_size: 16,
            weights: MediumWeights::default(),
            max_bytes: 256 << 20,
            speculative_ttl: Duration::from_secs(2),
            silence_timeout: Duration::from_secs(10),
            recovery: Duration::from_secs(1),
        }
    }
}

impl PreciseIndexConfig {
    /// Budgeted bytes per `(key, endpoint)` claim: the key table's entry (8-byte key, 32-byte
    /// holders, control byte, load-factor slack) plus the endpoint's engine-hash map entry
    /// (16 bytes, control byte, slack). `bytes_per_claim_measured` in the tests checks it.
    pub const BYTES_PER_ENTRY: usize = 96;

    fn max_entries(&self) -> usize {
        self.max_bytes / Self::BYTES_PER_ENTRY
    }
}

/// One endpoint's view of its engine's cache.
#[derive(Debug)]
struct View {
    slot: u32,
    /// Engine block hash (its digest) → router key, for `BlockRemoved`.
    engine_keys: HashMap<u64, u64>,
    /// Claims this endpoint holds in the key table.
    entries: usize,
    last_seq: Option<u64>,
    trust: Trust,
    /// `(expiry in deciseconds, key)` of speculative claims, oldest first.
    speculative: VecDeque<(u32, u64)>,
    /// The first pick after the last batch: silence is measured from it.
    unanswered_pick_ms: Option<u64>,
    /// When the current gap-free run of batches began.
    flowing_since_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    Reliable,
    Unreliable { reason: Unreliable, since_ms: u64 },
}

#[derive(Debug, Default)]
struct Inner {
    keys: HashMap<u64, Holders>,
    views: HashMap<EndpointId, View>,
    free_slots: Vec<u32>,
    next_slot: u32,
    entries: usize,
    adapters: HashSet<String>,
}

/// What applying one batch did, for the caller's logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// The view became unreliable with this batch (the caller logs it once).
    pub became_unreliable: Option<Unreliable>,
    /// The view became reliable again with this batch.
    pub recovered: bool,
    /// Batches skipped before this one.
    pub missed: u64,
}

/// The precise index of one `precise-prefix-cache-scorer`. Share it as `Arc<PreciseIndex>`;
/// writers are the event intake (one task per endpoint) and the pick-time speculative step,
/// readers the scorer. Every method takes the lock once and allocates little under it.
#[derive(Debug)]
pub struct PreciseIndex {
    config: PreciseIndexConfig,
    inner: RwLock<Inner>,
    counters: Counters,
}

fn ms(now: Duration) -> u64 {
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

/// Deciseconds, the unit of speculative expiries (32 bits hold 13 years).
fn ds(ms: u64) -> u32 {
    u32::try_from(ms / 100).unwrap_or(u32::MAX)
}

fn tier_bit(medium: Option<&Medium>) -> u8 {
    match medium {
        None | Some(Medium::Gpu) => GPU,
        Some(Medium::Cpu) => CPU,
        Some(Medium::Other(_)) => OTHER,
    }
}

/// The router's chain seed for blocks of `adapter` (`None` for the base model). The base
/// model's name is not mixed in: events do not carry it, and one pool serves one base model.
pub fn router_seed(adapter: Option<&str>) -> u64 {
    epp_kvevents::key_seed("", adapter)
}

impl PreciseIndex {
    pub fn new(config: PreciseIndexConfig) -> Self {
        Self {
            config,
            inner: RwLock::new(Inner::default()),
            counters: Counters::default(),
        }
    }

    pub fn config(&self) -> &PreciseIndexConfig {
        &self.config
    }

    // === the event side ===

    /// Applies one batch of `endpoint`'s events, in sequence order. A `seq` that skips ahead
    /// is a gap (the view becomes unreliable, the batch is still applied); a `seq` at or below
    /// the last one is a duplicate or a late reordered batch and is dropped whole.
    pub fn apply_batch(
        &self,
        endpoint: EndpointId,
        seq: u64,
        batch: &EventBatch,
        now: Duration,
    ) -> BatchOutcome {
        let now_ms = ms(now);
        let received = batch.events.len() as u64;
        Counters::add(&self.counters.batches, 1);
        Counters::add(&self.counters.events_received, received);
        let mut outcome = BatchOutcome::default();
        let mut inner = self.inner.write();
        let inner = &mut *inner;
        let view = inner.view_mut(endpoint);
        match view.last_seq {
            Some(last) if seq <= last => {
                self.counters.drop_events("stale_seq", received);
                return outcome;
            }
            Some(last) if seq > last + 1 => {
                outcome.missed = seq - last - 1;
                Counters::add(&self.counters.gaps, 1);
                Counters::add(&self.counters.missed_batches, outcome.missed);
                outcome.became_unreliable = self.distrust(view, Unreliable::Gap, now_ms);
            }
            _ => {}
        }
        view.last_seq = Some(seq);
        view.unanswered_pick_ms = None;
        view.flowing_since_ms.get_or_insert(now_ms);
        let slot = view.slot;
        for event in &batch.events {
            let (reason, distrust) = match event {
                KvEvent::BlockStored(stored) => match self.store(inner, endpoint, slot, stored) {
                    Ok(()) => {
                        Counters::add(&self.counters.events_applied, 1);
                        continue;
                    }
                    Err(failure) => failure,
                },
                KvEvent::BlockRemoved(removed) => {
                    inner.remove_blocks(endpoint, slot, removed);
                    Counters::add(&self.counters.events_applied, 1);
                    continue;
                }
                KvEvent::AllBlocksCleared => {
                    inner.clear_endpoint(endpoint, slot);
                    Counters::add(&self.counters.events_applied, 1);
                    (None, Some(Unreliable::Cleared))
                }
                KvEvent::Unknown { .. } => (Some("unknown_tag"), None),
            };
            if let Some(reason) = reason {
                self.counters.drop_events(reason, 1);
            }
            if let Some(why) = distrust {
                let view = inner.view_mut(endpoint);
                if let Some(r) = self.distrust(view, why, now_ms) {
                    outcome.became_unreliable.get_or_insert(r);
                }
            }
        }
        let view = inner.view_mut(endpoint);
        let flowing_since = view.flowing_since_ms.unwrap_or(now_ms);
        if let Trust::Unreliable { reason, .. } = view.trust {
            let waited = match reason {
                // Nothing was lost: the view is as good as the events that now flow.
                Unreliable::NoEvents | Unreliable::Silence => true,
                // Only a configuration change or room in the budget fixes these.
                Unreliable::BlockSizeMismatch | Unreliable::OverBudget => false,
                _ => now_ms.saturating_sub(flowing_since) >= ms(self.config.recovery),
            };
            if waited && outcome.became_unreliable.is_none() {
                view.trust = Trust::Reliable;
                outcome.recovered = true;
            }
        }
        inner.expire_speculative(endpoint, now_ms);
        outcome
    }

    /// Marks `endpoint`'s view unreliable (a reconnect, a decode failure that lost a batch).
    /// Returns the reason when this is a switch (the caller logs it once).
    pub fn mark_unreliable(
        &self,
        endpoint: EndpointId,
        reason: Unreliable,
        now: Duration,
    ) -> Option<Unreliable> {
        let mut inner = self.inner.write();
        let view = inner.view_mut(endpoint);
        if reason == Unreliable::Reconnect {
            // The next batch's seq need not follow the last one we saw.
            view.last_seq = None;
        }
        let switched = self.distrust(view, reason, ms(now));
        // Gap-free flow is counted from the next batch.
        view.flowing_since_ms = None;
        switched
    }

    /// Counts events lost before they could be applied (undecodable batches, floods).
    pub fn record_dropped(&self, reason: &'static str, events: u64) {
        self.counters.drop_events(reason, events);
    }

    /// Forgets a departed endpoint entirely.
    pub fn forget_endpoint(&self, endpoint: EndpointId) {
        let mut inner = self.inner.write();
        if let Some(view) = inner.views.get(&endpoint) {
            let slot = view.slot;
            inner.clear_endpoint(endpoint, slot);
            inner.views.remove(&endpoint);
            inner.free_slots.push(slot);
        }
    }

    /// Marks `view` untrusted for `reason` and restarts its gap-free flow clock; returns the
    /// reason when this is a switch (counted here; the caller logs it).
    fn distrust(&self, view: &mut View, reason: Unreliable, now_ms: u64) -> Option<Unreliable> {
        view.flowing_since_ms = Some(now_ms);
        let switched = matches!(
            view.trust,
            Trust::Reliable
                | Trust::Unreliable {
                    reason: Unreliable::NoEvents,
                    ..
                }
        );
        view.trust = Trust::Unreliable {
            reason,
            since_ms: now_ms,
        };
        if switched && reason != Unreliable::NoEvents {
            self.counters.switch(reason);
            return Some(reason);
        }
        None
    }

    fn store(
        &self,
        inner: &mut Inner,
        endpoint: EndpointId,
        slot: u32,
        stored: &BlockStored,
    ) -> Result<(), (Option<&'static str>, Option<Unreliable>)> {
        let size = self.config.block_size;
        if stored.block_size as usize != size
            || stored.token_ids.len() != stored.block_hashes.len() * size
        {
            return Err((
                Some("block_size_mismatch"),
                Some(Unreliable::BlockSizeMismatch),
            ));
        }
        let adapter = stored.lora_name.as_deref();
        if let Some(name) = adapter
            && inner.adapters.len() < MAX_ADAPTERS
            && !inner.adapters.contains(name)
        {
            inner.adapters.insert(name.to_owned());
        }
        let view = inner.view_mut(endpoint);
        let mut previous = match &stored.parent_block_hash {
            None => match (adapter, stored.lora_id) {
                (None, Some(id)) => {
                    // An adapter known only by its engine-local id: a namespace no request
                    // can name, so these blocks never match (rather than match the base model).
                    router_seed(Some(&format!("lora-id:{id}")))
                }
                _ => router_seed(adapter),
            },
            Some(parent) => match view.engine_keys.get(&parent.digest()) {
                Some(&key) => key,
                None => return Err((Some("unknown_parent"), None)),
            },
        };
        let tier = tier_bit(stored.medium.as_ref());
        if inner.entries + stored.block_hashes.len() > self.config.max_entries() {
            return Err((Some("over_budget"), Some(Unreliable::OverBudget)));
        }
        for (hash, tokens) in stored
            .block_hashes
            .iter()
            .zip(stored.token_ids.chunks_exact(size))
        {
            let key = epp_kvevents::chain_key(previous, tokens);
            previous = key;
            inner.claim(endpoint, slot, hash, key, tier);
        }
        Ok(())
    }

    // === the scoring side ===

    /// The chain seed for a request to `target_model`: the adapter's when the engines have
    /// reported blocks under that name, else the base model's.
    pub fn seed_for(&self, target_model: &str) -> u64 {
        let inner = self.inner.read();
        router_seed(
            inner
                .adapters
                .contains(target_model)
                .then_some(target_model),
        )
    }

    /// For each of `endpoints`, the medium-weighted longest consecutive prefix of `keys` it
    /// holds, divided by `keys.len()`; `None` for an endpoint whose view is unreliable (when
    /// `respect_trust`) or unknown, which the caller scores another way. `out` is resized to
    /// `endpoints.len()`.
    pub fn score(
        &self,
        keys: &[u64],
        endpoints: &[EndpointId],
        now: Duration,
        respect_trust: bool,
        out: &mut Vec<Option<f64>>,
    ) {
        out.clear();
        out.resize(endpoints.len(), None);
        let now_ms = ms(now);
        let inner = self.inner.read();
        // (slot, position in `endpoints`, weighted blocks so far) of endpoints still matching.
        let mut alive: Vec<(u32, usize, f64)> = Vec::with_capacity(endpoints.len());
        for (i, id) in endpoints.iter().enumerate() {
            let Some(view) = inner.views.get(id) else {
                continue;
            };
            if respect_trust && !self.trusted(view, now_ms) {
                continue;
            }
            out[i] = Some(0.0);
            alive.push((view.slot, i, 0.0));
        }
        if keys.is_empty() {
            return;
        }
        let blocks = keys.len() as f64;
        SCRATCH.with_borrow_mut(|(next_round, weights)| {
            // weights[slot] = (round, weight): the slot's weight for the key of that round.
            // Rounds keep counting across calls, so nothing needs clearing between them.
            if next_round.checked_add(keys.len() as u32 + 1).is_none() {
                *next_round = 1;
                weights.iter_mut().for_each(|cell| cell.0 = 0);
            }
            if weights.len() < inner.next_slot as usize {
                weights.resize(inner.next_slot as usize, (0, 0.0));
            }
            let first = *next_round;
            *next_round += keys.len() as u32 + 1;
            for (round, key) in (first..).zip(keys) {
                if alive.is_empty() {
                    break;
                }
                let Some(holders) = inner.keys.get(key) else {
                    break;
                };
                for h in holders.as_slice() {
                    if let Some(cell) = weights.get_mut(h.slot as usize) {
                        *cell = (round, self.weight(h, now_ms));
                    }
                }
                alive.retain_mut(|(slot, i, sum)| {
                    let (seen, weight) = weights[*slot as usize];
                    if seen != round || weight <= 0.0 {
                        return false;
                    }
                    *sum += weight;
                    out[*i] = Some(*sum / blocks);
                    true
                });
            }
        });
    }

    /// Whether `endpoint` is scored from this index now (false: from the fallback).
    pub fn is_reliable(&self, endpoint: EndpointId, now: Duration) -> bool {
        let inner = self.inner.read();
        inner
            .views
            .get(&endpoint)
            .is_some_and(|v| self.trusted(v, ms(now)))
    }

    fn trusted(&self, view: &View, now_ms: u64) -> bool {
        view.trust == Trust::Reliable && !self.silent(view, now_ms)
    }

    fn silent(&self, view: &View, now_ms: u64) -> bool {
        view.unanswered_pick_ms
            .is_some_and(|t| now_ms.saturating_sub(t) > ms(self.config.silence_timeout))
    }

    fn weight(&self, holder: &Holder, now_ms: u64) -> f64 {
        let w = &self.config.weights;
        let mut best: f64 = 0.0;
        if holder.tiers & GPU != 0 {
            best = best.max(w.gpu);
        }
        if holder.tiers & CPU != 0 {
            best = best.max(w.cpu);
        }
        if holder.tiers & OTHER != 0 {
            best = best.max(w.other);
        }
        if holder.tiers & SPECULATIVE != 0 && holder.speculative_until > ds(now_ms) {
            best = best.max(w.gpu);
        }
        best
    }

    /// Pick time: `endpoint` will hold `keys` once its engine has run the request; count them
    /// for [`PreciseIndexConfig::speculative_ttl`] until the events confirm them. Also starts
    /// the silence clock of an endpoint that has not published since its last batch.
    pub fn add_speculative(&self, keys: &[u64], endpoint: EndpointId, now: Duration) {
        if keys.is_empty() {
            return;
        }
        let now_ms = ms(now);
        // Rounded up, so a claim never ends before its TTL.
        let until = ds(now_ms
            .saturating_add(ms(self.config.speculative_ttl))
            .saturating_add(99));
        let mut inner = self.inner.write();
        let inner = &mut *inner;
        let view = inner.view_mut(endpoint);
        if view.unanswered_pick_ms.is_none() {
            view.unanswered_pick_ms = Some(now_ms);
        } else if self.silent(view, now_ms)
            && view.trust == Trust::Reliable
            && let Some(r) = self.distrust(view, Unreliable::Silence, now_ms)
        {
            tracing::warn!(
                endpoint = endpoint.0,
                reason = r.as_str(),
                "KV events: endpoint scored by the approximate index until events flow again"
            );
        }
        let slot = view.slot;
        let budget = self.config.max_entries();
        for &key in keys {
            let fresh_claim = match inner.keys.get_mut(&key) {
                Some(holders) => match holders.get_mut(slot) {
                    Some(h) => {
                        h.tiers |= SPECULATIVE;
                        h.speculative_until = until;
                        false
                    }
                    None => true,
                },
                None => true,
            };
            if fresh_claim {
                if inner.entries >= budget {
                    break;
                }
                inner.insert_claim(
                    key,
                    Holder {
                        slot,
                        tiers: SPECULATIVE,
                        speculative_until: until,
                    },
                );
                inner.view_mut(endpoint).entries += 1;
            }
            let view = inner.view_mut(endpoint);
            if view.speculative.len() >= MAX_SPECULATIVE_PER_ENDPOINT {
                view.speculative.pop_front();
            }
            view.speculative.push_back((until, key));
        }
        inner.expire_speculative(endpoint, now_ms);
    }

    /// Records, for a request whose response reported `cached_tokens`, what the index had
    /// predicted for the picked endpoint.
    pub fn record_observed(&self, predicted: u64, observed: u64, prompt_tokens: u64) {
        Counters::add(&self.counters.predicted_tokens, predicted);
        Counters::add(&self.counters.observed_tokens, observed);
        Counters::add(&self.counters.observed_prompt_tokens, prompt_tokens);
        Counters::add(&self.counters.observed_requests, 1);
    }

    /// Sizes and counters, for metrics and reports.
    pub fn stats(&self, now: Duration) -> PreciseStats {
        let now_ms = ms(now);
        let mut stats = PreciseStats::default();
        {
            let inner = self.inner.read();
            stats.entries = inner.entries;
            stats.keys = inner.keys.len();
            stats.endpoints = inner.views.len();
            stats.unreliable_endpoints = inner
                .views
                .values()
                .filter(|v| !self.trusted(v, now_ms))
                .count();
            stats.bytes = inner.memory_bytes();
        }
        self.counters.fill(&mut stats);
        stats
    }
}

impl Inner {
    fn view_mut(&mut self, endpoint: EndpointId) -> &mut View {
        let Inner {
            views,
            free_slots,
            next_slot,
            ..
        } = self;
        views.entry(endpoint).or_insert_with(|| {
            let slot = free_slots.pop().unwrap_or_else(|| {
                let s = *next_slot;
                *next_slot += 1;
                s
            });
            View {
                slot,
                engine_keys: HashMap::new(),
                entries: 0,
                last_seq: None,
                trust: Trust::Unreliable {
                    reason: Unreliable::NoEvents,
                    since_ms: 0,
                },
                speculative: VecDeque::new(),
                unanswered_pick_ms: None,
                flowing_since_ms: None,
            }
        })
    }

    fn insert_claim(&mut self, key: u64, holder: Holder) {
        match self.keys.get_mut(&key) {
            Some(holders) => holders.push(holder),
            None => {
                self.keys.insert(key, Holders::One(holder));
            }
        }
        self.entries += 1;
    }

    /// `endpoint` reports `hash` (router `key`) on `tier`.
    fn claim(&mut self, endpoint: EndpointId, slot: u32, hash: &BlockHash, key: u64, tier: u8) {
        let view = self.view_mut(endpoint);
        if let Some(old) = view.engine_keys.insert(hash.digest(), key)
            && old != key
        {
            // The engine reused a hash for other tokens (a collision or a restart we missed):
            // the old claim is no longer true.
            self.release(slot, endpoint, old, REPORTED);
        }
        match self.keys.get_mut(&key).and_then(|h| h.get_mut(slot)) {
            Some(holder) => holder.tiers |= tier,
            None => {
                self.insert_claim(
                    key,
                    Holder {
                        slot,
                        tiers: tier,
                        speculative_until: 0,
                    },
                );
                self.view_mut(endpoint).entries += 1;
            }
        }
    }

    /// Clears `tiers` of `slot`'s claim on `key`; drops the claim when nothing is left.
    fn release(&mut self, slot: u32, endpoint: EndpointId, key: u64, tiers: u8) {
        let Some(holders) = self.keys.get_mut(&key) else {
            return;
        };
        let Some(holder) = holders.get_mut(slot) else {
            return;
        };
        holder.tiers &= !tiers;
        if holder.tiers & REPORTED != 0 || holder.tiers & SPECULATIVE != 0 {
            return;
        }
        if holders.remove(slot) {
            self.keys.remove(&key);
        }
        self.entries -= 1;
        if let Some(view) = self.views.get_mut(&endpoint) {
            view.entries = view.entries.saturating_sub(1);
        }
    }

    fn remove_blocks(&mut self, endpoint: EndpointId, slot: u32, removed: &BlockRemoved) {
        let tier = tier_bit(removed.medium.as_ref());
        for hash in &removed.block_hashes {
            let digest = hash.digest();
            let Some(&key) = self.view_mut(endpoint).engine_keys.get(&digest) else {
                continue; // stored before we subscribed, or already gone
            };
            self.release(slot, endpoint, key, tier);
            let still_held = self
                .keys
                .get(&key)
                .and_then(|h| h.as_slice().iter().find(|h| h.slot == slot).copied())
                .is_some_and(|h| h.tiers & REPORTED != 0);
            if !still_held {
                self.view_mut(endpoint).engine_keys.remove(&digest);
            }
        }
    }

    fn clear_endpoint(&mut self, endpoint: EndpointId, slot: u32) {
        let Some(view) = self.views.get_mut(&endpoint) else {
            return;
        };
        let keys: Vec<u64> = view
            .engine_keys
            .drain()
            .map(|(_, key)| key)
            .chain(view.speculative.drain(..).map(|(_, key)| key))
            .collect();
        for key in keys {
            self.release(slot, endpoint, key, REPORTED | SPECULATIVE);
        }
    }

    fn expire_speculative(&mut self, endpoint: EndpointId, now_ms: u64) {
        loop {
            let Some(view) = self.views.get_mut(&endpoint) else {
                return;
            };
            let Some(&(until, key)) = view.speculative.front() else {
                return;
            };
            if until > ds(now_ms) {
                return;
            }
            view.speculative.pop_front();
            let slot = view.slot;
            let current = self
                .keys
                .get(&key)
                .and_then(|h| h.as_slice().iter().find(|h| h.slot == slot).copied());
            // A claim re-made later has a later expiry and its own queue entry.
            if current.is_some_and(|h| h.speculative_until <= ds(now_ms)) {
                self.release(slot, endpoint, key, SPECULATIVE);
            }
        }
    }

    fn memory_bytes(&self) -> usize {
        fn table<K, V>(m: &HashMap<K, V>) -> usize {
            // Buckets (capacity at 7/8 load) of (K, V) plus one control byte each.
            m.capacity() * 8 / 7 * (std::mem::size_of::<(K, V)>() + 1)
        }
        let holders: usize = self.keys.values().map(Holders::heap_bytes).sum();
        let views: usize = self
            .views
            .values()
            .map(|v| {
                table(&v.engine_keys)
                    + v.speculative.capacity() * std::mem::size_of::<(u32, u64)>()
                    + std::mem::size_of::<View>()
            })
            .sum();
        table(&self.keys) + holders + views
    }
}
