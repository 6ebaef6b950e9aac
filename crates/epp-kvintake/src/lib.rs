//! The EPP's intake of vLLM KV-cache events over ZMQ, feeding a precise prefix index.
//!
//! **Model.** Every model-server endpoint in the datastore gets its own task with its own
//! ZMQ `SUB` socket subscribed to the scorer's topic prefix, so a flooding or stuck publisher
//! costs only its own task, and the index lock is held for one batch at a time. Endpoints on
//! one IP are ranked by port (the N-th gets rank N) and read `tcp://ip:(kvPort + rank)`, the
//! way vLLM offsets a data-parallel rank's ports; a batch carrying another
//! `data_parallel_rank` is dropped (`rank_mismatch`).
//!
//! Each message is decoded within [`IntakeSettings::limits`], passes the rank check and a
//! per-endpoint token bucket on events per second (excess batches are dropped as `flood`),
//! and is put back in sequence order: a batch that skips ahead waits up to
//! [`IntakeSettings::reorder_window`] (at most 64 held) for the missing ones. If they do not
//! come, the missing range is requested from the engine's replay `ROUTER` (when the
//! subscription has a replay port) and applied before the held batches; otherwise, or when the
//! replay falls short, the held batches are applied and the index counts the gap and scores
//! the endpoint from its fallback until it recovers. Undecodable or flooded batches are lost on
//! purpose and are not replayed: the index sees their seqs as a gap.
//!
//! The socket reconnects by itself; its monitor tells the task, which marks the endpoint
//! unreliable (`Reconnect`) because what was published meanwhile is gone. A first connection
//! that fails is retried with jittered exponential backoff; until events flow the endpoint is
//! in the index's "no events" state and scored by the fallback. An endpoint that leaves the
//! datastore has its task stopped and is forgotten by the index.
//!
//! Time for the index is the datastore clock's `now`; the intake's own timers (reorder
//! window, replay timeout, backoff) use tokio's clock.

mod endpoint;
mod flood;
mod follow;
mod replay;
mod sequencer;
mod settings;
mod stats;

use std::sync::Arc;

use epp_core::datastore::Datastore;
use epp_core::scheduling::plugins::precise_prefix_cache_scorer::KvEventsSubscription;
use tokio::task::JoinHandle;

pub use settings::IntakeSettings;
pub use stats::IntakeStats;

use endpoint::Shared;
use stats::IntakeCounters;

/// Starts following `datastore` for `subscription` on the current tokio runtime.
pub fn spawn(
    subscription: KvEventsSubscription,
    datastore: Arc<Datastore>,
    settings: IntakeSettings,
) -> IntakeHandle {
    let counters = Arc::new(IntakeCounters::default());
    let shared = Arc::new(Shared {
        subscription,
        datastore,
        settings,
        counters: Arc::clone(&counters),
    });
    let task = tokio::spawn(follow::follow(shared));
    IntakeHandle {
        task: Some(task),
        counters,
    }
}

/// The running intake of one subscription. Dropping it (or [`IntakeHandle::shutdown`])
/// stops every task it started.
#[derive(Debug)]
pub struct IntakeHandle {
    task: Option<JoinHandle<()>>,
    counters: Arc<IntakeCounters>,
}

impl IntakeHandle {
    /// The intake's counters (the index keeps its own: see `PreciseIndex::stats`).
    pub fn stats(&self) -> IntakeStats {
        self.counters.snapshot()
    }

    /// A handle on the counters that outlives no task (for a metrics collector).
    pub fn stats_reader(&self) -> StatsReader {
        StatsReader(Arc::clone(&self.counters))
    }

    /// Stops every task and waits for the follower to end (endpoint tasks are aborted with it).
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Reads an intake's counters without keeping its tasks alive.
#[derive(Debug, Clone)]
pub struct StatsReader(Arc<IntakeCounters>);

impl StatsReader {
    pub fn read(&self) -> IntakeStats {
        self.0.snapshot()
    }
}

impl Drop for IntakeHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
