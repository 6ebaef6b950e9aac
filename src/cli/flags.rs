//! The flag table of the EPP and the value parsers its rows use.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use crate::cli::{
    BodyModeFallback, LogEncoder, MetricsScheme, Options, POOL_GROUPS, ResponseBodyOverride,
    StacktraceLevel, TimeEncoding, ZapLevel,
};
use epp_datalayer::metric_spec::MetricSpec;
use epp_datalayer::presets::Engine;
use epp_flags::duration::{DurationError, parse_go_duration};
use epp_flags::goflag::{flag, parse_bool, parse_int};
use epp_flags::{Flag, SetError};

/// `--engine-type`'s help, naming the engines of [`Engine::ALL`].
static ENGINE_TYPE_HELP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "Model server type whose metric names are the defaults: {}. Metric flags given \
         explicitly override them.",
        Engine::names(" or ")
    )
});

/// Every flag of the EPP, one row each: name, kind, `Options` field, value parser, help.
///
/// To add a flag: add a typed field to [`Options`] with its default in `Options::default`, then
/// one `flag!` row here naming the field and a parser (reuse one below or add a small `fn`).
/// Parsing, `-h` text with defaults and [`Options::flag_values`] follow from the row.
/// (Built on first use because one help text is generated.)
#[rustfmt::skip]
pub(super) static FLAGS: LazyLock<Vec<Flag<Options>>> = LazyLock::new(|| vec![
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
    flag!("proxy-port", Int, proxy_port, port, concat!(
        "Router mode: also serve the OpenAI HTTP API on this port and forward each request to ",
        "the endpoint the EPP picks, without a gateway (0: off).")),
    flag!("proxy-connect-timeout", Duration, proxy_connect_timeout, positive_duration,
        "Router mode: longest wait for a connection to an endpoint (then 504)."),
    flag!("bind-address", String, bind_address, ip_address, concat!(
        "IP address every listener binds (ext_proc, health, metrics, router mode) unless its ",
        "own --*-bind-address is set; 0.0.0.0 is all IPv4 interfaces, :: all interfaces.")),
    flag!("grpc-bind-address", String, grpc_bind_address, optional_ip_address,
        "IP address of the ext_proc listener (--grpc-port); default --bind-address."),
    flag!("grpc-health-bind-address", String, grpc_health_bind_address, optional_ip_address,
        "IP address of the gRPC health listener (--grpc-health-port); default --bind-address."),
    flag!("metrics-bind-address", String, metrics_bind_address, optional_ip_address,
        "IP address of the metrics listener (--metrics-port); default --bind-address."),
    flag!("proxy-bind-address", String, proxy_bind_address, optional_ip_address,
        "IP address of the router-mode listener (--proxy-port); default --bind-address."),
    flag!("metrics-endpoint-auth", Bool, metrics_endpoint_auth, parse_bool, concat!(
        "Protect /metrics with TokenReview and SubjectAccessReview when discovering through ",
        "Kubernetes (standalone modes serve it open)")),
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
    flag!("max-buffered-request-bytes", Int, max_buffered_request_bytes, positive::<u64>, concat!(
        "Request-body bytes all ext_proc streams may buffer together; a request that would ",
        "pass it gets 503.")),
    flag!("request-body-mode-fallback", String, body_mode_fallback, body_mode, concat!(
        "Body mode assumed when the gateway does not announce one in the ext_proc ",
        "protocol_config ('full-duplex-streamed' or 'buffered').")),
    flag!("response-body-mode-override", String, response_body_override, response_override, concat!(
        "When the gateway buffers both bodies, ask it (ext_proc mode_override, applied where ",
        "allow_mode_override is true) to send the response body 'streamed' (responses stream ",
        "again; usage still counted), 'none' (the EPP never sees it; tokens not counted), or ",
        "'off' (keep the gateway's modes).")),
    flag!("max-endpoints", Int, max_endpoints, positive::<usize>,
        "Maximum number of endpoints the datastore accepts."),
    flag!("model-server-metrics-timeout", Duration, model_server_metrics_timeout, positive_duration,
        "Longest one scrape of a model server's metrics may take before it counts as failed."),
    flag!("model-server-metrics-max-bytes", Int, model_server_metrics_max_bytes, positive::<usize>,
        "Largest model-server metrics page read; a larger page is a failed scrape."),
    flag!("simulator-args", String, simulator_args, text, concat!(
        "epp-sim flags for the --simulate-endpoints servers, e.g. \"--max-num-seqs 8 ",
        "--time-scale 0.5\" (see epp-sim -h).")),
    flag!("engine-type", String, engine_type, engine, ENGINE_TYPE_HELP.as_str()),
    flag!("decision-records", Bool, decision_records, parse_bool, concat!(
        "Log one structured record per request: candidates, filters, each scorer's raw and ",
        "weighted scores, the pick and its reason, the time spent (no prompt text).")),
    flag!("decision-records-file", String, decision_records_file, path,
        "Append the decision records to this file as JSON lines (implies recording)."),
    flag!("request-log-file", String, request_log_file, path, concat!(
        "Append one JSON line per routed request when its response ends: arrival, model, ",
        "prompt block hashes (never prompt text), token counts, session; for replay in epp-lab.")),
    flag!("request-log-session-header", String, request_log_session_header, header_name,
        "Header whose value --request-log-file records as the request's session."),
    flag!("objectives-file", String, objectives_file, path, concat!(
        "Standalone mode: a YAML or JSON list of {name, priority} objectives, re-read when it ",
        "changes (requests name one with x-gateway-inference-objective).")),
    flag!("print-crds", Bool, print_crds, parse_bool,
        "Print the InferencePool and InferenceObjective CRDs this EPP reads, as YAML, and exit."),
    flag!("tracing", Bool, tracing, parse_bool, concat!(
        "Enables emitting traces over OTLP/gRPC, configured by the standard OTEL_* variables ",
        "(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, ",
        "OTEL_TRACES_SAMPLER_ARG). Unless given, on exactly when OTEL_EXPORTER_OTLP_ENDPOINT ",
        "or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.")),
    flag!("simulate-endpoints", Int, simulate_endpoints, simulated_count, concat!(
        "Start this many simulated vLLM servers in-process on loopback and use them as the pool ",
        "(exclusive with --pool-name, --endpoints and --endpoints-file).")),
]);

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

