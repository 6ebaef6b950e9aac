//! Building and running the EPP from parsed flags: discovery, scheduler, ext_proc and
//! health servers, and a graceful drain on shutdown.

mod precise;
mod request_log;
mod sources;
mod tracing_setup;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::{BodyModeFallback, Listener, MetricsScheme, Options, ResponseBodyOverride};
use epp_core::config::{ConfigError, DEFAULT_CONFIG, EndpointPickerConfig};
use epp_core::datastore::{Datastore, DatastoreError};
use epp_core::director::records::DecisionRecorder;
use epp_core::director::{Director, DirectorSettings};
use epp_core::telemetry::metrics::{EppMetrics, MetricsLimits};
use epp_datalayer::extract::CompiledMapping;
use epp_datalayer::pool_gauges::{self, PoolGaugesCell};
use epp_datalayer::scraper::{ScrapeSettings, ScrapeStatsMap, Scraper};
use epp_discovery::watched_file::FileError;
use epp_extproc::{BodyMode, BufferBudget, ExtProcService, RequestLog, StreamSettings};
use epp_net::health::{HealthState, ext_proc_health_server, health_server};
use epp_net::listener::Acceptor;
use epp_proxy::{Proxy, ProxyCollector, ProxySettings, ProxyStats};
use epp_sim::{RunningSim, SimError};

use crate::metrics::{self, MetricSources, MetricsAuth, SourcesCollector};
use epp_net::tls::{ServingTls, TlsError, TlsSettings, tls_incoming};

