//! One running server: its shared state, the engine loop that steps it in real time, and the
//! handle that stops it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::HeaderValue;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::SimError;
use crate::api::Generation;
use crate::config::SimConfig;
use crate::fake::FakeMetrics;
use crate::http;
use crate::kv_events::{self, KvEventsCounters, KvEventsSink};
use crate::metrics::{self, MetricsLabels};
use crate::sequence::{NewSequence, SimClient};
use epp_engine::kv_cache::hash_seed;
use epp_engine::{Engine, EngineSnapshot};

/// How far the engine may fall behind its modelled clock before it stops catching up.
const MAX_LAG: Duration = Duration::from_millis(20);

/// State shared by the HTTP handlers, the engine loop and the [`RunningSim`] handle.
pub(crate) struct Shared {
    pub config: SimConfig,
    pub address: SocketAddr,
    pub server_id: HeaderValue,
    engine: Mutex<Engine<SimClient>>,
    /// The engine's epoch: its `now` is the time since.
    started: Instant,
    fake: Mutex<Option<FakeMetrics>>,
    work: Notify,
    labels: MetricsLabels,
    next_response: AtomicU64,
    /// Batches published and dropped, when KV events are on.
    kv_counters: Option<Arc<KvEventsCounters>>,
}

impl Shared {
    fn new(
        config: SimConfig,
        address: SocketAddr,
        kv_counters: Option<Arc<KvEventsCounters>>,
    ) -> Self {
        Self {
            server_id: HeaderValue::from(address.port()),
            engine: Mutex::new(Engine::new(&config.engine_config())),
            started: Instant::now(),
            fake: Mutex::new(config.fake_metrics.clone()),
            work: Notify::new(),
            labels: MetricsLabels::new(&config),
            next_response: AtomicU64::new(0),
            kv_counters,
            config,
            address,
        }
    }

    /// The engine, locked. Never held across an `.await`.
    pub fn engine(&self) -> MutexGuard<'_, Engine<SimClient>> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues sequences and wakes the engine.
    pub fn submit(&self, sequences: Vec<NewSequence>) {
        self.engine().submit(sequences, self.now());
        self.work.notify_one();
    }

    /// Queues a request's sequences on the engine; its token events arrive on the receiver,
    /// which ends when every sequence has finished.
    pub fn run(
        &self,
        generation: &Generation,
    ) -> tokio::sync::mpsc::UnboundedReceiver<crate::sequence::TokenEvent> {
        let (sender, events) = tokio::sync::mpsc::unbounded_channel();
        self.submit(generation.sequences(&self.config, self.hash_seed(generation), &sender));
        events
    }

    /// The engine's clock: wall time since the server started.
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// The block-hash seed of a request's model or adapter.
    pub fn hash_seed(&self, generation: &Generation) -> u64 {
        let name = generation.adapter.as_deref().unwrap_or(&self.config.model);
        hash_seed(name)
    }

    pub fn fake_metrics(&self) -> Option<FakeMetrics> {
        self.fake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_fake_metrics(&self, fake: Option<FakeMetrics>) {
        *self.fake.lock().unwrap_or_else(PoisonError::into_inner) = fake;
    }

    /// The `/metrics` page.
    pub fn render_metrics(&self) -> String {
        let snapshot = self.engine().snapshot();
        let fake = self.fake.lock().unwrap_or_else(PoisonError::into_inner);
        let mut page = metrics::render(&self.labels, &snapshot, fake.as_ref());
        if let Some(counters) = &self.kv_counters {
            metrics::render_kv_events(&mut page, counters);
        }
        page
    }

    /// A fresh id, unique per server: `prefix` (`cmpl-`, `resp_`…), the port and a counter.
    pub fn next_response_id(&self, prefix: &str) -> String {
        let n = self.next_response.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}{}-{n}", self.address.port())
    }

