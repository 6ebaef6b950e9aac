//! The event queue: a min-heap on (time, sequence number), so events at the same instant
//! run in the order they were scheduled and every run is deterministic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Virtual time in nanoseconds since the start of the run (integers: no float drift in the
/// ordering).
pub type Nanos = u64;

/// Converts seconds to [`Nanos`], rounding; negative and NaN give 0.
pub fn nanos(seconds: f64) -> Nanos {
    if seconds.is_nan() || seconds <= 0.0 {
        return 0;
    }
    (seconds * 1e9).round().min(u64::MAX as f64) as Nanos
}

/// Seconds of a [`Nanos`] time.
pub fn seconds(at: Nanos) -> f64 {
    at as f64 / 1e9
}

/// What happens at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    /// Request `n` is sent by its client.
    Arrival(u32),
    /// Request `n` reaches its pod (after the frontend delay).
    Enqueue { pod: u32, request: u32 },
    /// The step running on `pod` ends.
    StepEnd(u32),
    /// The EPP scrapes `pod`.
    Scrape(u32),
    /// The client has received request `n`'s last byte: the gateway's stream ends and the
    /// EPP's in-flight accounting with it.
    Done(u32),
    /// The KV-event batch in transit under this slot reaches the EPP's precise index.
    KvBatch(u32),
    /// Request `n`'s time to live in the EPP's waiting room ends (if it is still there).
    Expire(u32),
}

/// Pending events.
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: BinaryHeap<Reverse<(Nanos, u64, Event)>>,
    next_seq: u64,
}

impl EventQueue {
    /// Schedules `event` at `at`.
    pub fn push(&mut self, at: Nanos, event: Event) {
        self.heap.push(Reverse((at, self.next_seq, event)));
        self.next_seq += 1;
    }

    /// The earliest event (FIFO among equal times).
    pub fn pop(&mut self) -> Option<(Nanos, Event)> {
        self.heap.pop().map(|Reverse((at, _, event))| (at, event))
    }

    /// Events scheduled so far (a work measure).
    pub fn scheduled(&self) -> u64 {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_times_pop_in_push_order_and_times_ascend() {
        let mut queue = EventQueue::default();
        queue.push(5, Event::Scrape(1));
        queue.push(3, Event::Arrival(9));
        queue.push(5, Event::Arrival(0));
        queue.push(5, Event::StepEnd(0));
        let order: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(
            order,
            vec![
                (3, Event::Arrival(9)),
                (5, Event::Scrape(1)),
                (5, Event::Arrival(0)),
                (5, Event::StepEnd(0)),
            ]
        );
    }

    #[test]
    fn seconds_round_trip_through_nanos() {
        assert_eq!(nanos(1.5), 1_500_000_000);
        assert_eq!(nanos(-1.0), 0);
        assert_eq!(nanos(f64::NAN), 0);
        assert_eq!(seconds(nanos(0.05)), 0.05);
    }
}
