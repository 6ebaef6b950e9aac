//! Scraping: one task per endpoint reads its `/metrics` page on a jittered tick, each
//! with its own timeout and size limit, and stores what it finds on the endpoint. A slow,
//! hung or broken endpoint delays only its own task. A page that parses but gives no
//! valid load values refreshes nothing, so that endpoint's load goes stale (`usability`).

mod usability;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::extract::{CompiledMapping, Extracted};
use crate::presets::MetricField;
use epp_core::datastore::{Datastore, Endpoint, EndpointId};

pub use usability::{Unusable, UnusableReason, judge};

/// How endpoints are scraped (the `--model-server-metrics-*` and refresh flags).
#[derive(Debug, Clone)]
pub struct ScrapeSettings {
    /// Time between two scrapes of one endpoint (`--refresh-metrics-interval`, 50ms).
    pub interval: Duration,
    /// Longest a scrape may take before it counts as failed.
    pub timeout: Duration,
    /// Largest page read; a longer page is a failed scrape.
    pub max_bytes: usize,
    /// `http` or `https`.
    pub https: bool,
    /// Accept any certificate over https (`--model-server-metrics-https-insecure-skip-verify`).
    pub insecure_skip_verify: bool,
    /// Path of the page (`--model-server-metrics-path`).
    pub path: String,
    /// Port to scrape; `None` means the endpoint's own port.
    pub port: Option<u16>,
    /// What to read from the page.
    pub mapping: Arc<CompiledMapping>,
    /// Where scrape durations go (`inference_extension_model_server_scrape_duration_seconds`)
    /// and unusable pages are counted (`inference_extension_model_server_unusable_metrics_total`).
    pub metrics: Option<Arc<epp_core::telemetry::metrics::EppMetrics>>,
}

/// Why one scrape failed (bounded: usable as a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScrapeFailure {
    /// Could not connect or the connection broke.
    Transport,
    /// No complete answer within the timeout.
    Timeout,
    /// The server answered with a status other than 200.
    Status,
    /// The page is larger than the limit.
    TooLarge,
    /// The page is not a readable Prometheus text page.
    Parse,
}

impl ScrapeFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            ScrapeFailure::Transport => "transport",
            ScrapeFailure::Timeout => "timeout",
            ScrapeFailure::Status => "status",
            ScrapeFailure::TooLarge => "too_large",
            ScrapeFailure::Parse => "parse",
        }
    }

    pub const ALL: [ScrapeFailure; 5] = [
        ScrapeFailure::Transport,
        ScrapeFailure::Timeout,
        ScrapeFailure::Status,
        ScrapeFailure::TooLarge,
        ScrapeFailure::Parse,
    ];
}

/// Counters of one endpoint's scrapes, read by telemetry.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    pub scrapes: AtomicU64,
    failures: [AtomicU64; 5],
    /// Duration of the last scrape, in microseconds.
    pub last_duration_micros: AtomicU64,
}

impl ScrapeStats {
    pub fn failures(&self, kind: ScrapeFailure) -> u64 {
        self.failures[kind as usize].load(Ordering::Relaxed)
    }

