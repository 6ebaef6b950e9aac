//! Command-line flags and environment settings of the EPP, parsed with Go `flag` semantics.

mod env;
mod error;
mod flags;
mod inert;
mod log_options;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use epp_flags::goflag;

use crate::cli::flags::FLAGS;
use epp_datalayer::metric_spec::MetricSpec;
use epp_datalayer::presets::{Engine, MetricMapping};
use epp_discovery::kube::leader::LeaseTimings;
use epp_flags::goflag::{parse_bool, spelled_enum};
use epp_flags::{ParseError, Parsed};
use epp_sim::{SimArgs, SimConfig};

pub use crate::cli::env::{Env, ProcessEnv, SaturationThresholds};
pub use crate::cli::error::CliError;
pub use crate::cli::log_options::{
    LogEncoder, LogOptions, StacktraceLevel, TimeEncoding, ZapLevel,
};

/// Program name printed in usage, like Go's `os.Args[0]`.
pub const PROGRAM: &str = "epp";

/// The InferencePool API groups the EPP can watch.
pub const POOL_GROUPS: [&str; 2] = [
    "inference.networking.k8s.io",
    "inference.networking.x-k8s.io",
];

/// Where the EPP learns its endpoints from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSource {
    /// Watch an InferencePool and its pods (`--pool-name`).
    Kubernetes {
        /// InferencePool name.
        pool_name: String,
        /// InferencePool namespace.
        namespace: String,
        /// InferencePool API group, one of [`POOL_GROUPS`].
        group: String,
    },
    /// A fixed list given by `--endpoints`: at least one, no duplicates, ports 1..=65535.
    Static(Vec<SocketAddr>),
    /// A file of endpoints given by `--endpoints-file` (existence is checked later).
    File(PathBuf),
    /// `--simulate-endpoints N`: N simulated model servers started in-process on loopback.
    Simulated(usize),
    /// No source: only with `--validate-config`.
    None,
}

