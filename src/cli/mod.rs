//! Command-line flags and environment settings of the EPP, parsed with Go `flag` semantics.

pub mod duration;
pub mod goflag;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::duration::{DurationError, parse_go_duration};
use crate::cli::goflag::{
    FlagDef, ParseError, Parsed, SetError, Show, flag, parse_bool, parse_int, spelled_enum,
};
use crate::datalayer::metric_spec::MetricSpec;

/// Program name printed in usage, like Go's `os.Args[0]`.
pub const PROGRAM: &str = "epp";

/// The InferencePool API groups the EPP can watch.
pub const POOL_GROUPS: [&str; 2] = [
    "inference.networking.k8s.io",
    "inference.networking.x-k8s.io",
];

/// Why the command line was not turned into [`Options`]; see [`CliError::exit_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// `-h`/`-help`/`--help`: print the usage text (the payload) to stderr and exit 0.
    #[error("{0}")]
    Help(String),
    /// Malformed command line (unknown flag, missing value): message then usage, exit 2.
    #[error("{message}")]
    Usage {
        /// One line naming the flag.
        message: String,
        /// The full usage text.
        usage: String,
    },
    /// A flag value or combination of flags is invalid: one line, exit 1.
    #[error("{message}")]
    Invalid {
        /// The flag at fault (without dashes).
        flag: String,
        /// One line naming the flag, what is wrong and what is allowed.
        message: String,
    },
    /// Arguments left after the flags (the EPP takes none): one line, exit 1.
    #[error("{message}")]
    Positional {
        /// The leftover arguments.
        args: Vec<String>,
        /// One line naming them.
        message: String,
    },
}

impl CliError {
    /// Process exit code: 0 for help, 2 for usage errors (as Go), 1 for invalid values.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Help(_) => 0,
            CliError::Usage { .. } => 2,
            CliError::Invalid { .. } | CliError::Positional { .. } => 1,
        }
    }

    /// Everything to write to stderr, ending with a newline.
    pub fn stderr_text(&self) -> String {
        match self {
            CliError::Help(usage) => usage.clone(),
            CliError::Usage { message, usage } => format!("{message}\n{usage}"),
            CliError::Invalid { message, .. } | CliError::Positional { message, .. } => {
                format!("{message}\n")
            }
        }
    }

    fn invalid(flag: &str, message: impl Into<String>) -> CliError {
        CliError::Invalid {
            flag: flag.to_owned(),
            message: message.into(),
        }
    }
}

/// Environment variable lookup, a trait so tests can inject values.
pub trait Env {
    /// The variable's value, or `None` when unset.
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment (non-UTF-8 values are converted lossily).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var_os(key).map(|v| v.to_string_lossy().into_owned())
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

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
    /// No source: only with `--validate-config`.
    None,
}

/// Saturation detector thresholds read from `SD_*` environment variables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SaturationThresholds {
    /// `SD_QUEUE_DEPTH_THRESHOLD`: waiting requests above which a pod is saturated; > 0, default 5.
    pub queue_depth: u64,
    /// `SD_KV_CACHE_UTIL_THRESHOLD`: KV-cache fraction above which a pod is saturated; in (0, 1), default 0.8.
    pub kv_cache_util: f64,
    /// `SD_METRICS_STALENESS_THRESHOLD`: metrics older than this make a pod saturated; > 0, default 200ms.
    pub metrics_staleness: Duration,
}

impl Default for SaturationThresholds {
    fn default() -> Self {
        SaturationThresholds {
            queue_depth: 5,
            kv_cache_util: 0.8,
            metrics_staleness: Duration::from_millis(200),
        }
    }
}