/// How long in-flight streams may take to finish after SIGTERM (the upstream chart
/// gives the pod 130 s).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long queued trace spans may take to reach the collector on shutdown.
const TRACE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the EPP could not start. Each variant's message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error("--endpoints: {0}")]
    Endpoints(#[from] DatastoreError),
    #[error("cannot listen on {address} (--{flag}): {source}")]
    Bind {
        flag: &'static str,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot reach the Kubernetes API: {0}; set --kubeconfig (or KUBECONFIG), run in a \
         cluster, or run standalone with --endpoints, --endpoints-file or --simulate-endpoints"
    )]
    Kubernetes(kube::Error),
    #[error(
        "no endpoint source: set --endpoints, --endpoints-file, --simulate-endpoints or --pool-name"
    )]
    NoEndpointSource,
    #[error("cannot open --decision-records-file {path}: {source}")]
    DecisionRecords {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open --request-log-file {path}: {source}")]
    RequestLog {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--simulate-endpoints: {0}")]
    Simulator(#[from] SimError),
    #[error("cannot build the metrics scraper's HTTP client: {0}")]
    Scraper(reqwest::Error),
    #[error("precise-prefix-cache-scorer tokenizer: {0}")]
    Tokenizer(#[from] epp_tokenize::BuildError),
    #[error("cannot build the tokenizer's HTTP client: {0}")]
    TokenizerClient(reqwest::Error),
    #[error("--tracing: {0}")]
    Tracing(#[from] epp_trace::StartError),
}

/// Loads the config named by the flags, or the embedded default when none is given
/// (v1.0.1 exits instead; later versions load a default too).
pub fn load_config(options: &Options) -> Result<EndpointPickerConfig, ConfigError> {
    match (&options.config_file, &options.config_text) {
        (Some(path), _) => EndpointPickerConfig::from_file(path),
        (None, Some(text)) => EndpointPickerConfig::from_text(text),
        (None, None) => EndpointPickerConfig::from_text(DEFAULT_CONFIG),
    }
}

/// A running EPP: its bound addresses, its datastore, and a handle to stop it.
pub struct RunningEpp {
    pub ext_proc_address: SocketAddr,
    pub health_address: SocketAddr,
    /// Where Prometheus scrapes `/metrics`.
    pub metrics_address: SocketAddr,
    /// Router mode's listener (`--proxy-port`); `None` when off.
    pub proxy_address: Option<SocketAddr>,
    /// Router mode's counters; `None` when off.
    pub proxy_stats: Option<Arc<ProxyStats>>,
    /// The EPP's own metrics (what `/metrics` serves).
    pub metrics: Arc<EppMetrics>,
    pub datastore: Arc<Datastore>,
    pub health: HealthState,
    /// The latest pool gauges (average KV usage and queue, ready endpoints).
    pub pool_gauges: Arc<PoolGaugesCell>,
    /// Scrape counters per endpoint.
    pub scrape_stats: ScrapeStatsMap,
    /// The in-process model servers of `--simulate-endpoints`.
    pub simulated: Vec<RunningSim>,
    elector: AbortOnDrop<()>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<AbortOnDrop<()>>,
    ext_proc: AbortOnDrop<Result<(), tonic::transport::Error>>,
    health_server: AbortOnDrop<Result<(), tonic::transport::Error>>,
    proxy: AbortOnDrop<()>,
    /// KV-event intakes of the precise prefix scorers (stopped when dropped).
    _precise: precise::PrecisePrefix,
    /// The trace exporter, with `--tracing`; flushed on shutdown.
    tracing: Option<epp_trace::Tracing>,
}

impl RunningEpp {
    /// The indexes of the configured precise prefix scorers (for tests and tools).
    pub fn precise_indexes(&self) -> Vec<Arc<epp_core::prefix::PreciseIndex>> {
        self._precise.indexes.clone()
    }

    /// The trace exporter's counters, with `--tracing`.
    pub fn trace_counts(&self) -> Option<Arc<epp_trace::SpanCounts>> {
        self.tracing.as_ref().map(epp_trace::Tracing::counts)
    }

    /// Exports the trace spans queued so far (with `--tracing`); `false` if that took
    /// longer than `limit`.
    pub async fn flush_traces(&self, limit: Duration) -> bool {
        match &self.tracing {
            Some(tracing) => tracing.flush(limit).await,
            None => true,
        }
    }

    /// Stops reporting ready, lets open streams finish (up to `drain`), and stops.
    /// Dropping a `RunningEpp` instead stops everything at once.
    pub async fn shutdown(mut self, drain: Duration) {
        self.health.set_draining();
        self.health.shutdown();
        let _ = self.shutdown.send(true);
        // Let the elector release the lease so a follower takes over without waiting.
        self.elector.finish(Duration::from_secs(3)).await;
        self.tasks.clear();
        let (ext_proc, proxy) = tokio::join!(self.ext_proc.finish(drain), self.proxy.finish(drain));
        if !ext_proc {
            tracing::warn!(timeout = ?drain, "ext_proc streams did not finish in time");
        }
        if !proxy {
            tracing::warn!(timeout = ?drain, "router-mode requests did not finish in time");
        }
        self.health_server.finish(Duration::from_secs(1)).await;
        // After the drain, so the spans of the last streams go out too.
        if let Some(tracing) = self.tracing.take() {
            tracing.shutdown(TRACE_FLUSH_TIMEOUT).await;
        }
        for sim in std::mem::take(&mut self.simulated) {
            sim.shutdown().await;
        }
    }
}

/// A task that is aborted when its handle is dropped, so an EPP dropped without
/// `shutdown` (tests, embedders) leaves nothing running.
struct AbortOnDrop<T>(Option<JoinHandle<T>>);

impl<T> AbortOnDrop<T> {
    fn new(task: JoinHandle<T>) -> Self {
        AbortOnDrop(Some(task))
    }

    fn none() -> Self {
        AbortOnDrop(None)
    }

    /// Waits up to `limit` for the task to end on its own; returns whether it did.
    async fn finish(&mut self, limit: Duration) -> bool {
        match self.0.as_mut() {
            Some(task) => tokio::time::timeout(limit, task).await.is_ok(),
            None => true,
        }
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Binds the ports and starts serving. Everything that can be validated has been.
pub async fn start(
    options: &Options,
    config: EndpointPickerConfig,
) -> Result<RunningEpp, StartError> {
    let (datastore, health) = datastore_and_health(options, &config);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let metrics = own_metrics();
    let sources = sources::start(options, &datastore, &health, &shutdown_rx).await?;
    let mut tasks = sources.tasks;
    let scraping = start_scraping(options, &datastore, &metrics, &mut tasks)?;
    let director = Arc::new(director(options, &config, &datastore, &metrics)?);
    let precise = precise::start(&config, &datastore, &metrics)?;
    let mut stream_settings = stream_settings(
        options,
        &metrics,
        request_log::request_log(options, &config)?,
    );
    stream_settings.tokens = precise.tokens.clone();
    let tracing = tracing_setup::start(options, &metrics)?;
    stream_settings.tracer = tracing.as_ref().map(epp_trace::Tracing::tracer);
    let proxy = serve_proxy(options, &director, &stream_settings, &metrics, &shutdown_rx).await?;
    let metrics_server = serve_metrics(
        options,
        &metrics,
        MetricSources {
            datastore: Arc::clone(&datastore),
            pool_gauges: Arc::clone(&scraping.pool_gauges),
            scrape_stats: Some(scraping.stats.clone()),
            prefix_indexes: config.prefix_indexes(),
            precise_indexes: config
                .kv_event_subscriptions()
                .into_iter()
                .map(|s| s.index)
                .collect(),
        },
        sources.kube_client,
        &shutdown_rx,
        &mut tasks,
    )
    .await?;
    let (ext_proc_address, ext_proc) = serve_ext_proc(
        options,
        director,
        stream_settings,
        &health,
        &shutdown_rx,
        &mut tasks,
    )
    .await?;
    let (health_address, health_server) = serve_health(options, &health, shutdown_rx).await?;
    tracing::info!(
        %ext_proc_address,
        %health_address,
        metrics_address = %metrics_server.address,
        proxy_address = proxy.address.map(|a| a.to_string()),
        metrics_auth = metrics_server.auth,
        tls = options.secure_serving,
        endpoints = datastore.snapshot().len(),
        "EPP serving"
    );
    Ok(RunningEpp {
        ext_proc_address,
        health_address,
        metrics_address: metrics_server.address,
        proxy_address: proxy.address,
        proxy_stats: proxy.stats,
        metrics,
        datastore,
        health,
        pool_gauges: scraping.pool_gauges,
        scrape_stats: scraping.stats,
        simulated: sources.simulated,
        elector: sources
            .elector
            .map_or_else(AbortOnDrop::none, AbortOnDrop::new),
        shutdown,
        tasks: tasks.into_iter().map(AbortOnDrop::new).collect(),
        ext_proc: AbortOnDrop::new(ext_proc),
        health_server: AbortOnDrop::new(health_server),
        proxy: proxy.task.map_or_else(AbortOnDrop::none, AbortOnDrop::new),
        _precise: precise,
        tracing,
    })
}

/// The datastore, observed by the config's plugins, and the health state that follows its
/// sync (and leadership, with leader election).
fn datastore_and_health(
    options: &Options,
    config: &EndpointPickerConfig,
) -> (Arc<Datastore>, HealthState) {
    let datastore = Arc::new(Datastore::new(options.max_endpoints));
    for observer in config.endpoint_observers() {
        datastore.add_observer(observer);
    }
    let health = HealthState::new(
        options.ha_enable_leader_election,
        datastore.subscribe_synced(),
    );
    health.set_leader(!options.ha_enable_leader_election);
    (datastore, health)
}

/// The EPP's own metrics, with the build info set.
fn own_metrics() -> Arc<EppMetrics> {
    let metrics = EppMetrics::new(MetricsLimits::default());
    metrics.set_build_info(
        option_env!("EPP_COMMIT").unwrap_or("unknown"),
        env!("CARGO_PKG_VERSION"),
    );
    metrics
}

/// What the scraping step started: per-endpoint scrape counters and the pool gauges.
struct Scraping {
    stats: ScrapeStatsMap,
    pool_gauges: Arc<PoolGaugesCell>,
}

/// Starts scraping the model servers into the datastore and refreshing the pool gauges.
fn start_scraping(
    options: &Options,
    datastore: &Arc<Datastore>,
    metrics: &Arc<EppMetrics>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Scraping, StartError> {
    let scraper = Scraper::new(scrape_settings(options, metrics)).map_err(StartError::Scraper)?;
    let stats = scraper.stats();
    tasks.push(tokio::spawn(scraper.run(Arc::clone(datastore))));
    let pool_gauges = Arc::new(PoolGaugesCell::default());
    tasks.push(tokio::spawn(pool_gauges::run(
        Arc::clone(datastore),
        Arc::clone(&pool_gauges),
        options.refresh_prometheus_metrics_interval,
        options.metrics_staleness_threshold,
    )));
    Ok(Scraping { stats, pool_gauges })
}

/// The director: the config's scheduler, the saturation thresholds (config file over
/// environment), metrics and decision records.
fn director(
    options: &Options,
    config: &EndpointPickerConfig,
    datastore: &Arc<Datastore>,
    metrics: &Arc<EppMetrics>,
) -> Result<Director, StartError> {
    let director = Director::new(
        Arc::clone(datastore),
        Arc::clone(&config.scheduler),
        DirectorSettings {
            saturation: config.saturation.apply(options.saturation),
            metrics_staleness: options.metrics_staleness_threshold,
        },
    )
    .with_metrics(Arc::clone(metrics));
    Ok(match decision_recorder(options)? {
        Some(recorder) => director.with_records(recorder),
        None => director,
    })
}

/// Where `/metrics` is served, and how.
struct MetricsServer {
    address: SocketAddr,
    /// Whether scrapes need a token the API server accepts.
    auth: bool,
}

/// Registers the scrape-time `sources` and serves `/metrics` on `--metrics-port` (the
/// server's task joins `tasks`).
async fn serve_metrics(
    options: &Options,
    metrics: &Arc<EppMetrics>,
    sources: MetricSources,
    kube_client: Option<kube::Client>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<MetricsServer, StartError> {
    SourcesCollector::register(metrics, sources);
    let listener = bind(
        "metrics-port",
        options.bind_address_of(Listener::Metrics),
        options.metrics_port,
    )
    .await?;
    let address = local_address(&listener, "metrics-port")?;
    // As v1.0.1 in a cluster: /metrics needs a token allowed to read it. Standalone
    // modes have no API server to ask.
    let auth = kube_client
        .filter(|_| options.metrics_endpoint_auth)
        .map(|client| Arc::new(MetricsAuth::new(client)));
    let server = MetricsServer {
        address,
        auth: auth.is_some(),
    };
    tasks.push(tokio::spawn(metrics::serve(
        listener,
        Arc::clone(metrics),
        auth,
        wait_for(shutdown.clone()),
    )));
    Ok(server)
}

/// The task of a gRPC server.
type GrpcServer = JoinHandle<Result<(), tonic::transport::Error>>;

/// Serves ext_proc (and gRPC health with `--health-checking`) on `--grpc-port`, over TLS
/// with `--secure-serving` (its certificate reloader joins `tasks`).
async fn serve_ext_proc(
    options: &Options,
    director: Arc<Director>,
    settings: StreamSettings,
    health: &HealthState,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<(SocketAddr, GrpcServer), StartError> {
    let service = ExtProcService::new(director, settings).into_server();
    let listener = bind(
        "grpc-port",
        options.bind_address_of(Listener::Grpc),
        options.grpc_port,
    )
    .await?;
    let address = local_address(&listener, "grpc-port")?;
    let mut router = ext_proc_server_builder().add_service(service);
    if options.health_checking {
        router = router.add_service(ext_proc_health_server(health.clone()));
    }
    let stop = wait_for(shutdown.clone());
    let server = if options.secure_serving {
        let tls = ServingTls::load(&TlsSettings {
            cert_dir: options.cert_path.clone(),
            ..TlsSettings::default()
        })?;
        tasks.extend(tls.spawn_reloader());
        let incoming = tls_incoming(listener, tls.acceptor());
        tokio::spawn(router.serve_with_incoming_shutdown(incoming, stop))
    } else {
        // `Server::tcp_nodelay` applies only to listeners tonic binds itself; the acceptor
        // sets it, or Nagle's algorithm holds small replies for the peer's delayed ACK
        // (~40 ms). It also backs off when descriptors run out instead of spinning.
        let incoming = Acceptor::new(listener, "grpc-port").into_stream();
        tokio::spawn(router.serve_with_incoming_shutdown(incoming, stop))
    };
    Ok((address, server))
}

/// Router mode as started: its address, counters and task (all `None` when off).
struct RouterMode {
    address: Option<SocketAddr>,
    stats: Option<Arc<ProxyStats>>,
    task: Option<JoinHandle<()>>,
}

/// Serves the OpenAI API on `--proxy-port` (when set) with the ext_proc director, limits,
/// budget and request log; its counters join `/metrics`.
async fn serve_proxy(
    options: &Options,
    director: &Arc<Director>,
    stream_settings: &StreamSettings,
    metrics: &Arc<EppMetrics>,
    shutdown: &watch::Receiver<bool>,
) -> Result<RouterMode, StartError> {
    if options.proxy_port == 0 {
        return Ok(RouterMode {
            address: None,
            stats: None,
            task: None,
        });
    }
    let listener = bind(
        "proxy-port",
        options.bind_address_of(Listener::Proxy),
        options.proxy_port,
    )
    .await?;
    let address = local_address(&listener, "proxy-port")?;
    let mut settings = ProxySettings::new(Arc::new(stream_settings.clone()));
    settings.connect_timeout = options.proxy_connect_timeout;
    let picker: Arc<dyn epp_extproc::EndpointPicker> = Arc::clone(director) as _;
    let proxy = Proxy::new(picker, settings);
    let stats = proxy.stats();
    metrics.register_collector(Arc::new(ProxyCollector(Arc::clone(&stats))));
    let task = tokio::spawn(proxy.serve(listener, wait_for(shutdown.clone())));
    Ok(RouterMode {
        address: Some(address),
        stats: Some(stats),
        task: Some(task),
    })
}

/// Serves gRPC health on `--grpc-health-port`.
async fn serve_health(
    options: &Options,
    health: &HealthState,
    shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, GrpcServer), StartError> {
    let listener = bind(
        "grpc-health-port",
        options.bind_address_of(Listener::GrpcHealth),
        options.grpc_health_port,
    )
    .await?;
    let address = local_address(&listener, "grpc-health-port")?;
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_server(health.clone()))
            .serve_with_incoming_shutdown(
                Acceptor::new(listener, "grpc-health-port").into_stream(),
                wait_for(shutdown),
            ),
    );
    Ok((address, server))
}

/// HTTP/2 settings for the gateway connection: no Nagle delay, large flow-control
/// windows so a 220 KB prompt does not wait on window updates, and no practical
/// stream limit (each in-flight request holds one stream for its whole response).
fn ext_proc_server_builder() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(64 << 20))
        .max_concurrent_streams(Some(1_000_000))
}

/// `--decision-records` (to the log) and `--decision-records-file` (JSON lines).
fn decision_recorder(options: &Options) -> Result<Option<DecisionRecorder>, StartError> {
    match &options.decision_records_file {
        Some(path) => DecisionRecorder::to_file(path, options.decision_records)
            .map(Some)
            .map_err(|source| StartError::DecisionRecords {
                path: path.display().to_string(),
                source,
            }),
        None if options.decision_records => Ok(Some(DecisionRecorder::to_log())),
        None => Ok(None),
    }
}

fn scrape_settings(options: &Options, metrics: &Arc<EppMetrics>) -> ScrapeSettings {
    ScrapeSettings {
        interval: options.refresh_metrics_interval,
        timeout: options.model_server_metrics_timeout,
        max_bytes: options.model_server_metrics_max_bytes,
        https: options.model_server_metrics_scheme == MetricsScheme::Https,
        insecure_skip_verify: options.model_server_metrics_https_insecure_skip_verify,
        path: options.model_server_metrics_path.clone(),
        port: (options.model_server_metrics_port != 0).then_some(options.model_server_metrics_port),
        mapping: Arc::new(CompiledMapping::new(options.metric_mapping.clone())),
        metrics: Some(Arc::clone(metrics)),
    }
}

/// The ext_proc streams' limits, metrics and request log.
fn stream_settings(
    options: &Options,
    metrics: &Arc<EppMetrics>,
    request_log: Option<Arc<RequestLog>>,
) -> StreamSettings {
    StreamSettings {
        max_request_body_bytes: usize::try_from(options.max_request_body_bytes)
            .unwrap_or(usize::MAX),
        fallback_body_mode: match options.body_mode_fallback {
            BodyModeFallback::FullDuplexStreamed => BodyMode::FullDuplexStreamed,
            BodyModeFallback::Buffered => BodyMode::Buffered,
        },
        log_bodies: options.log.verbosity >= epp_core::telemetry::logging::DEBUG,
        metrics: Arc::clone(metrics),
        buffer_budget: BufferBudget::new(
            usize::try_from(options.max_buffered_request_bytes).unwrap_or(usize::MAX),
            Arc::clone(metrics),
        ),
        request_log,
        tokens: None,
        response_body_override: match options.response_body_override {
            ResponseBodyOverride::Streamed => epp_extproc::ResponseBodyOverride::Streamed,
            ResponseBodyOverride::None => epp_extproc::ResponseBodyOverride::None,
            ResponseBodyOverride::Off => epp_extproc::ResponseBodyOverride::Off,
        },
        tracer: None,
    }
}

async fn bind(flag: &'static str, ip: IpAddr, port: u16) -> Result<TcpListener, StartError> {
    let address = SocketAddr::new(ip, port);
    TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind {
            flag,
            address,
            source,
        })
}

fn local_address(listener: &TcpListener, flag: &'static str) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Bind {
        flag,
        address: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