/// Everything configured on the command line and in the environment.
///
/// `Options::default()` holds every flag's default (no endpoint source, no warnings).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `--pool-name`: InferencePool name; empty when another endpoint source is used.
    pub pool_name: String,
    /// `--pool-namespace`: InferencePool namespace, never empty (default `default`).
    pub pool_namespace: String,
    /// `--pool-group`: InferencePool API group, one of [`POOL_GROUPS`].
    pub pool_group: String,
    /// `--grpc-port`: ext_proc port, 0..=65535 (0 = ephemeral).
    pub grpc_port: u16,
    /// `--grpc-health-port`: gRPC health port, 0..=65535.
    pub grpc_health_port: u16,
    /// `--metrics-port`: Prometheus metrics port, 0..=65535.
    pub metrics_port: u16,
    /// `--proxy-port`: router mode, the OpenAI HTTP API served by the EPP itself,
    /// 0..=65535 (0 = off, the default).
    pub proxy_port: u16,
    /// `--proxy-connect-timeout`: longest wait for a connection to an endpoint in router
    /// mode, > 0 (default 5s).
    pub proxy_connect_timeout: Duration,
    /// `--bind-address`: the address every listener binds unless overridden (default
    /// 0.0.0.0, all IPv4 interfaces).
    pub bind_address: IpAddr,
    /// `--grpc-bind-address`: the ext_proc listener's address; `None` = `bind_address`.
    pub grpc_bind_address: Option<IpAddr>,
    /// `--grpc-health-bind-address`; `None` = `bind_address`.
    pub grpc_health_bind_address: Option<IpAddr>,
    /// `--metrics-bind-address`; `None` = `bind_address`.
    pub metrics_bind_address: Option<IpAddr>,
    /// `--proxy-bind-address`; `None` = `bind_address`.
    pub proxy_bind_address: Option<IpAddr>,
    /// `--metrics-endpoint-auth` (v1.5): with Kubernetes discovery, `/metrics` needs a
    /// bearer token that passes a TokenReview and a SubjectAccessReview.
    pub metrics_endpoint_auth: bool,
    /// `--enable-pprof`: accepted for compatibility; there are no Go pprof handlers.
    pub enable_pprof: bool,
    /// `--secure-serving`: serve ext_proc over TLS.
    pub secure_serving: bool,
    /// `--cert-path`: directory holding `tls.crt` and `tls.key`; `None` = self-signed.
    pub cert_path: Option<PathBuf>,
    /// `--health-checking`: serve gRPC health on the ext_proc port too.
    pub health_checking: bool,
    /// `--config-file`: plugins configuration file.
    pub config_file: Option<PathBuf>,
    /// `--config-text`: plugins configuration inline (exclusive with `config_file`).
    pub config_text: Option<String>,
    /// `--total-queued-requests-metric`; `None` = not scraped.
    pub total_queued_requests_metric: Option<MetricSpec>,
    /// `--total-running-requests-metric`; `None` = not scraped.
    pub total_running_requests_metric: Option<MetricSpec>,
    /// `--kv-cache-usage-percentage-metric` (a fraction 0..=1); `None` = not scraped.
    pub kv_cache_usage_percentage_metric: Option<MetricSpec>,
    /// `--lora-info-metric`; `None` = not scraped.
    pub lora_info_metric: Option<MetricSpec>,
    /// `--cache-info-metric`; `None` = not scraped.
    pub cache_info_metric: Option<MetricSpec>,
    /// `--refresh-metrics-interval`: model server scrape period, > 0.
    pub refresh_metrics_interval: Duration,
    /// `--refresh-prometheus-metrics-interval`: own metrics flush period, > 0.
    pub refresh_prometheus_metrics_interval: Duration,
    /// `--metrics-staleness-threshold`: age after which scraped metrics are stale, > 0.
    pub metrics_staleness_threshold: Duration,
    /// `--model-server-metrics-port`: 0..=65535, 0 = the pool's target port.
    pub model_server_metrics_port: u16,
    /// `--model-server-metrics-path`: starts with `/`.
    pub model_server_metrics_path: String,
    /// `--model-server-metrics-scheme`.
    pub model_server_metrics_scheme: MetricsScheme,
    /// `--model-server-metrics-https-insecure-skip-verify`.
    pub model_server_metrics_https_insecure_skip_verify: bool,
    /// `--ha-enable-leader-election`.
    pub ha_enable_leader_election: bool,
    /// `--kubeconfig`: `None` = in-cluster or `$KUBECONFIG`.
    pub kubeconfig: Option<PathBuf>,
    /// `-v` and `-zap-*`.
    pub log: LogOptions,
    /// `--endpoints`: static endpoints (empty = not given).
    pub endpoints: Vec<SocketAddr>,
    /// `--endpoints-file`.
    pub endpoints_file: Option<PathBuf>,
    /// `--validate-config`: check the configuration and exit.
    pub validate_config: bool,
    /// `--max-request-body-bytes`: largest request body buffered, > 0 (default 64 MiB).
    pub max_request_body_bytes: u64,
    /// `--max-buffered-request-bytes`: request-body bytes buffered by all streams together,
    /// > 0 (default 1 GiB); past it a request gets 503.
    pub max_buffered_request_bytes: u64,
    /// `--request-body-mode-fallback`: body mode assumed when ext_proc protocol_config has none.
    pub body_mode_fallback: BodyModeFallback,
    /// `--response-body-mode-override`: in BUFFERED mode, the response body mode asked of
    /// the gateway through `mode_override` (applied where it allows mode overrides).
    pub response_body_override: ResponseBodyOverride,
    /// `--max-endpoints`: most endpoints the datastore accepts, > 0.
    pub max_endpoints: usize,
    /// `--model-server-metrics-timeout`: longest one scrape may take.
    pub model_server_metrics_timeout: Duration,
    /// `--model-server-metrics-max-bytes`: largest metrics page read.
    pub model_server_metrics_max_bytes: usize,
    /// Lease timings of leader election (controller-runtime's defaults; not a flag:
    /// tests and embedders shorten them).
    pub lease_timings: LeaseTimings,
    /// `--decision-records`: log one decision record per request.
    pub decision_records: bool,
    /// `--decision-records-file`: append decision records to this file (JSON lines).
    pub decision_records_file: Option<PathBuf>,
    /// `--request-log-file`: append one JSON line per routed request whose response ended
    /// (for replay in `epp-lab`; no prompt text).
    pub request_log_file: Option<PathBuf>,
    /// `--request-log-session-header`: header whose value the request log keeps as the
    /// session, lowercase.
    pub request_log_session_header: String,
    /// `--objectives-file`: InferenceObjectives for standalone mode.
    pub objectives_file: Option<PathBuf>,
    /// `--print-crds`: print the CRDs of the resources the EPP reads, and exit.
    pub print_crds: bool,
    /// `--simulate-endpoints`: simulated model servers to start in-process (0: none).
    pub simulate_endpoints: usize,
    /// `--simulator-args`: `epp-sim` flags for the `--simulate-endpoints` servers.
    pub simulator_args: String,
    /// The simulated servers' config, parsed from `simulator_args`.
    pub simulator_config: SimConfig,
    /// `--engine-type`: the model server whose metric names are the defaults.
    pub engine_type: Engine,
    /// What to scrape: the engine's preset with explicitly set `--*-metric` flags on top
    /// (resolved after parsing).
    pub metric_mapping: MetricMapping,
    /// `--tracing`: export request traces over OTLP. Unless given on the command line,
    /// resolved to whether an OTLP endpoint variable is set.
    pub tracing: bool,
    /// The exporter's settings from the `OTEL_*` variables; `Some` exactly when `tracing`.
    pub trace_settings: Option<epp_trace::TraceSettings>,
    /// Resolved from `pool_name`, `endpoints` and `endpoints_file`.
    pub endpoint_source: EndpointSource,
    /// From `SD_*` environment variables.
    pub saturation: SaturationThresholds,
    /// `ENABLE_EXPERIMENTAL_DATALAYER_V2`.
    pub enable_experimental_datalayer_v2: bool,
    /// Notes about ignored environment values, to log once logging is set up.
    pub warnings: Vec<String>,
    /// Notes about given flags and environment variables that have no effect here, to log
    /// once logging is set up.
    pub inert: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        // The metric flags show the default engine's preset as their defaults.
        let engine_type = Engine::default();
        let preset = MetricMapping::preset(engine_type);
        Options {
            pool_name: String::new(),
            pool_namespace: "default".to_owned(),
            pool_group: POOL_GROUPS[0].to_owned(),
            grpc_port: 9002,
            grpc_health_port: 9003,
            metrics_port: 9090,
            proxy_port: 0,
            proxy_connect_timeout: epp_proxy::DEFAULT_CONNECT_TIMEOUT,
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            grpc_bind_address: None,
            grpc_health_bind_address: None,
            metrics_bind_address: None,
            proxy_bind_address: None,
            metrics_endpoint_auth: true,
            enable_pprof: true,
            secure_serving: true,
            cert_path: None,
            health_checking: false,
            config_file: None,
            config_text: None,
            total_queued_requests_metric: preset.queued.clone(),
            total_running_requests_metric: preset.running.clone(),
            kv_cache_usage_percentage_metric: preset.kv_usage.clone(),
            lora_info_metric: preset.lora.clone(),
            cache_info_metric: preset.cache_info.clone(),
            refresh_metrics_interval: Duration::from_millis(50),
            refresh_prometheus_metrics_interval: Duration::from_secs(5),
            metrics_staleness_threshold: Duration::from_secs(2),
            model_server_metrics_port: 0,
            model_server_metrics_path: engine_type.default_metrics_path().to_owned(),
            model_server_metrics_scheme: MetricsScheme::Http,
            model_server_metrics_https_insecure_skip_verify: true,
            ha_enable_leader_election: false,
            kubeconfig: None,
            log: LogOptions::default(),
            endpoints: Vec::new(),
            endpoints_file: None,
            validate_config: false,
            max_request_body_bytes: 64 << 20,
            max_buffered_request_bytes: 1 << 30,
            body_mode_fallback: BodyModeFallback::FullDuplexStreamed,
            response_body_override: ResponseBodyOverride::Streamed,
            max_endpoints: 10_000,
            model_server_metrics_timeout: Duration::from_secs(1),
            model_server_metrics_max_bytes: 16 << 20,
            simulate_endpoints: 0,
            print_crds: false,
            objectives_file: None,
            decision_records: false,
            decision_records_file: None,
            request_log_file: None,
            request_log_session_header: epp_extproc::request_log::DEFAULT_SESSION_HEADER.to_owned(),
            lease_timings: LeaseTimings::default(),
            simulator_args: String::new(),
            simulator_config: SimConfig::default(),
            engine_type,
            metric_mapping: preset,
            tracing: false,
            trace_settings: None,
            endpoint_source: EndpointSource::None,
            saturation: SaturationThresholds::default(),
            enable_experimental_datalayer_v2: false,
            warnings: Vec::new(),
            inert: Vec::new(),
        }
    }
}

