//! One endpoint's subscriber: connect, receive, check, put in order, apply.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use epp_core::datastore::{Datastore, EndpointId};
use epp_core::prefix::precise::{BatchOutcome, Unreliable};
use epp_core::scheduling::plugins::precise_prefix_cache_scorer::KvEventsSubscription;
use epp_kvevents::{EventBatch, decode_message, decode_seq};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use zeromq::{Socket, SocketEvent, SocketOptions, SocketRecv, SubSocket, ZmqMessage};

use crate::flood::TokenBucket;
use crate::replay::replay;
use crate::sequencer::{Offer, Sequencer, Slot};
use crate::settings::IntakeSettings;
use crate::stats::IntakeCounters;

/// Out-of-order batches held per endpoint while a gap waits, at most.
const MAX_HELD: usize = 64;
/// How often connection events are looked at when no message arrives.
const MONITOR_TICK: Duration = Duration::from_millis(100);

/// What every endpoint task of one subscription shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub subscription: KvEventsSubscription,
    pub datastore: Arc<Datastore>,
    pub settings: IntakeSettings,
    pub counters: Arc<IntakeCounters>,
}

/// Which publisher an endpoint reads: its address, and its rank among the endpoints on the
/// same IP (the port offset, as vLLM offsets a data-parallel rank's ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub id: EndpointId,
    pub address: SocketAddr,
    pub rank: u16,
}

impl Target {
    fn url(&self, base_port: u16) -> Option<String> {
        let port = base_port.checked_add(self.rank)?;
        Some(format!(
            "tcp://{}",
            SocketAddr::new(self.address.ip(), port)
        ))
    }
}

/// Runs until aborted: (re)connects with backoff and feeds the index.
pub(crate) async fn run(shared: Arc<Shared>, target: Target) {
    let Some(url) = target.url(shared.subscription.port) else {
        tracing::error!(endpoint = %target.address, rank = target.rank, "KV events: port + rank is past 65535; not subscribing");
        return;
    };
    let mut intake = EndpointIntake::new(shared, target);
    let mut rng = SmallRng::seed_from_u64(target.id.0);
    let mut backoff = intake.shared.settings.reconnect_backoff;
    let mut connected_before = false;
    loop {
        match intake.connect(&url).await {
            Ok((socket, mut next_event)) => {
                IntakeCounters::add(&intake.shared.counters.connects, 1);
                if connected_before {
                    intake.reconnected();
                }
                connected_before = true;
                backoff = intake.shared.settings.reconnect_backoff;
                intake.receive(socket, &mut next_event).await;
            }
            Err(error) => {
                IntakeCounters::add(&intake.shared.counters.connect_failures, 1);
                tracing::debug!(endpoint = %target.address, url, %error, "KV events: cannot subscribe yet");
            }
        }
        let jitter = backoff.mul_f64(rng.random_range(0.0..0.2));
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(intake.shared.settings.reconnect_backoff * 30);
    }
}

struct EndpointIntake {
    shared: Arc<Shared>,
    target: Target,
    sequencer: Sequencer,
    bucket: TokenBucket,
    ready: Vec<(u64, Slot)>,
    started: tokio::time::Instant,
}

/// Whether the socket lost its peer and is waiting to reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    Lost,
}

impl EndpointIntake {
    fn new(shared: Arc<Shared>, target: Target) -> Self {
        let settings = &shared.settings;
        Self {
            sequencer: Sequencer::new(settings.reorder_window, MAX_HELD),
            bucket: TokenBucket::new(settings.max_events_per_second),
            ready: Vec::new(),
            started: tokio::time::Instant::now(),
            shared,
            target,
        }
    }

