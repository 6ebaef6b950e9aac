//! Intake-side counters (the index counts what it applied, dropped and lost; these count
//! the transport's work), shared by all endpoint tasks of one subscription.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Monotonic counters, `Relaxed` (statistics, not synchronisation); `endpoints` is a gauge.
#[derive(Debug, Default)]
pub(crate) struct IntakeCounters {
    pub messages: AtomicU64,
    pub decode_errors: AtomicU64,
    pub rank_mismatches: AtomicU64,
    pub flood_drops: AtomicU64,
    pub reorders_resolved: AtomicU64,
    pub replays_requested: AtomicU64,
    pub replays_succeeded: AtomicU64,
    pub replays_failed: AtomicU64,
    pub replayed_batches: AtomicU64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub reconnects: AtomicU64,
    pub endpoints: AtomicU64,
}

impl IntakeCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> IntakeStats {
        IntakeStats {
            messages: self.messages.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            rank_mismatches: self.rank_mismatches.load(Relaxed),
            flood_drops: self.flood_drops.load(Relaxed),
            reorders_resolved: self.reorders_resolved.load(Relaxed),
            replays_requested: self.replays_requested.load(Relaxed),
            replays_succeeded: self.replays_succeeded.load(Relaxed),
            replays_failed: self.replays_failed.load(Relaxed),
            replayed_batches: self.replayed_batches.load(Relaxed),
            connects: self.connects.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            endpoints: self.endpoints.load(Relaxed),
        }
    }
}

/// A point-in-time copy of one subscription's intake counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntakeStats {
    /// Messages received on the SUB sockets (all of them, before any check).
    pub messages: u64,
    /// Messages that did not decode (the index counts their reasons under `events_dropped`).
    pub decode_errors: u64,
    /// Batches whose `data_parallel_rank` was not the endpoint's rank.
    pub rank_mismatches: u64,
    /// Batches dropped by the flood guard.
    pub flood_drops: u64,
    /// Gaps closed by a late batch within the reorder window.
    pub reorders_resolved: u64,
    /// Gaps for which a replay was requested, and how they ended: every missing batch
    /// replayed, or not (refused, timed out, started above the requested seq).
    pub replays_requested: u64,
    pub replays_succeeded: u64,
    pub replays_failed: u64,
    /// Batches applied from replays.
    pub replayed_batches: u64,
    /// Successful subscriptions (first connections and re-connections by this crate).
    pub connects: u64,
    pub connect_failures: u64,
    /// Connections re-established after a loss (each marks the endpoint unreliable).
    pub reconnects: u64,
    /// Endpoints followed now (one task each).
    pub endpoints: u64,
}