    fn record(&self, took: Duration, failure: Option<ScrapeFailure>) {
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.last_duration_micros.store(micros, Ordering::Relaxed);
        if let Some(kind) = failure {
            self.failures[kind as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A failed scrape, with details for the log.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {detail}")]
struct ScrapeError {
    kind: ScrapeFailure,
    detail: String,
}

impl ScrapeError {
    fn new(kind: ScrapeFailure, detail: impl Into<String>) -> Self {
        ScrapeError {
            kind,
            detail: detail.into(),
        }
    }
}

/// Scrape counters of every endpoint being scraped.
pub type ScrapeStatsMap = Arc<parking_lot::RwLock<HashMap<EndpointId, Arc<ScrapeStats>>>>;

/// Follows the datastore and keeps one scrape task per endpoint.
pub struct Scraper {
    settings: Arc<ScrapeSettings>,
    client: reqwest::Client,
    stats: ScrapeStatsMap,
}

impl Scraper {
    pub fn new(settings: ScrapeSettings) -> Result<Scraper, reqwest::Error> {
        epp_net::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(settings.insecure_skip_verify)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()?;
        if let Some(metrics) = &settings.metrics {
            // Every reason is exported from the start, at 0, so rates and alerts work.
            metrics.declare_unusable_reasons(&UnusableReason::ALL.map(UnusableReason::as_str));
        }
        Ok(Scraper {
            settings: Arc::new(settings),
            client,
            stats: Arc::default(),
        })
    }

    /// Scrape counters per endpoint (for telemetry).
    pub fn stats(&self) -> ScrapeStatsMap {
        Arc::clone(&self.stats)
    }

    /// Runs until the task is dropped: starts and stops scrape tasks as endpoints come and go.
    pub async fn run(self, datastore: Arc<Datastore>) {
        let mut changes = datastore.subscribe();
        let mut tasks: HashMap<EndpointId, JoinHandle<()>> = HashMap::new();
        loop {
            self.reconcile(&datastore, &mut tasks);
            if changes.changed().await.is_err() {
                break;
            }
        }
        for task in tasks.into_values() {
            task.abort();
        }
    }

    fn reconcile(&self, datastore: &Datastore, tasks: &mut HashMap<EndpointId, JoinHandle<()>>) {
        let snapshot = datastore.snapshot();
        let current: HashMap<EndpointId, &Arc<Endpoint>> =
            snapshot.endpoints().iter().map(|e| (e.id(), e)).collect();
        tasks.retain(|id, task| {
            let keep = current.contains_key(id);
            if !keep {
                task.abort();
                self.stats.write().remove(id);
            }
            keep
        });
        for (id, endpoint) in current {
            if tasks.contains_key(&id) {
                continue;
            }
            let url = match self.url(endpoint) {
                Ok(url) => url,
                Err(e) => {
                    tracing::error!(endpoint = endpoint.address_text(), path = %self.settings.path, error = %e, "cannot build the metrics URL; not scraping");
                    continue;
                }
            };
            let stats = Arc::new(ScrapeStats::default());
            self.stats.write().insert(id, Arc::clone(&stats));
            let task = EndpointScrape {
                url,
                endpoint: Arc::clone(endpoint),
                settings: Arc::clone(&self.settings),
                client: self.client.clone(),
                stats,
            };
            tasks.insert(id, tokio::spawn(task.run()));
        }
    }

    /// The endpoint's metrics URL, parsed once (parsing it per request showed in profiles).
    fn url(&self, endpoint: &Endpoint) -> Result<reqwest::Url, String> {
        let settings = &self.settings;
        let scheme = if settings.https { "https" } else { "http" };
        let mut address = endpoint.address();
        if let Some(port) = settings.port {
            address.set_port(port);
        }
        reqwest::Url::parse(&format!("{scheme}://{address}{}", settings.path))
            .map_err(|e| e.to_string())
    }
}

/// One endpoint's scrape loop.
struct EndpointScrape {
    url: reqwest::Url,
    endpoint: Arc<Endpoint>,
    settings: Arc<ScrapeSettings>,
    client: reqwest::Client,
    stats: Arc<ScrapeStats>,
}

impl EndpointScrape {
    async fn run(self) {
        // Spread the first scrape over one interval so a thousand endpoints do not tick
        // in lockstep.
        let jitter = rand::rng()
            .random_range(Duration::ZERO..self.settings.interval.max(Duration::from_millis(1)));
        tokio::time::sleep(jitter).await;
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut page = Vec::new();
        let mut log = LogState::default();
        let mut usability = usability::UsabilityLog::default();
        loop {
            ticker.tick().await;
            let started = Instant::now();
            let result = self.scrape(&mut page).await;
            let took = started.elapsed();
            self.stats
                .record(took, result.as_ref().err().map(|e| e.kind));
            if let Some(metrics) = &self.settings.metrics {
                metrics.scrape_duration(took.as_secs_f64());
            }
            log.report(&self.endpoint, &result);
            if let Ok(extracted) = result {
                let judged = judge(&extracted, self.settings.mapping.configured());
                if let (Some(unusable), Some(metrics)) = (judged, &self.settings.metrics) {
                    metrics.unusable_metrics(unusable.reason.as_str());
                }
                usability.report(self.endpoint.address_text(), judged);
                // Only valid values are stored and refreshed; the rest go stale.
                self.endpoint.store_metrics(extracted.update);
            }
        }
    }

    async fn scrape(&self, page: &mut Vec<u8>) -> Result<Extracted, ScrapeError> {
        let fetch = self.fetch(page);
        match tokio::time::timeout(self.settings.timeout, fetch).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ScrapeError::new(
                    ScrapeFailure::Timeout,
                    format!("no answer within {:?}", self.settings.timeout),
                ));
            }
        }
        self.settings
            .mapping
            .extract(page)
            .map_err(|e| ScrapeError::new(ScrapeFailure::Parse, e.to_string()))
    }

    /// Reads the page into `page`, refusing more than the limit without reading it all.
    async fn fetch(&self, page: &mut Vec<u8>) -> Result<(), ScrapeError> {
        page.clear();
        let transport =
            |e: reqwest::Error| ScrapeError::new(ScrapeFailure::Transport, e.to_string());
        let mut response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(transport)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(ScrapeError::new(
                ScrapeFailure::Status,
                format!("HTTP {}", response.status()),
            ));
        }
        let limit = self.settings.max_bytes;
        let too_large = || {
            ScrapeError::new(
                ScrapeFailure::TooLarge,
                format!("page larger than {limit} bytes"),
            )
        };
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(too_large());
        }
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if page.len() + chunk.len() > limit {
                return Err(too_large());
            }
            page.extend_from_slice(&chunk);
        }
        Ok(())
    }
}