/// Logging flags (`-v`, `-zap-*`) as given, plus the effective settings derived from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// `-v`: verbosity, >= 0 (default 2).
    pub v: i32,
    /// `-zap-devel`: development defaults (console encoder, stacktraces from warn).
    pub development: bool,
    /// `-zap-encoder` as given.
    pub encoder_flag: Option<LogEncoder>,
    /// `-zap-log-level` as given; overrides `-v` when set.
    pub level_flag: Option<ZapLevel>,
    /// `-zap-stacktrace-level` as given.
    pub stacktrace_flag: Option<StacktraceLevel>,
    /// `-zap-time-encoding` as given.
    pub time_encoding_flag: Option<TimeEncoding>,
    /// Effective verbosity: `V(n)` logs are emitted iff `n <= verbosity`; 0 = info, -2 = errors only.
    pub verbosity: i32,
    /// Effective encoder: the flag, else console in development mode and json otherwise.
    pub encoder: LogEncoder,
    /// Effective stacktrace level: the flag, else warn in development mode and error otherwise.
    pub stacktrace_level: StacktraceLevel,
    /// Effective time encoding: the flag, else RFC 3339.
    pub time_encoding: TimeEncoding,
}

impl LogOptions {
    /// Recomputes the effective fields from the flag fields.
    pub fn resolve(&mut self) {
        self.verbosity = self.level_flag.map_or(self.v, ZapLevel::verbosity);
        let (encoder, stacktrace) = if self.development {
            (LogEncoder::Console, StacktraceLevel::Warn)
        } else {
            (LogEncoder::Json, StacktraceLevel::Error)
        };
        self.encoder = self.encoder_flag.unwrap_or(encoder);
        self.stacktrace_level = self.stacktrace_flag.unwrap_or(stacktrace);
        self.time_encoding = self.time_encoding_flag.unwrap_or(TimeEncoding::Rfc3339);
    }
}

impl Default for LogOptions {
    fn default() -> Self {
        let mut log = LogOptions {
            v: 2,
            development: true,
            encoder_flag: None,
            level_flag: None,
            stacktrace_flag: None,
            time_encoding_flag: None,
            verbosity: 0,
            encoder: LogEncoder::Console,
            stacktrace_level: StacktraceLevel::Warn,
            time_encoding: TimeEncoding::Rfc3339,
        };
        log.resolve();
        log
    }
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
    /// `--request-body-mode-fallback`: body mode assumed when ext_proc protocol_config has none.
    pub body_mode_fallback: BodyModeFallback,
    /// `--max-endpoints`: most endpoints the datastore accepts, > 0.
    pub max_endpoints: usize,
    /// Resolved from `pool_name`, `endpoints` and `endpoints_file`.
    pub endpoint_source: EndpointSource,
    /// From `SD_*` environment variables.
    pub saturation: SaturationThresholds,
    /// `ENABLE_EXPERIMENTAL_DATALAYER_V2`.
    pub enable_experimental_datalayer_v2: bool,
    /// Notes about ignored environment values, to log once logging is set up.
    pub warnings: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        let metric = |name: &str| {
            Some(MetricSpec {
                name: name.to_owned(),
                labels: Vec::new(),
            })
        };
        Options {
            pool_name: String::new(),
            pool_namespace: "default".to_owned(),
            pool_group: POOL_GROUPS[0].to_owned(),
            grpc_port: 9002,
            grpc_health_port: 9003,
            metrics_port: 9090,
            enable_pprof: true,
            secure_serving: true,
            cert_path: None,
            health_checking: false,
            config_file: None,
            config_text: None,
            total_queued_requests_metric: metric("vllm:num_requests_waiting"),
            total_running_requests_metric: metric("vllm:num_requests_running"),
            kv_cache_usage_percentage_metric: metric("vllm:gpu_cache_usage_perc"),
            lora_info_metric: metric("vllm:lora_requests_info"),
            cache_info_metric: metric("vllm:cache_config_info"),
            refresh_metrics_interval: Duration::from_millis(50),
            refresh_prometheus_metrics_interval: Duration::from_secs(5),
            metrics_staleness_threshold: Duration::from_secs(2),
            model_server_metrics_port: 0,
            model_server_metrics_path: "/metrics".to_owned(),
            model_server_metrics_scheme: MetricsScheme::Http,
            model_server_metrics_https_insecure_skip_verify: true,
            ha_enable_leader_election: false,
            kubeconfig: None,
            log: LogOptions::default(),
            endpoints: Vec::new(),
            endpoints_file: None,
            validate_config: false,
            max_request_body_bytes: 64 << 20,
            body_mode_fallback: BodyModeFallback::FullDuplexStreamed,
            max_endpoints: 10_000,
            endpoint_source: EndpointSource::None,
            saturation: SaturationThresholds::default(),
            enable_experimental_datalayer_v2: false,
            warnings: Vec::new(),
        }
    }
}

