//! One model-server endpoint (ip:port) and the live metrics the scorers read.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::time::Clock;

/// Stable identity of one endpoint in the datastore; never reused while the process runs.
///
/// Plugins that keep per-endpoint state (the prefix index) key it by this id, so an
/// endpoint that leaves and comes back at the same address starts clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u64);

/// What discovery knows about an endpoint before it is added to the datastore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Where the gateway sends traffic: the pod IP and one target port.
    pub address: SocketAddr,
    /// Human-readable name: `namespace/pod` (with `-rank-N` for extra ports) or the address.
    pub name: String,
    /// Labels of the pod (or of the static entry); filters may read them.
    pub labels: BTreeMap<String, String>,
}

impl EndpointSpec {
    /// An endpoint named after its address, without labels (static discovery, tests).
    pub fn from_address(address: SocketAddr) -> Self {
        EndpointSpec {
            address,
            name: address.to_string(),
            labels: BTreeMap::new(),
        }
    }
}

/// The parts of an endpoint's identity that discovery may change in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointMeta {
    pub name: Arc<str>,
    pub labels: BTreeMap<String, String>,
}

/// The LoRA adapters a model server reports (vLLM `lora_requests_info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoraState {
    /// Adapters with running requests.
    pub active: Vec<String>,
    /// Adapters with waiting requests.
    pub waiting: Vec<String>,
    /// `max_lora`: how many adapters the server can hold at once; 0 when unknown.
    pub max_active: u32,
}

impl LoraState {
    pub fn is_active(&self, model: &str) -> bool {
        self.active.iter().any(|m| m == model)
    }

    pub fn is_waiting(&self, model: &str) -> bool {
        self.waiting.iter().any(|m| m == model)
    }
}

/// A load metric with its own freshness: its "updated at" stamp moves only when a scrape
/// yields a valid value for it, so a page that lacks it (or reports NaN, a negative or an
/// infinite value) lets it go stale instead of reading as a fresh zero.
///
/// LoRA sets and cache geometry have no stamp: they change rarely, no rule reads their
/// age, and they are kept as last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadSignal {
    /// The waiting queue ([`Endpoint::waiting_queue_size`]).
    Queue,
    /// Running requests ([`Endpoint::running_requests`]).
    Running,
    /// KV-cache usage ([`Endpoint::kv_cache_usage`]).
    KvUsage,
}

impl LoadSignal {
    /// Every signal, in stamp order.
    pub const ALL: [LoadSignal; 3] = [LoadSignal::Queue, LoadSignal::Running, LoadSignal::KvUsage];
}

/// A point-in-time copy of an endpoint's scraped metrics, as plugins and tests see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Requests waiting in the server's queue (`vllm:num_requests_waiting`).
    pub waiting_queue_size: u64,
    /// Requests the server is running (`vllm:num_requests_running`).
    pub running_requests: u64,
    /// Fraction of the KV cache in use, 0.0 to 1.0.
    pub kv_cache_usage: f64,
    /// LoRA adapters loaded or queued.
    pub lora: LoraState,
    /// KV-cache geometry (`vllm:cache_config_info`); `None` when never reported.
    pub cache: Option<CacheGeometry>,
    /// The newest of the signal stamps below ([`Endpoint::metrics_updated_at`]).
    pub updated_at: Option<std::time::Duration>,
    /// When a scrape last yielded a valid waiting queue; `None` when never.
    pub queue_updated_at: Option<std::time::Duration>,
    /// When a scrape last yielded a valid running count; `None` when never.
    pub running_updated_at: Option<std::time::Duration>,
    /// When a scrape last yielded a valid KV-cache usage; `None` when never.
    pub kv_updated_at: Option<std::time::Duration>,
}

/// Live per-endpoint metrics: plain atomics for the numbers the hot path reads, an
/// `ArcSwap` for the LoRA sets. Readers never block writers and take no lock.
#[derive(Debug, Default)]
struct LiveMetrics {
    waiting_queue_size: AtomicU64,
    running_requests: AtomicU64,
    /// `f64::to_bits` of the KV-cache usage fraction.
    kv_cache_usage_bits: AtomicU64,
    lora: ArcSwap<LoraState>,
    cache: ArcSwapOption<CacheGeometry>,
    /// Per [`LoadSignal`]: nanoseconds since the clock's epoch of the last valid value,
    /// plus one; 0 = never.
    updated_at_nanos: [AtomicU64; LoadSignal::ALL.len()],
}

