//! Putting one endpoint's batches back in sequence order: a batch that skips ahead waits
//! (bounded) for the missing ones, until the reorder window ends or the buffer fills; then
//! the gap is resolved (replayed or accepted). Pure: time is passed in.

use std::collections::BTreeMap;
use std::time::Duration;

use epp_kvevents::EventBatch;

/// A sequence number's content: a batch to apply, or one that arrived and was discarded
/// (undecodable, flooded), which closes its hole without a replay; the index then counts
/// the loss as a gap when the next batch is applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Slot {
    Batch(EventBatch),
    Lost,
}

/// What [`Sequencer::offer`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// It (and any held batches it made consecutive) went to `out`; `filled_gap` when it
    /// was a missing batch that arrived late.
    Delivered { filled_gap: bool },
    /// It skipped ahead and waits for the missing batches.
    Held,
    /// As `Held`, but the buffer is full: resolve the gap now.
    Overflow,
    /// Its seq is below the next expected one (a duplicate, or a restarted publisher).
    Behind { expected: u64 },
}

#[derive(Debug)]
pub(crate) struct Sequencer {
    expected: Option<u64>,
    held: BTreeMap<u64, Slot>,
    gap_since: Option<Duration>,
    window: Duration,
    capacity: usize,
}

/// The missing range of a gap: `from..until` (`until` is the first held seq).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    pub from: u64,
    pub until: u64,
    /// The highest held seq: replayed batches at or above it are not needed.
    pub last_held: u64,
}