impl Options {
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
    fn finish(&mut self, env: &dyn Env) -> Result<(), CliError> {
        self.log.resolve();
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
        self.load_env(env);
        Ok(())
    }

    fn resolve_endpoint_source(&self) -> Result<EndpointSource, CliError> {
        let given = [
            ("pool-name", !self.pool_name.is_empty()),
            ("endpoints", !self.endpoints.is_empty()),
            ("endpoints-file", self.endpoints_file.is_some()),
        ];
        let mut chosen = given.iter().filter(|(_, set)| *set).map(|(name, _)| *name);
        match (chosen.next(), chosen.next()) {
            (Some(_), Some(_)) => Err(CliError::invalid(
                "pool-name",
                "flags --pool-name, --endpoints and --endpoints-file select the endpoint source; set exactly one",
            )),
            (Some("pool-name"), None) => Ok(self.kubernetes_source()),
            (Some("endpoints"), None) => Ok(EndpointSource::Static(self.endpoints.clone())),
            (Some(_), None) => Ok(self
                .endpoints_file
                .clone()
                .map_or(EndpointSource::None, EndpointSource::File)),
            (None, _) if self.validate_config => Ok(EndpointSource::None),
            (None, _) => Err(CliError::invalid(
                "pool-name",
                r#"required "poolName" flag not set (or use --endpoints / --endpoints-file for standalone mode)"#,
            )),
        }
    }

    /// Reads the `SD_*` thresholds and the datalayer switch; bad values fall back with a warning.
    fn load_env(&mut self, env: &dyn Env) {
        let d = SaturationThresholds::default();
        let w = &mut self.warnings;
        self.saturation = SaturationThresholds {
            queue_depth: env_value(
                env,
                w,
                "SD_QUEUE_DEPTH_THRESHOLD",
                d.queue_depth,
                "an integer > 0",
                |s| s.parse().ok().filter(|v| *v > 0),
            ),
            kv_cache_util: env_value(
                env,
                w,
                "SD_KV_CACHE_UTIL_THRESHOLD",
                d.kv_cache_util,
                "a number between 0 and 1 (exclusive)",
                |s| s.parse().ok().filter(|v| *v > 0.0 && *v < 1.0),
            ),
            metrics_staleness: env_value(
                env,
                w,
                "SD_METRICS_STALENESS_THRESHOLD",
                d.metrics_staleness,
                "a Go duration > 0 such as 200ms",
                |s| parse_go_duration(s).ok().filter(|v| !v.is_zero()),
            ),
        };
        self.enable_experimental_datalayer_v2 = env_value(
            env,
            w,
            "ENABLE_EXPERIMENTAL_DATALAYER_V2",
            false,
            "true or false",
            |s| parse_bool(s).ok(),
        );
    }
}

