//! The publishing pipeline of one server: the engine loop hands each step's events to a
//! [`KvEventsSink`] (never blocking: a full channel drops the batch), and a task encodes them,
//! keeps them for replay, applies the faults and sends them on the PUB socket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use epp_engine::CacheEvent;
use epp_kvevents::{EventBatch, Layout, encode_batch_with};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use zeromq::{PubSocket, SocketSend};

use crate::kv_events::config::HashForm;
use crate::kv_events::convert::to_wire;
use crate::kv_events::faults::{DelayLine, FaultPlan, Outgoing};
use crate::kv_events::frames_message;
use crate::kv_events::replay::SharedReplay;
use crate::server::stopped;

/// Batches between the engine loop and the publisher task at most.
pub(crate) const CHANNEL_CAPACITY: usize = 1024;

/// How long a batch held for a swap waits for a successor before it goes out alone.
const HOLD_LIMIT: Duration = Duration::from_millis(50);

/// Why a batch was not sent (the `reason` label of `epp_sim_kv_events_dropped_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// `--kv-events-drop-ratio` chose it.
    Fault,
    /// The channel from the engine loop was full.
    QueueFull,
    /// The `--kv-events-delay` line was full.
    DelayFull,
}

impl DropReason {
    pub(crate) const ALL: [Self; 3] = [Self::Fault, Self::QueueFull, Self::DelayFull];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Fault => "fault",
            Self::QueueFull => "queue_full",
            Self::DelayFull => "delay_full",
        }
    }
}

/// Batches sent and dropped by one server, for its `/metrics` page.
#[derive(Debug, Default)]
pub(crate) struct KvEventsCounters {
    published: AtomicU64,
    dropped: [AtomicU64; 3],
}

impl KvEventsCounters {
    pub(crate) fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    fn count_drop(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// One batch on its way to the publisher task.
pub(crate) struct Numbered {
    seq: u64,
    batch: EventBatch,
}

/// The engine loop's end: numbers one batch per step that produced events.
pub(crate) struct KvEventsSink {
    tx: mpsc::Sender<Numbered>,
    next_seq: u64,
    rank: i64,
    hash_form: HashForm,
    counters: Arc<KvEventsCounters>,
}

impl KvEventsSink {
    pub(crate) fn new(
        tx: mpsc::Sender<Numbered>,
        rank: i64,
        hash_form: HashForm,
        counters: Arc<KvEventsCounters>,
    ) -> Self {
        Self {
            tx,
            next_seq: 0,
            rank,
            hash_form,
            counters,
        }
    }

    /// Hands one step's events (if any) to the publisher, stamped `now` (wall clock). The seq is
    /// consumed even when the channel is full, so subscribers see the loss as a gap.
    pub(crate) fn publish(&mut self, events: Vec<CacheEvent>, now: SystemTime) {
        if events.is_empty() {
            return;
        }
        let batch = EventBatch {
            ts: now
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            events: events
                .into_iter()
                .map(|e| to_wire(e, self.hash_form))
                .collect(),
            data_parallel_rank: Some(self.rank),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.tx.try_send(Numbered { seq, batch }).is_err() {
            self.counters.count_drop(DropReason::QueueFull);
        }
    }
}

/// The publisher task's parts.
pub(crate) struct Publisher {
    pub socket: PubSocket,
    pub topic: Bytes,
    pub replay: Option<SharedReplay>,
    pub faults: FaultPlan,
    pub delay: DelayLine,
    pub counters: Arc<KvEventsCounters>,
}

impl Publisher {
    /// Publishes what arrives on `rx` until `stop` (or the engine loop is gone).
    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Numbered>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ready = Vec::new();
        let mut held_since = None;
        loop {
            let delay_due = self.delay.next_due();
            let hold_due = held_since.map(|t: Instant| t + HOLD_LIMIT);
            tokio::select! {
                received = rx.recv() => {
                    let Some(numbered) = received else { return };
                    self.admit(numbered, &mut ready);
                    held_since = match self.faults.holding() {
                        true => held_since.or(Some(Instant::now())),
                        false => None,
                    };
                }
                () = sleep_until(hold_due.unwrap_or_else(far_future)), if hold_due.is_some() => {
                    self.faults.release(&mut ready);
                    held_since = None;
                }
                () = sleep_until(delay_due.unwrap_or_else(far_future)), if delay_due.is_some() => {}
                () = stopped(&mut stop) => return,
            }
            self.route(&mut ready).await;
        }
    }

    /// Encodes a batch, keeps it for replay, and lets the faults decide what goes out.
    fn admit(&mut self, numbered: Numbered, ready: &mut Vec<Outgoing>) {
        let payload = Bytes::from(encode_batch_with(&numbered.batch, Layout::Positional));
        let batch = Outgoing {
            seq: numbered.seq,
            payload,
        };
        if let Some(replay) = &self.replay {
            replay
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(batch.clone());
        }
        if !self.faults.admit(batch, ready) {
            self.counters.count_drop(DropReason::Fault);
        }
    }

    /// Sends `ready` through the delay line (when there is a delay) and then the socket.
    async fn route(&mut self, ready: &mut Vec<Outgoing>) {
        let now = Instant::now();
        if self.delay.is_active() {
            for batch in ready.drain(..) {
                if !self.delay.push(batch, now) {
                    self.counters.count_drop(DropReason::DelayFull);
                }
            }
            self.delay.pop_due(now, ready);
        }
        for batch in ready.drain(..) {
            self.send(batch).await;
        }
    }

    async fn send(&mut self, batch: Outgoing) {
        let seq = Bytes::copy_from_slice(&batch.seq.to_be_bytes());
        let message = frames_message([self.topic.clone(), seq, batch.payload]);
        match self.socket.send(message).await {
            Ok(()) => {
                self.counters.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => tracing::debug!(%error, seq = batch.seq, "sim: kv-events send failed"),
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step_events() -> Vec<CacheEvent> {
        vec![CacheEvent::Removed {
            block_hashes: vec![1],
        }]
    }

    #[test]
    fn a_full_channel_drops_the_batch_but_consumes_its_seq() {
        let (tx, mut rx) = mpsc::channel(1);
        let counters = Arc::new(KvEventsCounters::default());
        let mut sink = KvEventsSink::new(tx, 3, HashForm::Int, Arc::clone(&counters));
        let now = UNIX_EPOCH + Duration::from_secs(10);
        sink.publish(Vec::new(), now); // a step without events sends nothing
        for _ in 0..3 {
            sink.publish(step_events(), now);
        }
        assert_eq!(counters.dropped(DropReason::QueueFull), 2);
        let first = rx.try_recv().expect("the first batch");
        assert_eq!((first.seq, first.batch.ts), (0, 10.0));
        assert_eq!(first.batch.data_parallel_rank, Some(3));
        sink.publish(step_events(), now);
        assert_eq!(
            rx.try_recv().expect("room again").seq,
            3,
            "seqs 1 and 2 were lost"
        );
    }
}