    /// Subscribes to `url`. The second value reads the socket's connection events without
    /// waiting (the monitor's channel type is private to the zeromq crate; a closure hides it).
    async fn connect(
        &self,
        url: &str,
    ) -> Result<
        (
            SubSocket,
            impl FnMut() -> Option<SocketEvent> + Send + use<>,
        ),
        zeromq::ZmqError,
    > {
        let mut options = SocketOptions::default();
        options.connect_timeout(self.shared.settings.connect_timeout);
        let mut socket = SubSocket::with_options(options);
        let mut monitor = socket.monitor();
        socket.subscribe(&self.shared.subscription.topic).await?;
        socket.connect(url).await?;
        // The first `Connected` is this connection's own.
        while let Ok(event) = monitor.try_recv() {
            tracing::trace!(?event, "KV events: socket event");
        }
        Ok((socket, move || monitor.try_recv().ok()))
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Reads messages until the task is aborted. The socket re-establishes a lost connection
    /// by itself; its monitor tells us, and what was published meanwhile is lost.
    async fn receive(
        &mut self,
        mut socket: SubSocket,
        next_event: &mut (impl FnMut() -> Option<SocketEvent> + Send),
    ) {
        let mut link = Link::Up;
        let mut tick = tokio::time::interval(MONITOR_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.sequencer.deadline();
            let sleep_until = self.started + deadline.unwrap_or(Duration::from_secs(86_400 * 365));
            tokio::select! {
                message = socket.recv() => {
                    link = self.watch_link(link, next_event);
                    match message {
                        Ok(message) => self.on_message(&message).await,
                        // The peer went away; the socket reconnects by itself.
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                () = tokio::time::sleep_until(sleep_until), if deadline.is_some() => {
                    self.resolve_gap().await;
                }
                _ = tick.tick() => link = self.watch_link(link, next_event),
            }
        }
    }

    fn watch_link(
        &mut self,
        mut link: Link,
        next_event: &mut (impl FnMut() -> Option<SocketEvent> + Send),
    ) -> Link {
        while let Some(event) = next_event() {
            match event {
                SocketEvent::Disconnected(_) => {
                    tracing::debug!(endpoint = %self.target.address, "KV events: publisher disconnected");
                    link = Link::Lost;
                }
                SocketEvent::Connected(..) if link == Link::Lost => {
                    IntakeCounters::add(&self.shared.counters.reconnects, 1);
                    self.reconnected();
                    link = Link::Up;
                }
                _ => {}
            }
        }
        link
    }

    /// A new connection after a loss: the order starts over and the view is unreliable.
    fn reconnected(&mut self) {
        self.sequencer.reset();
        let now = self.shared.datastore.clock().now();
        let index = &self.shared.subscription.index;
        if let Some(reason) = index.mark_unreliable(self.target.id, Unreliable::Reconnect, now) {
            self.log_switch(reason);
        }
    }

    async fn on_message(&mut self, message: &ZmqMessage) {
        let counters = &self.shared.counters;
        IntakeCounters::add(&counters.messages, 1);
        let frames: Vec<&[u8]> = message.iter().map(|f| f.as_ref()).collect();
        let index = &self.shared.subscription.index;
        let (seq, slot) = match decode_message(&frames, &self.shared.settings.limits) {
            Ok(decoded) => {
                let Some(slot) = self.admit(decoded.batch) else {
                    return;
                };
                (decoded.seq, slot)
            }
            Err(error) => {
                IntakeCounters::add(&counters.decode_errors, 1);
                index.record_dropped(error.reason(), 1);
                tracing::debug!(endpoint = %self.target.address, %error, "KV events: undecodable message");
                // A readable seq closes its hole at once (a replay would send the same bytes).
                match frames.get(1).map(|f| decode_seq(f)) {
                    Some(Ok(seq)) => (seq, Slot::Lost),
                    _ => return,
                }
            }
        };
        self.sequence(seq, slot).await;
    }

    /// The rank check and the flood guard; `None` drops the batch (counted).
    fn admit(&mut self, batch: EventBatch) -> Option<Slot> {
        let counters = &self.shared.counters;
        let index = &self.shared.subscription.index;
        let events = batch.events.len() as u64;
        if let Some(rank) = batch.data_parallel_rank
            && rank != i64::from(self.target.rank)
        {
            // Another publisher's batch: its seq is not ours, so it does not touch the order.
            IntakeCounters::add(&counters.rank_mismatches, 1);
            index.record_dropped("rank_mismatch", events);
            return None;
        }
        if !self.bucket.admit(events, self.now()) {
            IntakeCounters::add(&counters.flood_drops, 1);
            index.record_dropped("flood", events);
            return Some(Slot::Lost);
        }
        Some(Slot::Batch(batch))
    }

    async fn sequence(&mut self, seq: u64, slot: Slot) {
        let now = self.now();
        let mut ready = std::mem::take(&mut self.ready);
        match self.sequencer.offer(seq, slot.clone(), now, &mut ready) {
            Offer::Delivered { filled_gap } => {
                if filled_gap {
                    IntakeCounters::add(&self.shared.counters.reorders_resolved, 1);
                }
            }
            Offer::Held => {}
            Offer::Overflow => {
                self.ready = ready;
                self.resolve_gap().await;
                return;
            }
            Offer::Behind { expected } => {
                if seq == 0 && expected > 1 {
                    // vLLM numbers from 0 when it starts: the publisher restarted.
                    tracing::info!(endpoint = %self.target.address, "KV events: publisher restarted");
                    self.reconnected();
                    self.sequencer.offer(seq, slot, now, &mut ready);
                } else {
                    // A duplicate: the index drops it as stale and counts it.
                    ready.push((seq, slot));
                }
            }
        }
        self.apply_ready(&mut ready);
        self.ready = ready;
    }

    /// The reorder window ran out (or the buffer filled): replay the missing batches if the
    /// engine offers a replay socket, then apply everything held in order.
    async fn resolve_gap(&mut self) {
        let Some(gap) = self.sequencer.gap() else {
            return;
        };
        let counters = Arc::clone(&self.shared.counters);
        let mut replayed = Vec::new();
        let replay_url = self
            .shared
            .subscription
            .replay_port
            .and_then(|port| self.target.url(port));
        let replaying = replay_url.is_some();
        if let Some(url) = replay_url {
            IntakeCounters::add(&counters.replays_requested, 1);
            let settings = &self.shared.settings;
            let result = replay(
                &url,
                gap.from,
                gap.until,
                &settings.limits,
                settings.replay_timeout,
            )
            .await;
            if let Some(reason) = result.decode_error {
                self.shared.subscription.index.record_dropped(reason, 1);
            }
            if !result.finished {
                tracing::debug!(endpoint = %self.target.address, from = gap.from, until = gap.until, got = result.batches.len(), "KV events: replay did not cover the gap");
            }
            replayed = result.batches;
        }
        let mut ready = std::mem::take(&mut self.ready);
        let replayed_count = replayed.len() as u64;
        let complete = self.sequencer.resolve(replayed, &mut ready);

        if replaying {
            IntakeCounters::add(&counters.replayed_batches, replayed_count);
            let counter = if complete {
                &counters.replays_succeeded
            } else {
                &counters.replays_failed
            };
            IntakeCounters::add(counter, 1);
        }
        self.apply_ready(&mut ready);
        self.ready = ready;
    }

    fn apply_ready(&mut self, ready: &mut Vec<(u64, Slot)>) {
        let index = &self.shared.subscription.index;
        for (seq, slot) in ready.drain(..) {
            let Slot::Batch(batch) = slot else {
                continue;
            };
            let now = self.shared.datastore.clock().now();
            let outcome = index.apply_batch(self.target.id, seq, &batch, now);
            self.log_outcome(outcome);
        }
    }

    fn log_outcome(&self, outcome: BatchOutcome) {
        if let Some(reason) = outcome.became_unreliable {
            self.log_switch(reason);
        }
        if outcome.recovered {
            tracing::info!(plugin = %self.shared.subscription.plugin, endpoint = %self.target.address, "KV events: endpoint scored from its events again");
        }
    }

    fn log_switch(&self, reason: Unreliable) {
        tracing::warn!(plugin = %self.shared.subscription.plugin, endpoint = %self.target.address, reason = reason.as_str(), "KV events: endpoint scored by the approximate index until its events are trusted again");
    }
}