/// Reads `key` with `parse`: unset gives `default`; unusable gives `default` and a warning.
fn env_value<T: Show>(
    env: &dyn Env,
    warnings: &mut Vec<String>,
    key: &str,
    default: T,
    allowed: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> T {
    let Some(raw) = env.var(key) else {
        return default;
    };
    parse(&raw).unwrap_or_else(|| {
        let shown = default.show();
        warnings.push(format!(
            "ignoring environment variable {key}={raw:?}: expected {allowed}; using the default {shown}"
        ));
        default
    })
}

/// Parses the command line (`args` excludes the program name) and the environment.
pub fn parse<I: IntoIterator<Item = String>>(args: I, env: &dyn Env) -> Result<Options, CliError> {
    let mut options = Options::default();
    let parsed = goflag::parse(FLAGS, &mut options, args).map_err(cli_error)?;
    reject_positional(&parsed)?;
    options.finish(env)?;
    Ok(options)
}

/// The `-h` text: `Usage of epp:` and every flag with its help and default.
pub fn usage() -> String {
    goflag::usage(PROGRAM, FLAGS, &Options::default())
}

fn cli_error(error: ParseError) -> CliError {
    let message = error.to_string();
    match error {
        ParseError::Help => CliError::Help(usage()),
        ParseError::BadSyntax(_) | ParseError::Undefined(_) | ParseError::NeedsArgument(_) => {
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

/// Every flag of the EPP, one row each: name, kind, `Options` field, value parser, help.
///
/// To add a flag: add a typed field to [`Options`] with its default in `Options::default`, then
/// one `flag!` row here naming the field and a parser (reuse one below or add a small `fn`).
/// Parsing, `-h` text with defaults and [`Options::flag_values`] follow from the row.
#[rustfmt::skip]
static FLAGS: &[FlagDef<Options>] = &[
    flag!("pool-name", String, pool_name, text,
        "Name of the InferencePool this Endpoint Picker is associated with."),
    flag!("pool-namespace", String, pool_namespace, namespace,
        "Namespace of the InferencePool this Endpoint Picker is associated with."),
    flag!("pool-group", String, pool_group, pool_group, concat!(
        "API group of the InferencePool this Endpoint Picker is associated with ",
        "(inference.networking.k8s.io or inference.networking.x-k8s.io).")),
    flag!("grpc-port", Int, grpc_port, port,
        "The gRPC port used for communicating with Envoy proxy"),
    flag!("grpc-health-port", Int, grpc_health_port, port,
        "The port used for gRPC liveness and readiness probes"),
    flag!("metrics-port", Int, metrics_port, port, "The metrics port"),
    flag!("enable-pprof", Bool, enable_pprof, parse_bool,
        "Enables pprof handlers. Accepted for compatibility: this EPP has no Go pprof handlers."),
    flag!("secure-serving", Bool, secure_serving, parse_bool,
        "Enables secure serving. Defaults to true."),
    flag!("cert-path", String, cert_path, path, concat!(
        "The path to the certificate for secure serving. The certificate and private key files ",
        "are assumed to be named tls.crt and tls.key, respectively. If not set, and secureServing ",
        "is enabled, then a self-signed certificate is used.")),
    flag!("health-checking", Bool, health_checking, parse_bool, "Enables health checking"),
    flag!("config-file", String, config_file, path, "The path to the configuration file"),
    flag!("config-text", String, config_text, optional_text,
        "The configuration specified as text, in lieu of a file"),
    flag!("total-queued-requests-metric", String, total_queued_requests_metric, metric,
        "Prometheus metric for the number of queued requests."),
    flag!("total-running-requests-metric", String, total_running_requests_metric, metric,
        "Prometheus metric for the number of running requests."),
    flag!("kv-cache-usage-percentage-metric", String, kv_cache_usage_percentage_metric, metric,
        "Prometheus metric for the fraction of KV-cache blocks currently in use (from 0 to 1)."),
    flag!("lora-info-metric", String, lora_info_metric, metric,
        "Prometheus metric for the LoRA info metrics (must be in vLLM label format)."),
    flag!("cache-info-metric", String, cache_info_metric, metric,
        "Prometheus metric for the cache config info (block size, number of GPU blocks)."),
    flag!("refresh-metrics-interval", Duration, refresh_metrics_interval, positive_duration,
        "interval to refresh metrics"),
    flag!("refresh-prometheus-metrics-interval", Duration, refresh_prometheus_metrics_interval,
        positive_duration, "interval to flush prometheus metrics"),
    flag!("metrics-staleness-threshold", Duration, metrics_staleness_threshold, positive_duration,
        concat!("Duration after which metrics are considered stale. This is used to determine ",
        "if a pod's metrics are fresh enough.")),
    flag!("model-server-metrics-port", Int, model_server_metrics_port, port, concat!(
        "Port to scrape metrics from pods. ",
        "Default value will be set to the InferencePool.Spec.TargetPorts[0].Number if not set.")),
    flag!("model-server-metrics-path", String, model_server_metrics_path, metrics_path,
        "Path to scrape metrics from pods"),
    flag!("model-server-metrics-scheme", String, model_server_metrics_scheme, scheme,
        "Scheme to scrape metrics from pods ('http' or 'https')"),
    flag!("model-server-metrics-https-insecure-skip-verify", Bool,
        model_server_metrics_https_insecure_skip_verify, parse_bool, concat!(
        "When using 'https' scheme for 'model-server-metrics-scheme', ",
        "configure 'InsecureSkipVerify' (default to true)")),
    flag!("ha-enable-leader-election", Bool, ha_enable_leader_election, parse_bool, concat!(
        "Enables leader election for high availability. ",
        "When enabled, readiness probes will only pass on the leader.")),
    flag!("kubeconfig", String, kubeconfig, path,
        "Paths to a kubeconfig. Only required if out-of-cluster."),
    flag!("v", Int, log.v, verbosity, "number for the log level verbosity"),
    flag!("zap-devel", Bool, log.development, parse_bool, concat!(
        "Development Mode defaults(encoder=consoleEncoder,logLevel=Debug,stackTraceLevel=Warn). ",
        "Production Mode defaults(encoder=jsonEncoder,logLevel=Info,stackTraceLevel=Error)")),
    flag!("zap-encoder", Value, log.encoder_flag, encoder,
        "Zap log encoding (one of 'json' or 'console')"),
    flag!("zap-log-level", Value, log.level_flag, zap_level, concat!(
        "Zap Level to configure the verbosity of logging. Can be one of 'debug', 'info', 'error', ",
        "'panic' or any integer value > 0 which corresponds to custom debug levels of increasing ",
        "verbosity")),
    flag!("zap-stacktrace-level", Value, log.stacktrace_flag, stacktrace_level,
        "Zap Level at and above which stacktraces are captured (one of 'info', 'error', 'panic')."),
    flag!("zap-time-encoding", Value, log.time_encoding_flag, time_encoding, concat!(
        "Zap time encoding (one of 'epoch', 'millis', 'nano', 'iso8601', 'rfc3339' or ",
        "'rfc3339nano'). Defaults to 'rfc3339'.")),
    flag!("endpoints", String, endpoints, endpoint_list, concat!(
        "Static endpoints as a comma-separated list of IPv4:port or [IPv6]:port, to run without ",
        "Kubernetes (exclusive with --pool-name and --endpoints-file).")),
    flag!("endpoints-file", String, endpoints_file, path, concat!(
        "Path to a file listing the endpoints, to run without Kubernetes ",
        "(exclusive with --pool-name and --endpoints).")),
    flag!("validate-config", Bool, validate_config, parse_bool,
        "Validate the configuration and exit; no endpoint source is needed."),
    flag!("max-request-body-bytes", Int, max_request_body_bytes, positive::<u64>,
        "Largest request body, in bytes, buffered to pick an endpoint."),
    flag!("request-body-mode-fallback", String, body_mode_fallback, body_mode, concat!(
        "Body mode assumed when the gateway does not announce one in the ext_proc ",
        "protocol_config ('full-duplex-streamed' or 'buffered').")),
    flag!("max-endpoints", Int, max_endpoints, positive::<usize>,
        "Maximum number of endpoints the datastore accepts."),
];

spelled_enum!(
    /// Log line format (`-zap-encoder`).
    LogEncoder { Json = "json", Console = "console", }
);
spelled_enum!(
    /// Minimum level that gets a stacktrace (`-zap-stacktrace-level`; `warn` is only a default).
    StacktraceLevel { Info = "info", Warn = "warn", Error = "error", Panic = "panic", }
);
spelled_enum!(
    /// Timestamp format (`-zap-time-encoding`).
    TimeEncoding {
        /// Seconds since the epoch, as a float.
        Epoch = "epoch",
        /// Milliseconds since the epoch.
        Millis = "millis",
        /// Nanoseconds since the epoch.
        Nanos = "nano",
        /// ISO 8601 with millisecond precision.
        Iso8601 = "iso8601",
        /// RFC 3339 with second precision.
        Rfc3339 = "rfc3339",
        /// RFC 3339 with nanosecond precision.
        Rfc3339Nano = "rfc3339nano",
    }
);
spelled_enum!(
    /// URL scheme for scraping model servers (`--model-server-metrics-scheme`).
    MetricsScheme { Http = "http", Https = "https", }
);
spelled_enum!(
    /// Request body mode assumed when ext_proc protocol_config does not announce one.
    BodyModeFallback { FullDuplexStreamed = "full-duplex-streamed", Buffered = "buffered", }
);

/// A `-zap-log-level` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZapLevel {
    /// `debug`: verbosity 1.
    Debug,
    /// `info`: verbosity 0.
    Info,
    /// `error`: errors only (verbosity -2).
    Error,
    /// `panic`: nearly silent (verbosity -4).
    Panic,
    /// An integer 1..=127: custom debug level N, i.e. verbosity N.
    Verbosity(u8),
}

impl ZapLevel {
    /// The equivalent `-v` verbosity: the negated zap level.
    pub fn verbosity(self) -> i32 {
        match self {
            ZapLevel::Debug => 1,
            ZapLevel::Info => 0,
            ZapLevel::Error => -2,
            ZapLevel::Panic => -4,
            ZapLevel::Verbosity(n) => i32::from(n),
        }
    }
}

impl Show for MetricSpec {
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Show for ZapLevel {
    fn show(&self) -> String {
        match self {
            ZapLevel::Debug => "debug".to_owned(),
            ZapLevel::Info => "info".to_owned(),
            ZapLevel::Error => "error".to_owned(),
            ZapLevel::Panic => "panic".to_owned(),
            ZapLevel::Verbosity(n) => n.to_string(),
        }
    }
}

// Value parsers used by the flag table. Each returns the typed value or a reason saying what is
// allowed; the caller prefixes `invalid value "v" for flag -name: `.

fn text(value: &str) -> Result<String, String> {
    Ok(value.to_owned())
}

fn optional_text(value: &str) -> Result<Option<String>, String> {
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

fn path(value: &str) -> Result<Option<PathBuf>, String> {
    Ok((!value.is_empty()).then(|| PathBuf::from(value)))
}

fn namespace(value: &str) -> Result<String, String> {
    Ok(if value.is_empty() { "default" } else { value }.to_owned())
}

fn pool_group(value: &str) -> Result<String, String> {
    if POOL_GROUPS.contains(&value) {
        return Ok(value.to_owned());
    }
    Err(format!(
        "must be {:?} or {:?}",
        POOL_GROUPS[0], POOL_GROUPS[1]
    ))
}

fn port(value: &str) -> Result<u16, String> {
    u16::try_from(parse_int(value)?)
        .map_err(|_| "out of range: a port must be 0..=65535".to_owned())
}

fn positive<T: TryFrom<i64>>(value: &str) -> Result<T, String> {
    match parse_int(value)? {
        n if n <= 0 => Err("must be > 0".to_owned()),
        n => T::try_from(n).map_err(|_| "value out of range".to_owned()),
    }
}

fn verbosity(value: &str) -> Result<i32, String> {
    match parse_int(value)? {
        n if n < 0 => Err("must be >= 0".to_owned()),
        n => i32::try_from(n).map_err(|_| "value out of range".to_owned()),
    }
}

fn positive_duration(value: &str) -> Result<Duration, String> {
    const ALLOWED: &str = "must be a duration > 0, such as 50ms, 2s or 1m30s";
    match parse_go_duration(value) {
        Ok(d) if d.is_zero() => Err(ALLOWED.to_owned()),
        Ok(d) => Ok(d),
        Err(DurationError::Negative(_)) => Err(ALLOWED.to_owned()),
        Err(e) => Err(format!("{e}; {ALLOWED}")),
    }
}

fn metric(value: &str) -> Result<Option<MetricSpec>, String> {
    MetricSpec::parse(value).map_err(|e| format!("{e}; an empty value disables the metric"))
}

fn metrics_path(value: &str) -> Result<String, String> {
    if !value.starts_with('/') {
        return Err("must start with '/', e.g. /metrics".to_owned());
    }
    Ok(value.to_owned())
}

fn scheme(value: &str) -> Result<MetricsScheme, SetError> {
    MetricsScheme::lookup(value).ok_or_else(|| {
        SetError::Message(format!(
            "unexpected {value:?} value for \"model-server-metrics-scheme\" flag, it can only be set to 'http' or 'https'"
        ))
    })
}

fn body_mode(value: &str) -> Result<BodyModeFallback, String> {
    BodyModeFallback::lookup(value)
        .ok_or_else(|| "must be 'full-duplex-streamed' or 'buffered'".to_owned())
}

// The zap flags are case-insensitive, as in controller-runtime.

fn encoder(value: &str) -> Result<Option<LogEncoder>, String> {
    match LogEncoder::lookup(&value.to_ascii_lowercase()) {
        Some(e) => Ok(Some(e)),
        None => Err("must be 'json' or 'console'".to_owned()),
    }
}

fn zap_level(value: &str) -> Result<Option<ZapLevel>, String> {
    let level = match value.to_ascii_lowercase().as_str() {
        "debug" => ZapLevel::Debug,
        "info" => ZapLevel::Info,
        "error" => ZapLevel::Error,
        "panic" => ZapLevel::Panic,
        other => match other.parse::<i64>().ok().map(u8::try_from) {
            Some(Ok(n @ 1..=127)) => ZapLevel::Verbosity(n),
            _ => {
                return Err(
                    "must be 'debug', 'info', 'error', 'panic' or an integer 1..=127".to_owned(),
                );
            }
        },
    };
    Ok(Some(level))
}

fn stacktrace_level(value: &str) -> Result<Option<StacktraceLevel>, String> {
    match StacktraceLevel::lookup(&value.to_ascii_lowercase()) {
        Some(StacktraceLevel::Warn) | None => Err("must be 'info', 'error' or 'panic'".to_owned()),
        level => Ok(level),
    }
}

fn time_encoding(value: &str) -> Result<Option<TimeEncoding>, String> {
    // controller-runtime spells it "nanos" in code and "nano" in its help; accept both.
    match value.to_ascii_lowercase().as_str() {
        "nanos" => Ok(Some(TimeEncoding::Nanos)),
        lower => TimeEncoding::lookup(lower).map(Some).ok_or_else(|| {
            "must be 'epoch', 'millis', 'nano', 'iso8601', 'rfc3339' or 'rfc3339nano'".to_owned()
        }),
    }
}

fn endpoint_list(value: &str) -> Result<Vec<SocketAddr>, String> {
    const ALLOWED: &str = "expected a comma-separated list of IPv4:port or [IPv6]:port";
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let (mut endpoints, mut seen) = (Vec::new(), HashSet::new());
    for item in value.split(',').map(str::trim) {
        let addr: SocketAddr = item
            .parse()
            .map_err(|_| format!("{item:?} is not an IP address with a port; {ALLOWED}"))?;
        if addr.port() == 0 {
            return Err(format!("{item:?} has port 0; ports must be 1..=65535"));
        }
        if !seen.insert(addr) {
            return Err(format!(
                "{item:?} is listed twice; each endpoint must be unique"
            ));
        }
        endpoints.push(addr);
    }
    Ok(endpoints)
}