impl Sequencer {
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            expected: None,
            held: BTreeMap::new(),
            gap_since: None,
            window,
            capacity: capacity.max(1),
        }
    }

    /// Forgets the order (a new connection: its first batch starts a new run).
    pub fn reset(&mut self) {
        self.expected = None;
        self.held.clear();
        self.gap_since = None;
    }

    pub fn offer(
        &mut self,
        seq: u64,
        slot: Slot,
        now: Duration,
        out: &mut Vec<(u64, Slot)>,
    ) -> Offer {
        match self.expected {
            Some(expected) if seq < expected => Offer::Behind { expected },
            Some(expected) if seq > expected => {
                self.held.entry(seq).or_insert(slot);
                self.gap_since.get_or_insert(now);
                if self.held.len() >= self.capacity {
                    Offer::Overflow
                } else {
                    Offer::Held
                }
            }
            _ => {
                let filled_gap = !self.held.is_empty();
                out.push((seq, slot));
                self.expected = Some(seq.saturating_add(1));
                self.drain_consecutive(out);
                if self.held.is_empty() {
                    self.gap_since = None;
                }
                Offer::Delivered { filled_gap }
            }
        }
    }

    /// When the current gap stops waiting.
    pub fn deadline(&self) -> Option<Duration> {
        self.gap_since.map(|t| t + self.window)
    }

    pub fn gap(&self) -> Option<Gap> {
        let from = self.expected?;
        let (&until, _) = self.held.first_key_value()?;
        let (&last_held, _) = self.held.last_key_value()?;
        Some(Gap {
            from,
            until,
            last_held,
        })
    }

    /// Ends the gap: `replayed` batches fill what they can (below the last held seq), then
    /// everything held goes to `out` in order. Returns whether no seq was left missing.
    pub fn resolve(
        &mut self,
        replayed: Vec<(u64, EventBatch)>,
        out: &mut Vec<(u64, Slot)>,
    ) -> bool {
        let Some(gap) = self.gap() else {
            return true;
        };
        for (seq, batch) in replayed {
            if seq >= gap.from && seq < gap.last_held {
                self.held.entry(seq).or_insert(Slot::Batch(batch));
            }
        }
        let mut next = gap.from;
        let mut complete = true;
        for (seq, slot) in std::mem::take(&mut self.held) {
            complete &= seq == next;
            next = seq.saturating_add(1);
            out.push((seq, slot));
        }
        self.expected = Some(next);
        self.gap_since = None;
        complete
    }

    fn drain_consecutive(&mut self, out: &mut Vec<(u64, Slot)>) {
        while let Some(expected) = self.expected
            && let Some(slot) = self.held.remove(&expected)
        {
            out.push((expected, slot));
            self.expected = Some(expected.saturating_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ts: f64) -> Slot {
        Slot::Batch(EventBatch {
            ts,
            events: Vec::new(),
            data_parallel_rank: None,
        })
    }

    fn seqs(out: &[(u64, Slot)]) -> Vec<u64> {
        out.iter().map(|(s, _)| *s).collect()
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn in_order_passes_through() {
        let mut s = Sequencer::new(20 * MS, 4);
        let mut out = Vec::new();
        for seq in 5..8 {
            let offer = s.offer(seq, batch(0.0), MS, &mut out);
            assert_eq!(offer, Offer::Delivered { filled_gap: false });
        }
        assert_eq!(seqs(&out), [5, 6, 7]);
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn late_batch_within_window_reorders() {
        let mut s = Sequencer::new(20 * MS, 4);
        let mut out = Vec::new();
        s.offer(0, batch(0.0), MS, &mut out);
        assert_eq!(s.offer(2, batch(0.0), 2 * MS, &mut out), Offer::Held);
        assert_eq!(s.offer(3, batch(0.0), 3 * MS, &mut out), Offer::Held);
        assert_eq!(s.deadline(), Some(22 * MS));
        let offer = s.offer(1, batch(0.0), 5 * MS, &mut out);
        assert_eq!(offer, Offer::Delivered { filled_gap: true });
        assert_eq!(seqs(&out), [0, 1, 2, 3]);
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn behind_and_overflow() {
        let mut s = Sequencer::new(20 * MS, 2);
        let mut out = Vec::new();
        s.offer(10, batch(0.0), MS, &mut out);
        assert_eq!(
            s.offer(10, batch(0.0), MS, &mut out),
            Offer::Behind { expected: 11 }
        );
        assert_eq!(s.offer(13, batch(0.0), MS, &mut out), Offer::Held);
        assert_eq!(s.offer(15, batch(0.0), MS, &mut out), Offer::Overflow);
    }

    #[test]
    fn resolve_with_and_without_replay() {
        let mut s = Sequencer::new(20 * MS, 8);
        let mut out = Vec::new();
        s.offer(0, batch(0.0), MS, &mut out);
        s.offer(3, batch(0.0), MS, &mut out);
        assert_eq!(
            s.gap(),
            Some(Gap {
                from: 1,
                until: 3,
                last_held: 3
            })
        );
        out.clear();
        let b = |ts| EventBatch {
            ts,
            events: Vec::new(),
            data_parallel_rank: None,
        };
        // Replayed 1 and 2 fill the hole; 3 and beyond come from the live stream.
        assert!(s.resolve(vec![(1, b(1.0)), (2, b(2.0)), (3, b(3.0))], &mut out));
        assert_eq!(seqs(&out), [1, 2, 3]);
        assert_eq!(
            out[2].1,
            batch(0.0),
            "the held batch wins over the replayed copy"
        );
        s.offer(6, batch(0.0), MS, &mut out);
        out.clear();
        assert!(!s.resolve(Vec::new(), &mut out), "4 and 5 stay missing");
        assert_eq!(seqs(&out), [6]);
        assert_eq!(
            s.offer(7, batch(0.0), MS, &mut out),
            Offer::Delivered { filled_gap: false }
        );
    }

    #[test]
    fn lost_slots_close_holes() {
        let mut s = Sequencer::new(20 * MS, 8);
        let mut out = Vec::new();
        s.offer(0, batch(0.0), MS, &mut out);
        s.offer(2, batch(0.0), MS, &mut out);
        s.offer(1, Slot::Lost, MS, &mut out);
        assert_eq!(seqs(&out), [0, 1, 2]);
        assert_eq!(out[1].1, Slot::Lost);
        s.reset();
        out.clear();
        s.offer(0, batch(0.0), MS, &mut out);
        assert_eq!(seqs(&out), [0], "after a reset any seq starts a run");
    }
}