/// The EPP's listeners, for their bind addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Grpc,
    GrpcHealth,
    Metrics,
    Proxy,
}

impl Options {
    /// The address `listener` binds: its own `--*-bind-address`, else `--bind-address`.
    pub fn bind_address_of(&self, listener: Listener) -> IpAddr {
        match listener {
            Listener::Grpc => self.grpc_bind_address,
            Listener::GrpcHealth => self.grpc_health_bind_address,
            Listener::Metrics => self.metrics_bind_address,
            Listener::Proxy => self.proxy_bind_address,
        }
        .unwrap_or(self.bind_address)
    }

    /// Defaults with a Kubernetes source (`test-pool`), for tests of other modules.
    pub fn for_tests() -> Options {
        let mut options = Options {
            pool_name: "test-pool".to_owned(),
            ..Options::default()
        };
        options.endpoint_source = options.kubernetes_source();
        options
    }

    /// Every flag with its effective value, sorted by name (for the "Flags processed" log line).
    pub fn flag_values(&self) -> Vec<(String, String)> {
        let mut values: Vec<(String, String)> = FLAGS
            .iter()
            .map(|def| (def.name.to_owned(), (def.get)(self)))
            .collect();
        values.sort();
        values
    }

    fn kubernetes_source(&self) -> EndpointSource {
        EndpointSource::Kubernetes {
            pool_name: self.pool_name.clone(),
            namespace: self.pool_namespace.clone(),
            group: self.pool_group.clone(),
        }
    }

