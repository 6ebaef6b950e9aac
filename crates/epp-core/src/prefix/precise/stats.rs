//! Counters of a precise index, read at scrape time (the `/metrics` collector) and by the lab.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

/// Why an endpoint's view stopped being trusted (label `reason` of the switch counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unreliable {
    /// No batch received yet since the endpoint appeared (not counted as a switch).
    NoEvents,
    /// A sequence number was skipped: batches were lost.
    Gap,
    /// The subscription was re-established; what was published meanwhile is lost.
    Reconnect,
    /// The endpoint served traffic but published nothing for the silence timeout.
    Silence,
    /// The engine reported `AllBlocksCleared`.
    Cleared,
    /// The events' block size differs from the scorer's `blockSize`.
    BlockSizeMismatch,
    /// The index is at its memory budget and refused this endpoint's blocks.
    OverBudget,
}

impl Unreliable {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoEvents => "no_events",
            Self::Gap => "gap",
            Self::Reconnect => "reconnect",
            Self::Silence => "silence",
            Self::Cleared => "all_blocks_cleared",
            Self::BlockSizeMismatch => "block_size_mismatch",
            Self::OverBudget => "over_budget",
        }
    }
}

/// Monotonic counters; all `Relaxed` (they are statistics, not synchronisation).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub batches: AtomicU64,
    pub events_received: AtomicU64,
    pub events_applied: AtomicU64,
    pub gaps: AtomicU64,
    pub missed_batches: AtomicU64,
    pub predicted_tokens: AtomicU64,
    pub observed_tokens: AtomicU64,
    pub observed_prompt_tokens: AtomicU64,
    pub observed_requests: AtomicU64,
    pub dropped: Mutex<BTreeMap<&'static str, u64>>,
    pub switches: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn drop_events(&self, reason: &'static str, n: u64) {
        if n > 0 {
            *self.dropped.lock().entry(reason).or_default() += n;
        }
    }

    pub fn switch(&self, reason: Unreliable) {
        *self.switches.lock().entry(reason.as_str()).or_default() += 1;
    }
}

/// A point-in-time copy of a precise index's size and counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreciseStats {
    /// `(key, endpoint)` claims held.
    pub entries: usize,
    /// Distinct router keys.
    pub keys: usize,
    /// Estimated heap bytes of the index (tables at their capacity, holder lists, maps).
    pub bytes: usize,
    /// Endpoints with a view.
    pub endpoints: usize,
    /// Endpoints currently scored from the approximate fallback.
    pub unreliable_endpoints: usize,
    pub batches: u64,
    pub events_received: u64,
    pub events_applied: u64,
    /// Events not applied, by reason (decode errors, unknown parents, over budget, ...).
    pub events_dropped: BTreeMap<&'static str, u64>,
    /// Sequence gaps seen, and the batches they skipped.
    pub gaps: u64,
    pub missed_batches: u64,
    /// Switches of an endpoint to the fallback, by [`Unreliable`] reason.
    pub fallback_switches: BTreeMap<&'static str, u64>,
    /// Prompt tokens the index predicted cached on the picked endpoint, for requests whose
    /// response reported `cached_tokens`, and what the servers reported for them.
    pub predicted_cached_tokens: u64,
    pub observed_cached_tokens: u64,
    pub observed_prompt_tokens: u64,
    pub observed_requests: u64,
}

impl Counters {
    pub fn fill(&self, stats: &mut PreciseStats) {
        stats.batches = self.batches.load(Relaxed);
        stats.events_received = self.events_received.load(Relaxed);
        stats.events_applied = self.events_applied.load(Relaxed);
        stats.events_dropped = self.dropped.lock().clone();
        stats.gaps = self.gaps.load(Relaxed);
        stats.missed_batches = self.missed_batches.load(Relaxed);
        stats.fallback_switches = self.switches.lock().clone();
        stats.predicted_cached_tokens = self.predicted_tokens.load(Relaxed);
        stats.observed_cached_tokens = self.observed_tokens.load(Relaxed);
        stats.observed_prompt_tokens = self.observed_prompt_tokens.load(Relaxed);
        stats.observed_requests = self.observed_requests.load(Relaxed);
    }
}
