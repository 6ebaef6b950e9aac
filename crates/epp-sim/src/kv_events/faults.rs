//! Fault injection on the way out, so an EPP's gap detection and fallback can be exercised:
//! dropped batches (a gap in seq), swapped neighbours, and a fixed delay. Pure: the generator
//! and the clock are passed in.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

/// Batches waiting out `--kv-events-delay` at most; past it a batch is dropped (counted).
pub(crate) const DELAY_CAPACITY: usize = 65_536;

/// A batch ready for the PUB socket: its seq and encoded payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub seq: u64,
    pub payload: Bytes,
}

/// Drops and swaps batches at the configured ratios.
#[derive(Debug)]
pub(crate) struct FaultPlan {
    drop_ratio: f64,
    reorder_ratio: f64,
    rng: SmallRng,
    /// A batch held back to go out after the next one.
    held: Option<Outgoing>,
}

impl FaultPlan {
    pub(crate) fn new(drop_ratio: f64, reorder_ratio: f64, rng: SmallRng) -> Self {
        Self {
            drop_ratio,
            reorder_ratio,
            rng,
            held: None,
        }
    }

    /// Decides the fate of `batch`; appends what goes out now, in order, to `ready`.
    /// Returns `false` when the batch is dropped. A held batch goes out right after the next
    /// batch that is not dropped (a swap), so that next one is never held itself.
    pub(crate) fn admit(&mut self, batch: Outgoing, ready: &mut Vec<Outgoing>) -> bool {
        if self.drop_ratio > 0.0 && self.rng.random::<f64>() < self.drop_ratio {
            return false;
        }
        if let Some(held) = self.held.take() {
            ready.push(batch);
            ready.push(held);
        } else if self.reorder_ratio > 0.0 && self.rng.random::<f64>() < self.reorder_ratio {
            self.held = Some(batch);
        } else {
            ready.push(batch);
        }
        true
    }

    /// Whether a batch waits for a successor.
    pub(crate) fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// Lets a held batch go (no successor came in time).
    pub(crate) fn release(&mut self, ready: &mut Vec<Outgoing>) {
        ready.extend(self.held.take());
    }
}

/// Batches waiting out a fixed delay, in order; bounded by [`DELAY_CAPACITY`].
#[derive(Debug)]
pub(crate) struct DelayLine {
    delay: Duration,
    queue: VecDeque<(Instant, Outgoing)>,
}

impl DelayLine {
    pub(crate) fn new(delay: Duration) -> Self {
        Self {
            delay,
            queue: VecDeque::new(),
        }
    }

    /// Whether batches wait at all (a zero delay sends them at once).
    pub(crate) fn is_active(&self) -> bool {
        !self.delay.is_zero()
    }

    /// Queues `batch` until `now + delay`; `false` (not queued) when full.
    pub(crate) fn push(&mut self, batch: Outgoing, now: Instant) -> bool {
        if self.queue.len() >= DELAY_CAPACITY {
            return false;
        }
        self.queue.push_back((now + self.delay, batch));
        true
    }

    /// When the oldest batch is due, if any waits.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|(due, _)| *due)
    }

    /// Moves every batch due at `now` to `ready`, oldest first.
    pub(crate) fn pop_due(&mut self, now: Instant, ready: &mut Vec<Outgoing>) {
        while let Some((due, _)) = self.queue.front() {
            if *due > now {
                break;
            }
            ready.extend(self.queue.pop_front().map(|(_, batch)| batch));
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn batch(seq: u64) -> Outgoing {
        Outgoing {
            seq,
            payload: Bytes::new(),
        }
    }

    fn run(plan: &mut FaultPlan, n: u64) -> (Vec<u64>, usize) {
        let (mut ready, mut dropped) = (Vec::new(), 0);
        for seq in 0..n {
            dropped += usize::from(!plan.admit(batch(seq), &mut ready));
        }
        plan.release(&mut ready);
        (ready.iter().map(|b| b.seq).collect(), dropped)
    }

    #[test]
    fn no_faults_pass_everything_in_order() {
        let mut plan = FaultPlan::new(0.0, 0.0, SmallRng::seed_from_u64(1));
        assert_eq!(run(&mut plan, 5), ((0..5).collect(), 0));
    }

    #[test]
    fn dropping_half_leaves_gaps_and_is_seeded() {
        let outcome = |seed| {
            run(
                &mut FaultPlan::new(0.5, 0.0, SmallRng::seed_from_u64(seed)),
                1000,
            )
        };
        let (sent, dropped) = outcome(3);
        assert!((400..600).contains(&dropped), "{dropped}");
        assert_eq!(sent.len() + dropped, 1000);
        assert!(sent.windows(2).all(|w| w[0] < w[1]), "order is kept");
        assert_eq!(outcome(3), (sent, dropped), "same seed, same drops");
    }

    #[test]
    fn reordering_swaps_neighbours_only() {
        let mut plan = FaultPlan::new(0.0, 1.0, SmallRng::seed_from_u64(1));
        assert_eq!(run(&mut plan, 5).0, [1, 0, 3, 2, 4]);
    }

    #[test]
    fn a_held_batch_is_released_on_request() {
        let mut plan = FaultPlan::new(0.0, 1.0, SmallRng::seed_from_u64(1));
        let mut ready = Vec::new();
        assert!(plan.admit(batch(0), &mut ready));
        assert!(ready.is_empty() && plan.holding());
        plan.release(&mut ready);
        assert_eq!(ready, [batch(0)]);
    }

    #[test]
    fn the_delay_line_keeps_order_and_timing() {
        let start = Instant::now();
        let mut line = DelayLine::new(Duration::from_millis(10));
        assert!(line.push(batch(0), start));
        assert!(line.push(batch(1), start + Duration::from_millis(5)));
        let mut ready = Vec::new();
        line.pop_due(start + Duration::from_millis(9), &mut ready);
        assert!(ready.is_empty());
        assert_eq!(line.next_due(), Some(start + Duration::from_millis(10)));
        line.pop_due(start + Duration::from_millis(15), &mut ready);
        assert_eq!(ready, [batch(0), batch(1)]);
        assert_eq!(line.next_due(), None);
    }
}