    /// Cross-flag rules and derived fields, after all flags are applied.
    fn finish(&mut self, env: &dyn Env, set: &[&'static str]) -> Result<(), CliError> {
        self.log.resolve();
        self.resolve_metric_mapping(set);
        self.simulator_config = self.parse_simulator_args()?;
        if self.config_text.is_some() && self.config_file.is_some() {
            return Err(CliError::invalid(
                "config-text",
                r#"both the "configText" and "configFile" flags can not be set at the same time"#,
            ));
        }
        if self.endpoints.len() > self.max_endpoints {
            return Err(CliError::invalid(
                "endpoints",
                format!(
                    "flag --endpoints lists {} endpoints, more than --max-endpoints={}",
                    self.endpoints.len(),
                    self.max_endpoints
                ),
            ));
        }
        self.endpoint_source = self.resolve_endpoint_source()?;
        if self.objectives_file.is_some()
            && matches!(self.endpoint_source, EndpointSource::Kubernetes { .. })
        {
            return Err(CliError::invalid(
                "objectives-file",
                "flag --objectives-file is for standalone mode; with --pool-name, objectives come from InferenceObjective resources",
            ));
        }
        self.load_env(env);
        self.resolve_tracing(env, set.contains(&"tracing"))?;
        self.inert = inert::notes(set, env);
        Ok(())
    }

    /// `--tracing` and the `OTEL_*` variables. Given on the command line, the flag decides;
    /// otherwise tracing is on when an OTLP endpoint variable is set. A variable tracing
    /// would use that cannot be used is an error naming it; with tracing off the
    /// variables are not read.
    fn resolve_tracing(&mut self, env: &dyn Env, explicit: bool) -> Result<(), CliError> {
        let endpoint_set = [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .iter()
        .any(|key| env.var(key).is_some_and(|v| !v.trim().is_empty()));
        self.tracing = if explicit { self.tracing } else { endpoint_set };
        if !self.tracing {
            self.trace_settings = None;
            return Ok(());
        }
        let read = epp_trace::TraceSettings::from_env(|key| env.var(key))
            .map_err(|e| CliError::invalid("tracing", format!("tracing: {e}")))?;
        self.trace_settings = Some(read.settings);
        Ok(())
    }

    /// The engine preset, then each `--*-metric` flag given on the command line (an empty
    /// value disables that metric); the metrics path follows the engine unless given.
    fn resolve_metric_mapping(&mut self, set: &[&'static str]) {
        let mut mapping = MetricMapping::preset(self.engine_type);
        let explicit = |flag: &str| set.contains(&flag);
        let overrides = [
            (
                "total-queued-requests-metric",
                &self.total_queued_requests_metric,
                &mut mapping.queued,
            ),
            (
                "total-running-requests-metric",
                &self.total_running_requests_metric,
                &mut mapping.running,
            ),
            (
                "kv-cache-usage-percentage-metric",
                &self.kv_cache_usage_percentage_metric,
                &mut mapping.kv_usage,
            ),
            (
                "lora-info-metric",
                &self.lora_info_metric,
                &mut mapping.lora,
            ),
            (
                "cache-info-metric",
                &self.cache_info_metric,
                &mut mapping.cache_info,
            ),
        ];
        for (flag, value, field) in overrides {
            if explicit(flag) {
                field.clone_from(value);
            }
        }
        self.metric_mapping = mapping;
        if !explicit("model-server-metrics-path") {
            self.model_server_metrics_path = self.engine_type.default_metrics_path().to_owned();
        }
    }

    /// `--simulator-args` split on whitespace and parsed as `epp-sim` flags; server
    /// placement flags (`--servers`, `--base-port`, `--host`) are not for this use.
    fn parse_simulator_args(&self) -> Result<SimConfig, CliError> {
        let words: Vec<&str> = self.simulator_args.split_whitespace().collect();
        let placement = ["--servers", "--base-port", "--port", "--host"];
        if let Some(word) = words
            .iter()
            .find(|w| placement.iter().any(|p| w.starts_with(p)))
        {
            return Err(CliError::invalid(
                "simulator-args",
                format!(
                    "flag --simulator-args: {word} is not allowed here; use --simulate-endpoints for the count"
                ),
            ));
        }
        SimArgs::parse(&words)
            .map(|args| args.config)
            .map_err(|e| CliError::invalid("simulator-args", format!("flag --simulator-args: {e}")))
    }

    fn resolve_endpoint_source(&self) -> Result<EndpointSource, CliError> {
        let given = [
            ("pool-name", !self.pool_name.is_empty()),
            ("endpoints", !self.endpoints.is_empty()),
            ("endpoints-file", self.endpoints_file.is_some()),
            ("simulate-endpoints", self.simulate_endpoints > 0),
        ];
        let mut chosen = given.iter().filter(|(_, set)| *set).map(|(name, _)| *name);
        match (chosen.next(), chosen.next()) {
            (Some(_), Some(_)) => Err(CliError::invalid(
                "pool-name",
                "flags --pool-name, --endpoints, --endpoints-file and --simulate-endpoints select the endpoint source; set exactly one",
            )),
            (Some("pool-name"), None) => Ok(self.kubernetes_source()),
            (Some("endpoints"), None) => Ok(EndpointSource::Static(self.endpoints.clone())),
            (Some("simulate-endpoints"), None) => {
                Ok(EndpointSource::Simulated(self.simulate_endpoints))
            }
            (Some(_), None) => Ok(self
                .endpoints_file
                .clone()
                .map_or(EndpointSource::None, EndpointSource::File)),
            (None, _) if self.validate_config || self.print_crds => Ok(EndpointSource::None),
            (None, _) => Err(CliError::invalid(
                "pool-name",
                r#"required "poolName" flag not set (or use --endpoints, --endpoints-file or --simulate-endpoints for standalone mode)"#,
            )),
        }
    }
}

/// Parses the command line (`args` excludes the program name) and the environment.
pub fn parse<I: IntoIterator<Item = String>>(args: I, env: &dyn Env) -> Result<Options, CliError> {
    let mut options = Options::default();
    let parsed = goflag::parse(&FLAGS, &mut options, args).map_err(cli_error)?;
    reject_positional(&parsed)?;
    options.finish(env, &parsed.set)?;
    Ok(options)
}

/// The `-h` text: `Usage of epp:` and every flag with its help and default.
pub fn usage() -> String {
    goflag::usage(PROGRAM, &FLAGS, &Options::default())
}

fn cli_error(error: ParseError) -> CliError {
    let message = error.to_string();
    match error {
        ParseError::Help => CliError::Help(usage()),
        ParseError::BadSyntax(_) | ParseError::Undefined { .. } | ParseError::NeedsArgument(_) => {
            CliError::Usage {
                message,
                usage: usage(),
            }
        }
        ParseError::InvalidValue { flag, .. }
        | ParseError::InvalidBool { flag, .. }
        | ParseError::Rejected { flag, .. } => CliError::Invalid { flag, message },
    }
}

/// Leftover arguments are an error: ignoring them would hide mistakes like `--secure-serving false`.
fn reject_positional(parsed: &Parsed) -> Result<(), CliError> {
    let Some(first) = parsed.positional.first() else {
        return Ok(());
    };
    let message = match parsed.bare_bool_before_positional {
        Some(flag) if parse_bool(first).is_ok() => format!(
            "unexpected argument {first:?} after flag -{flag}: boolean flags take their value as -{flag}={first}"
        ),
        _ => {
            let quoted: Vec<String> = parsed.positional.iter().map(|a| format!("{a:?}")).collect();
            let after = if parsed.terminated {
                " after \"--\""
            } else {
                ""
            };
            format!(
                "unexpected argument{} {}{after}: {PROGRAM} takes no positional arguments (flags must come first, as -name=value or -name value)",
                if quoted.len() == 1 { "" } else { "s" },
                quoted.join(", ")
            )
        }
    };
    Err(CliError::Positional {
        args: parsed.positional.clone(),
        message,
    })
}

spelled_enum!(
    /// URL scheme for scraping model servers (`--model-server-metrics-scheme`).
    MetricsScheme { Http = "http", Https = "https", }
);
spelled_enum!(
    /// Request body mode assumed when ext_proc protocol_config does not announce one.
    BodyModeFallback { FullDuplexStreamed = "full-duplex-streamed", Buffered = "buffered", }
);
spelled_enum!(
    /// Response body mode asked of a gateway that buffers both bodies
    /// (`--response-body-mode-override`).
    ResponseBodyOverride { Streamed = "streamed", None = "none", Off = "off", }
);