/// Fields whose absence leaves the load signals usable (logged here, once).
const OPTIONAL_FIELDS: [MetricField; 4] = [
    MetricField::Lora,
    MetricField::CacheInfo,
    MetricField::CacheBlockSize,
    MetricField::CacheNumBlocks,
];

/// Logs state changes (failing, recovered, optional metrics missing) once, not every
/// 50 ms. Unusable load metrics are logged by `usability`.
#[derive(Debug, Default)]
struct LogState {
    failing: Option<ScrapeFailure>,
    reported_missing: bool,
    reported_fallback: bool,
}

impl LogState {
    fn report(&mut self, endpoint: &Endpoint, result: &Result<Extracted, ScrapeError>) {
        match result {
            Err(error) => {
                if self.failing != Some(error.kind) {
                    tracing::warn!(endpoint = endpoint.address_text(), reason = error.kind.as_str(), error = %error.detail, "metrics scrape failing");
                }
                self.failing = Some(error.kind);
            }
            Ok(extracted) => {
                if self.failing.take().is_some() {
                    tracing::info!(
                        endpoint = endpoint.address_text(),
                        "metrics scrape recovered"
                    );
                }
                let optional = extracted
                    .missing
                    .intersection(OPTIONAL_FIELDS.into_iter().collect());
                if !optional.is_empty() && !self.reported_missing {
                    self.reported_missing = true;
                    tracing::warn!(endpoint = endpoint.address_text(), missing = ?optional, "configured metrics not found on the page");
                }
                if let Some(name) = extracted
                    .used_kv_fallback
                    .filter(|_| !self.reported_fallback)
                {
                    self.reported_fallback = true;
                    tracing::info!(
                        endpoint = endpoint.address_text(),
                        metric = name,
                        "KV-cache metric read under its other vLLM name"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;