/// One endpoint of the pool: identity, labels, live metrics and in-flight count.
#[derive(Debug)]
pub struct Endpoint {
    id: EndpointId,
    address: SocketAddr,
    /// `address` rendered once, since every pick writes it into a header.
    address_text: Arc<str>,
    /// Name and labels; swapped in place when discovery relabels the pod, so in-flight
    /// guards and metrics stay attached to the same endpoint.
    meta: ArcSwap<EndpointMeta>,
    metrics: LiveMetrics,
    in_flight: AtomicU32,
    in_flight_tokens: AtomicU64,
    /// The datastore's clock: stamps metrics and measures their age.
    clock: Arc<dyn Clock>,
}

impl Endpoint {
    pub(crate) fn new(id: EndpointId, spec: EndpointSpec, clock: Arc<dyn Clock>) -> Self {
        Endpoint {
            id,
            address_text: Arc::from(spec.address.to_string()),
            address: spec.address,
            meta: ArcSwap::from_pointee(EndpointMeta {
                name: Arc::from(spec.name),
                labels: spec.labels,
            }),
            metrics: LiveMetrics::default(),
            in_flight: AtomicU32::new(0),
            in_flight_tokens: AtomicU64::new(0),
            clock,
        }
    }

    pub fn id(&self) -> EndpointId {
        self.id
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `ip:port` (IPv6 in brackets), as written into `x-gateway-destination-endpoint`.
    pub fn address_text(&self) -> &str {
        &self.address_text
    }

    /// `namespace/pod` (or the address in standalone mode).
    pub fn name(&self) -> Arc<str> {
        Arc::clone(&self.meta.load().name)
    }

    pub fn meta(&self) -> arc_swap::Guard<Arc<EndpointMeta>> {
        self.meta.load()
    }

    /// True when the name and labels already equal the spec's.
    pub(crate) fn matches_spec(&self, spec: &EndpointSpec) -> bool {
        let meta = self.meta.load();
        *meta.name == *spec.name && meta.labels == spec.labels
    }

    pub(crate) fn set_meta(&self, spec: EndpointSpec) {
        self.meta.store(Arc::new(EndpointMeta {
            name: Arc::from(spec.name),
            labels: spec.labels,
        }));
    }

    /// Requests waiting in the model server's queue, as last scraped.
    pub fn waiting_queue_size(&self) -> u64 {
        self.metrics.waiting_queue_size.load(Ordering::Relaxed)
    }

    /// Requests the model server reports running, as last scraped.
    pub fn running_requests(&self) -> u64 {
        self.metrics.running_requests.load(Ordering::Relaxed)
    }

    /// KV-cache usage fraction (0.0 to 1.0), as last scraped.
    pub fn kv_cache_usage(&self) -> f64 {
        f64::from_bits(self.metrics.kv_cache_usage_bits.load(Ordering::Relaxed))
    }

    /// The LoRA adapter sets, as last scraped.
    pub fn lora(&self) -> arc_swap::Guard<Arc<LoraState>> {
        self.metrics.lora.load()
    }

    /// The KV-cache geometry the server reported, if any.
    pub fn cache_geometry(&self) -> Option<CacheGeometry> {
        self.metrics.cache.load().as_deref().copied()
    }

    /// Time since the datastore clock's epoch when a scrape last yielded a valid value of
    /// `signal`; `None` if it never did.
    pub fn signal_updated_at(&self, signal: LoadSignal) -> Option<std::time::Duration> {
        match self.metrics.updated_at_nanos[signal as usize].load(Ordering::Acquire) {
            0 => None,
            n => Some(std::time::Duration::from_nanos(n - 1)),
        }
    }

    /// How old the last valid value of `signal` is now; `None` if there never was one.
    pub fn signal_age(&self, signal: LoadSignal) -> Option<std::time::Duration> {
        self.signal_updated_at(signal)
            .map(|at| self.clock.now().saturating_sub(at))
    }

    /// The newest of the [`LoadSignal`] stamps: when a scrape last yielded any valid load
    /// value; `None` if none ever did. Rules that read one signal should use
    /// [`Endpoint::signal_updated_at`] instead.
    pub fn metrics_updated_at(&self) -> Option<std::time::Duration> {
        LoadSignal::ALL
            .into_iter()
            .filter_map(|s| self.signal_updated_at(s))
            .max()
    }

    /// How old the newest valid load value is now; `None` if there never was one.
    pub fn metrics_age(&self) -> Option<std::time::Duration> {
        self.metrics_updated_at()
            .map(|at| self.clock.now().saturating_sub(at))
    }

    /// Requests this EPP sent here that have not finished (pick to end of stream).
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Copies the current metrics (for logs, decision records and tests).
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            waiting_queue_size: self.waiting_queue_size(),
            running_requests: self.running_requests(),
            kv_cache_usage: self.kv_cache_usage(),
            lora: LoraState::clone(&self.lora()),
            cache: self.cache_geometry(),
            updated_at: self.metrics_updated_at(),
            queue_updated_at: self.signal_updated_at(LoadSignal::Queue),
            running_updated_at: self.signal_updated_at(LoadSignal::Running),
            kv_updated_at: self.signal_updated_at(LoadSignal::KvUsage),
        }
    }

    /// Stores freshly scraped metrics: each `Some` load value is stored and its signal
    /// stamped with the current time; a `None` one keeps its value and its age.
    pub fn store_metrics(&self, update: MetricsUpdate) {
        let m = &self.metrics;
        let now = u64::try_from(self.clock.now().as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        // The value is stored before the stamp (release), so a reader that sees the stamp
        // (acquire) sees the value too.
        let stamp = |signal: LoadSignal| {
            m.updated_at_nanos[signal as usize].store(now, Ordering::Release);
        };
        if let Some(v) = update.waiting_queue_size {
            m.waiting_queue_size.store(v, Ordering::Relaxed);
            stamp(LoadSignal::Queue);
        }
        if let Some(v) = update.running_requests {
            m.running_requests.store(v, Ordering::Relaxed);
            stamp(LoadSignal::Running);
        }
        if let Some(v) = update.kv_cache_usage {
            m.kv_cache_usage_bits.store(v.to_bits(), Ordering::Relaxed);
            stamp(LoadSignal::KvUsage);
        }
        // The adapter sets and cache geometry rarely change; replacing them only on change
        // saves an allocation per scrape.
        if let Some(lora) = update.lora.filter(|l| **m.lora.load() != *l) {
            m.lora.store(Arc::new(lora));
        }
        if let Some(cache) = update
            .cache
            .filter(|c| m.cache.load().as_deref() != Some(c))
        {
            m.cache.store(Some(Arc::new(cache)));
        }
    }

    /// Counts one request sent here; the returned guard uncounts it when dropped.
    pub fn start_request(self: &Arc<Self>) -> InFlightGuard {
        self.start_request_with_tokens(0)
    }

    /// Like [`Endpoint::start_request`], also counting the request's (estimated) prompt
    /// tokens in [`Endpoint::in_flight_tokens`] until the guard drops.
    pub fn start_request_with_tokens(self: &Arc<Self>, tokens: u64) -> InFlightGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.in_flight_tokens.fetch_add(tokens, Ordering::Relaxed);
        InFlightGuard {
            endpoint: Arc::clone(self),
            tokens,
        }
    }

    /// Prompt tokens of the requests this EPP has in flight here (estimated when routed
    /// without token ids).
    pub fn in_flight_tokens(&self) -> u64 {
        self.in_flight_tokens.load(Ordering::Relaxed)
    }
}

/// A partial metrics update: `None` fields keep their previous value and, for the load
/// signals, their age (a scrape that lacks a metric must neither zero it nor refresh it).
/// The load values must be valid (finite, not negative): extraction turns anything else
/// into `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsUpdate {
    pub waiting_queue_size: Option<u64>,
    pub running_requests: Option<u64>,
    pub kv_cache_usage: Option<f64>,
    pub lora: Option<LoraState>,
    pub cache: Option<CacheGeometry>,
}

/// How the server's KV cache is laid out (vLLM `block_size` and `num_gpu_blocks`, SGLang
/// `page_size` and `num_pages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheGeometry {
    /// Tokens per block; 0 when unknown.
    pub block_size: u32,
    /// Blocks in the cache; 0 when unknown.
    pub num_blocks: u64,
}

/// Holds one in-flight slot on an endpoint from the pick until the stream ends.
#[derive(Debug)]
pub struct InFlightGuard {
    endpoint: Arc<Endpoint>,
    tokens: u64,
}

impl InFlightGuard {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.endpoint
            .in_flight_tokens
            .fetch_sub(self.tokens, Ordering::Relaxed);
    }
}