/// An HTTP header name (RFC 9110 token), lowercased as the gateway sends it.
fn header_name(value: &str) -> Result<String, String> {
    const TOKEN_PUNCTUATION: &[u8] = b"!#$%&'*+-.^_`|~";
    if value.is_empty() {
        return Err("must be a header name, e.g. x-session-id".to_owned());
    }
    if let Some(c) = value.chars().find(|c| {
        !(c.is_ascii_alphanumeric()
            || u8::try_from(*c).is_ok_and(|b| TOKEN_PUNCTUATION.contains(&b)))
    }) {
        return Err(format!("{c:?} cannot be part of a header name"));
    }
    Ok(value.to_ascii_lowercase())
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

/// An IPv4 or IPv6 literal (`::1` or `[::1]`).
fn ip_address(value: &str) -> Result<IpAddr, String> {
    let bare = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value);
    bare.parse().map_err(|_| {
        "must be an IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0, ::1 or ::".to_owned()
    })
}

/// [`ip_address`], or empty for "the default".
fn optional_ip_address(value: &str) -> Result<Option<IpAddr>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    ip_address(value).map(Some)
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

fn engine(value: &str) -> Result<Engine, String> {
    value
        .parse()
        .map_err(|e: epp_datalayer::presets::UnknownEngine| e.to_string())
}

/// `--simulate-endpoints`: 0 (off) to 256.
fn simulated_count(value: &str) -> Result<usize, String> {
    match parse_int(value)? {
        n @ 0..=256 => usize::try_from(n).map_err(|_| "value out of range".to_owned()),
        _ => Err("must be between 0 and 256".to_owned()),
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

fn response_override(value: &str) -> Result<ResponseBodyOverride, String> {
    ResponseBodyOverride::lookup(value)
        .ok_or_else(|| "must be 'streamed', 'none' or 'off'".to_owned())
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