    pub fn unix_seconds(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// Resolves when `stop` turns true or its sender is gone.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Steps the engine in real time: plan a step, sleep its scaled duration, complete it; when
/// idle, wait for a submission without spinning. Each step's KV-cache events (evictions while
/// planning, blocks stored on completion) go to `events` as one batch, as vLLM publishes them.
async fn run_engine(
    shared: Arc<Shared>,
    mut events: Option<KvEventsSink>,
    mut stop: watch::Receiver<bool>,
) {
    let mut deadline = Instant::now();
    loop {
        let (step, cache_events) = {
            let mut engine = shared.engine();
            let step = engine.schedule(shared.now());
            engine.take_retired().for_each(drop); // sequences whose client left
            // Without a step, nothing is left to complete: flush what planning recorded.
            let cache_events = match step {
                None => take_cache_events(&mut engine, events.is_some()),
                Some(_) => Vec::new(),
            };
            (step, cache_events)
        };
        if let Some(sink) = &mut events {
            sink.publish(cache_events, SystemTime::now());
        }
        let Some(duration) = step else {
            tokio::select! {
                () = shared.work.notified() => {}
                () = stopped(&mut stop) => return,
            }
            deadline = Instant::now();
            continue;
        };
        deadline = next_deadline(deadline, shared.config.scaled(duration), Instant::now());
        tokio::select! {
            () = sleep_until(deadline) => {}
            () = stopped(&mut stop) => return,
        }
        let cache_events = {
            let mut engine = shared.engine();
            engine.complete(shared.now());
            engine.take_retired().for_each(drop); // the HTTP side heard the last token
            take_cache_events(&mut engine, events.is_some())
        };
        if let Some(sink) = &mut events {
            sink.publish(cache_events, SystemTime::now());
        }
    }
}

/// The events recorded since the last call (none are recorded when nobody publishes).
fn take_cache_events(engine: &mut Engine<SimClient>, wanted: bool) -> Vec<epp_engine::CacheEvent> {
    match wanted {
        true => engine.take_cache_events().collect(),
        false => Vec::new(),
    }
}

/// Steps end at `previous + duration`, so sub-millisecond steps (timer granularity) add up
/// correctly; a loop lagging by more than [`MAX_LAG`] restarts from `now` instead of bursting.
fn next_deadline(previous: Instant, duration: Duration, now: Instant) -> Instant {
    match now.saturating_duration_since(previous) > MAX_LAG {
        true => now + duration,
        false => previous + duration,
    }
}

/// Counters and gauges of one server, read from the engine (never the fake metrics).
#[derive(Clone, Debug, PartialEq)]
pub struct SimStats {
    /// Sequences submitted (one per prompt).
    pub requests_received: u64,
    /// Sequences that ran to completion (`length` or `stop`).
    pub requests_finished: u64,
    /// Sequences whose client went away.
    pub requests_aborted: u64,
    /// Sequences running now.
    pub running: usize,
    /// Sequences waiting now (including preempted ones).
    pub waiting: usize,
    /// KV-cache usage in [0, 1] (cached blocks at refcount 0 count as free).
    pub kv_cache_usage: f64,
    /// Free blocks (including cached ones at refcount 0).
    pub free_blocks: usize,
    /// All blocks.
    pub total_blocks: usize,
    /// Blocks whose prefix hash is indexed.
    pub cached_blocks: usize,
    /// Tokens looked up in the prefix cache.
    pub prefix_cache_queries: u64,
    /// Tokens served from the prefix cache.
    pub prefix_cache_hits: u64,
    /// Preemptions so far.
    pub preemptions: u64,
    /// Prompt tokens of sequences that reached their first token.
    pub prompt_tokens: u64,
    /// Output tokens produced.
    pub generation_tokens: u64,
    /// Number of first tokens and their total time to first token (seconds, wall clock).
    pub ttft_count: u64,
    /// Sum of times to first token (seconds).
    pub ttft_sum_seconds: f64,
    /// Adapters with running requests, comma-separated.
    pub running_loras: String,
    /// Adapters with waiting requests, comma-separated.
    pub waiting_loras: String,
}

impl SimStats {
    fn from_snapshot(s: EngineSnapshot) -> Self {
        let c = &s.counters;
        Self {
            requests_received: c.received,
            requests_finished: c.finished[0] + c.finished[1],
            requests_aborted: c.finished[2],
            running: s.running,
            waiting: s.waiting,
            kv_cache_usage: s.kv_usage,
            free_blocks: s.free_blocks,
            total_blocks: s.total_blocks,
            cached_blocks: s.cached_blocks,
            prefix_cache_queries: c.prefix_queries,
            prefix_cache_hits: c.prefix_hits,
            preemptions: c.preemptions,
            prompt_tokens: c.prompt_tokens,
            generation_tokens: c.generation_tokens,
            ttft_count: s.ttft.count(),
            ttft_sum_seconds: s.ttft.sum(),
            running_loras: s.running_loras,
            waiting_loras: s.waiting_loras,
        }
    }
}

/// A running simulated server. Dropping it stops the server too (without waiting).
pub struct RunningSim {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    kv_events_address: Option<SocketAddr>,
    kv_replay_address: Option<SocketAddr>,
}

impl RunningSim {
    /// The bound KV-events PUB address, when events are on.
    pub fn kv_events_address(&self) -> Option<SocketAddr> {
        self.kv_events_address
    }

    /// The bound KV-events replay (ROUTER) address, when replay is on.
    pub fn kv_replay_address(&self) -> Option<SocketAddr> {
        self.kv_replay_address
    }

    /// The bound address (the real port when started on port 0).
    pub fn address(&self) -> SocketAddr {
        self.shared.address
    }

    /// `http://<address>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.address)
    }

    /// The server's config.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Replaces (`Some`) or removes (`None`) the fake metrics; effective at the next scrape.
    pub fn set_fake_metrics(&self, fake: Option<FakeMetrics>) {
        self.shared.set_fake_metrics(fake);
    }

    /// The fake metrics in force, if any.
    pub fn fake_metrics(&self) -> Option<FakeMetrics> {
        self.shared.fake_metrics()
    }

    /// The engine's real counters and gauges.
    pub fn stats(&self) -> SimStats {
        SimStats::from_snapshot(self.shared.engine().snapshot())
    }

    /// Checks the engine's KV invariants (allocated + free = total, and more).
    pub fn check_invariants(&self) -> Result<(), String> {
        self.shared.engine().check_invariants()
    }

    /// Stops accepting, drops open connections and in-flight requests, and waits for the
    /// server's tasks to end.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Binds `address` (port 0 picks a free port) and starts a server with `config`; it is
/// KV-event rank 0.
pub async fn start(config: SimConfig, address: SocketAddr) -> Result<RunningSim, SimError> {
    start_ranked(config, address, 0).await
}

/// [`start`] for server `rank` of a group: its KV-event ports are offset by `rank`, and its
/// batches carry `data_parallel_rank = rank`.
pub(crate) async fn start_ranked(
    config: SimConfig,
    address: SocketAddr,
    rank: usize,
) -> Result<RunningSim, SimError> {
    config.validate().map_err(SimError::Config)?;
    let bind_error = |source| SimError::Bind { address, source };
    let listener = TcpListener::bind(address).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    let (stop, stop_rx) = watch::channel(false);
    let kv = kv_events::start(&config.kv_events, address.ip(), rank, config.seed, &stop_rx).await?;
    let (sink, counters, mut tasks, kv_events_address, kv_replay_address) = match kv {
        Some(kv) => (
            Some(kv.sink),
            Some(kv.counters),
            kv.tasks,
            Some(kv.address),
            kv.replay_address,
        ),
        None => (None, None, Vec::new(), None, None),
    };
    let shared = Arc::new(Shared::new(config, local, counters));
    tasks.push(tokio::spawn(run_engine(
        Arc::clone(&shared),
        sink,
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(http::serve(
        listener,
        Arc::clone(&shared),
        stop_rx,
    )));
    tracing::debug!(address = %local, model = %shared.config.model, "sim: started");
    Ok(RunningSim {
        shared,
        stop,
        tasks,
        kv_events_address,
        kv_replay_address,
    })
}
