//! The KV-event transport of one run: each engine step's cache events become one
//! [`EventBatch`] with the pod's next sequence number, which arrives at the precise index
//! `delay + U(0, jitter)` after the step ends, or is lost with probability `drop_ratio` (its
//! sequence number still used, so the index sees the gap, as a ZMQ subscriber does after a
//! high-water-mark drop). A pod's batches arrive in publication order, as over one ZMQ
//! connection. All draws come from a stream of their own, so turning events on changes no
//! other random choice of the run.

use epp_kvevents::{EventBatch, KvEvent};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::events::{Nanos, nanos, seconds};
use crate::experiment::KvEventsSpec;
use crate::results::PreciseRun;

/// Batches in transit at most (over all pods); beyond it a batch counts as lost. Only a
/// delay far beyond the step time gets near it.
const MAX_IN_TRANSIT: usize = 1 << 20;

/// The purpose key of the delivery's random stream (the workload uses 1 and 2).
const STREAM: u64 = 0x6b76_6576; // "kvev"

/// A batch on its way to the index.
#[derive(Debug)]
pub struct InTransit {
    pub pod: u32,
    pub seq: u64,
    pub batch: EventBatch,
}

/// The transport of every pod of one run.
#[derive(Debug)]
pub struct Delivery {
    spec: KvEventsSpec,
    rng: SmallRng,
    /// The next sequence number of each pod.
    next_seq: Vec<u64>,
    /// The latest arrival scheduled for each pod: later batches never overtake it.
    last_arrival: Vec<Nanos>,
    in_transit: Vec<Option<InTransit>>,
    free: Vec<u32>,
    in_transit_count: usize,
    counters: PreciseRun,
}

impl Delivery {
    pub fn new(spec: KvEventsSpec, pods: usize, seed: u64) -> Self {
        Delivery {
            spec,
            rng: SmallRng::seed_from_u64(crate::workload::tokens::mix(&[seed, STREAM])),
            next_seq: vec![0; pods],
            last_arrival: vec![0; pods],
            in_transit: Vec::new(),
            free: Vec::new(),
            in_transit_count: 0,
            counters: PreciseRun::default(),
        }
    }

    /// Publishes one step's `events` of `pod` at `now`. Returns when and under which slot
    /// the batch arrives, or `None` when there was nothing to publish or it was lost.
    pub fn publish(&mut self, pod: u32, events: Vec<KvEvent>, now: Nanos) -> Option<(Nanos, u32)> {
        if events.is_empty() {
            return None;
        }
        let p = pod as usize;
        let seq = self.next_seq[p];
        self.next_seq[p] += 1;
        let count = events.len() as u64;
        self.counters.batches_published += 1;
        self.counters.events_published += count;
        let lost = self.spec.drop_ratio > 0.0 && self.rng.random::<f64>() < self.spec.drop_ratio;
        if lost || self.in_transit_count >= MAX_IN_TRANSIT {
            self.counters.batches_lost += 1;
            self.counters.events_lost += count;
            return None;
        }
        let jitter = match self.spec.jitter_s > 0.0 {
            true => self.rng.random_range(0.0..=self.spec.jitter_s),
            false => 0.0,
        };
        let at = now
            .saturating_add(nanos(self.spec.delay_s + jitter))
            .max(self.last_arrival[p]);
        self.last_arrival[p] = at;
        let batch = InTransit {
            pod,
            seq,
            batch: EventBatch {
                ts: seconds(now),
                events,
                data_parallel_rank: None,
            },
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.in_transit[slot as usize] = Some(batch);
                slot
            }
            None => {
                self.in_transit.push(Some(batch));
                u32::try_from(self.in_transit.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.in_transit_count += 1;
        Some((at, slot))
    }

    /// The batch arriving under `slot`.
    pub fn take(&mut self, slot: u32) -> Option<InTransit> {
        let batch = self.in_transit.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.in_transit_count -= 1;
        Some(batch)
    }

    /// What was published and lost so far (the index's own counters are not in it).
    pub fn counters(&self) -> &PreciseRun {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(delay_s: f64, jitter_s: f64, drop_ratio: f64) -> KvEventsSpec {
        KvEventsSpec {
            delay_s,
            jitter_s,
            drop_ratio,
        }
    }

    fn one() -> Vec<KvEvent> {
        vec![KvEvent::AllBlocksCleared]
    }

    #[test]
    fn batches_arrive_after_the_delay_with_consecutive_seqs_per_pod() {
        let mut d = Delivery::new(spec(0.005, 0.0, 0.0), 2, 1);
        assert_eq!(d.publish(0, Vec::new(), 10), None, "nothing to publish");
        let (at, a) = d.publish(0, one(), 1_000).expect("sent");
        assert_eq!(at, 1_000 + 5_000_000);
        let (_, b) = d.publish(1, one(), 2_000).expect("sent");
        let (_, c) = d.publish(0, one(), 3_000).expect("sent");
        let seqs: Vec<(u32, u64)> = [a, b, c]
            .into_iter()
            .map(|s| d.take(s).map(|t| (t.pod, t.seq)).expect("in transit"))
            .collect();
        assert_eq!(seqs, vec![(0, 0), (1, 0), (0, 1)]);
        assert!(d.take(a).is_none(), "taken once");
        assert_eq!(d.counters().batches_published, 3);
    }

    fn run(seed: u64) -> (Vec<(Nanos, u64)>, u64) {
        let mut d = Delivery::new(spec(0.001, 0.010, 0.5), 1, seed);
        let mut arrivals = Vec::new();
        for step in 0..1000u64 {
            if let Some((at, slot)) = d.publish(0, one(), step * 100_000) {
                arrivals.push((at, d.take(slot).expect("in transit").seq));
            }
        }
        (arrivals, d.counters().batches_lost)
    }

    #[test]
    fn losses_use_up_seqs_and_jitter_never_reorders_a_pod() {
        let (arrivals, lost) = run(7);
        assert!((400..600).contains(&lost), "about half lost: {lost}");
        assert_eq!(arrivals.len() as u64 + lost, 1000);
        assert!(
            arrivals
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1)
        );
        assert!(arrivals.windows(2).any(|w| w[1].1 > w[0].1 + 1), "gaps");
        assert_eq!(run(7), (arrivals.clone(), lost), "same seed, same run");
        assert_ne!(run(8).0, arrivals, "another seed, other draws");
    }
}
