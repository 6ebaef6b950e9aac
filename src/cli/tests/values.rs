//! Flag values: defaults, typed values, invalid values and the logging options.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{
    BodyModeFallback, CliError, EndpointSource, LogEncoder, MetricsScheme, Options,
    ResponseBodyOverride, SaturationThresholds, StacktraceLevel, TimeEncoding, parse,
};

use super::{args, env, err, ok, spec};

#[test]
fn every_flag_default() {
    let want = [
        ("bind-address", "0.0.0.0"),
        ("cache-info-metric", "vllm:cache_config_info"),
        ("cert-path", ""),
        ("config-file", ""),
        ("config-text", ""),
        ("decision-records", "false"),
        ("decision-records-file", ""),
        ("enable-pprof", "true"),
        ("endpoints", ""),
        ("endpoints-file", ""),
        ("engine-type", "vllm"),
        ("grpc-bind-address", ""),
        ("grpc-health-bind-address", ""),
        ("grpc-health-port", "9003"),
        ("grpc-port", "9002"),
        ("ha-enable-leader-election", "false"),
        ("health-checking", "false"),
        ("kubeconfig", ""),
        (
            "kv-cache-usage-percentage-metric",
            "vllm:gpu_cache_usage_perc",
        ),
        ("lora-info-metric", "vllm:lora_requests_info"),
        ("max-buffered-request-bytes", "1073741824"),
        ("max-endpoints", "10000"),
        ("max-request-body-bytes", "67108864"),
        ("metrics-bind-address", ""),
        ("metrics-endpoint-auth", "true"),
        ("metrics-port", "9090"),
        ("metrics-staleness-threshold", "2s"),
        ("model-server-metrics-https-insecure-skip-verify", "true"),
        ("model-server-metrics-max-bytes", "16777216"),
        ("model-server-metrics-path", "/metrics"),
        ("model-server-metrics-port", "0"),
        ("model-server-metrics-scheme", "http"),
        ("model-server-metrics-timeout", "1s"),
        ("objectives-file", ""),
        ("pool-group", "inference.networking.k8s.io"),
        ("pool-name", "p"),
        ("pool-namespace", "default"),
        ("print-crds", "false"),
        ("proxy-bind-address", ""),
        ("proxy-connect-timeout", "5s"),
        ("proxy-port", "0"),
        ("refresh-metrics-interval", "50ms"),
        ("refresh-prometheus-metrics-interval", "5s"),
        ("request-body-mode-fallback", "full-duplex-streamed"),
        ("request-log-file", ""),
        ("request-log-session-header", "x-session-id"),
        ("response-body-mode-override", "streamed"),
        ("secure-serving", "true"),
        ("simulate-endpoints", "0"),
        ("simulator-args", ""),
        ("total-queued-requests-metric", "vllm:num_requests_waiting"),
        ("total-running-requests-metric", "vllm:num_requests_running"),
        ("tracing", "false"),
        ("v", "2"),
        ("validate-config", "false"),
        ("zap-devel", "true"),
        ("zap-encoder", ""),
        ("zap-log-level", ""),
        ("zap-stacktrace-level", ""),
        ("zap-time-encoding", ""),
    ];
    let got = ok(&["--pool-name", "p"]).flag_values();
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn typed_defaults_and_resolution() {
    let o = ok(&["--pool-name", "p"]);
    assert_eq!(
        (o.grpc_port, o.grpc_health_port, o.metrics_port),
        (9002, 9003, 9090)
    );
    assert_eq!(o.refresh_metrics_interval, Duration::from_millis(50));
    assert_eq!(
        o.total_queued_requests_metric,
        spec("vllm:num_requests_waiting")
    );
    assert_eq!(o.model_server_metrics_scheme, MetricsScheme::Http);
    assert_eq!(o.body_mode_fallback, BodyModeFallback::FullDuplexStreamed);
    assert_eq!(o.response_body_override, ResponseBodyOverride::Streamed);
    assert_eq!(o.max_request_body_bytes, 64 * 1024 * 1024);
    assert_eq!(o.log.verbosity, 2);
    assert_eq!(o.log.encoder, LogEncoder::Console);
    assert_eq!(o.log.stacktrace_level, StacktraceLevel::Warn);
    assert_eq!(o.log.time_encoding, TimeEncoding::Rfc3339);
    assert_eq!(o.saturation, SaturationThresholds::default());
    assert!(!o.enable_experimental_datalayer_v2 && o.warnings.is_empty());
    let want = EndpointSource::Kubernetes {
        pool_name: "p".into(),
        namespace: "default".into(),
        group: "inference.networking.k8s.io".into(),
    };
    assert_eq!(o.endpoint_source, want);
    assert_eq!(
        Options::for_tests().endpoint_source,
        EndpointSource::Kubernetes {
            pool_name: "test-pool".into(),
            namespace: "default".into(),
            group: "inference.networking.k8s.io".into(),
        }
    );
}

#[test]
fn invalid_values_exit_1_naming_the_flag() {
    let cases = [
        (
            "--grpc-port=abc",
            "invalid value \"abc\" for flag -grpc-port: parse error: expected an integer",
        ),
        (
            "--grpc-port=70000",
            "invalid value \"70000\" for flag -grpc-port: out of range: a port must be 0..=65535",
        ),
        (
            "--grpc-health-port=-1",
            "invalid value \"-1\" for flag -grpc-health-port: out of range",
        ),
        (
            "--metrics-port=1.5",
            "invalid value \"1.5\" for flag -metrics-port: parse error",
        ),
        (
            "--model-server-metrics-port=65536",
            "for flag -model-server-metrics-port: out of range",
        ),
        ("--v=-1", "invalid value \"-1\" for flag -v: must be >= 0"),
        (
            "--max-endpoints=0",
            "invalid value \"0\" for flag -max-endpoints: must be > 0",
        ),
        (
            "--max-request-body-bytes=-5",
            "for flag -max-request-body-bytes: must be > 0",
        ),
        (
            "--refresh-metrics-interval=10",
            "for flag -refresh-metrics-interval: time: missing unit in duration \"10\"",
        ),
        (
            "--refresh-metrics-interval=0",
            "invalid value \"0\" for flag -refresh-metrics-interval: must be a duration > 0",
        ),
        (
            "--metrics-staleness-threshold=-1s",
            "for flag -metrics-staleness-threshold: must be a duration > 0",
        ),
        (
            "--refresh-prometheus-metrics-interval=5d",
            "time: unknown unit \"d\" in duration \"5d\"",
        ),
        (
            "--lora-info-metric=m{}",
            "invalid value \"m{}\" for flag -lora-info-metric: invalid metric spec \"m{}\"",
        ),
        (
            "--total-queued-requests-metric=m{a}",
            "for flag -total-queued-requests-metric: invalid label pair \"a\"",
        ),
        (
            "--cache-info-metric=9bad",
            "for flag -cache-info-metric: invalid metric name \"9bad\"",
        ),
        (
            "--pool-group=example.com",
            "for flag -pool-group: must be \"inference.networking.k8s.io\" or \"inference.networking.x-k8s.io\"",
        ),
        (
            "--model-server-metrics-path=metrics",
            "for flag -model-server-metrics-path: must start with '/'",
        ),
        (
            "--model-server-metrics-scheme=ftp",
            "unexpected \"ftp\" value for \"model-server-metrics-scheme\" flag, it can only be set to 'http' or 'https'",
        ),
        (
            "--model-server-metrics-scheme=HTTP",
            "unexpected \"HTTP\" value",
        ),
        (
            "--request-body-mode-fallback=streamed",
            "for flag -request-body-mode-fallback: must be 'full-duplex-streamed' or 'buffered'",
        ),
        (
            "--response-body-mode-override=buffered",
            "for flag -response-body-mode-override: must be 'streamed', 'none' or 'off'",
        ),
        (
            "--zap-encoder=text",
            "for flag -zap-encoder: must be 'json' or 'console'",
        ),
        (
            "--zap-log-level=0",
            "for flag -zap-log-level: must be 'debug', 'info', 'error', 'panic' or an integer 1..=127",
        ),
        ("--zap-log-level=warn", "for flag -zap-log-level:"),
        (
            "--zap-stacktrace-level=warn",
            "for flag -zap-stacktrace-level: must be 'info', 'error' or 'panic'",
        ),
        (
            "--zap-time-encoding=unix",
            "for flag -zap-time-encoding: must be 'epoch'",
        ),
        (
            "--endpoints=10.0.0.1",
            "for flag -endpoints: \"10.0.0.1\" is not an IP address with a port",
        ),
        (
            "--endpoints=host:80",
            "for flag -endpoints: \"host:80\" is not an IP address with a port",
        ),
        (
            "--endpoints=10.0.0.1:80,",
            "for flag -endpoints: \"\" is not an IP address with a port",
        ),
        (
            "--endpoints=10.0.0.1:0",
            "for flag -endpoints: \"10.0.0.1:0\" has port 0",
        ),
        (
            "--endpoints=10.0.0.1:80, 10.0.0.1:80",
            "for flag -endpoints: \"10.0.0.1:80\" is listed twice",
        ),
        (
            "--request-log-session-header=",
            "for flag -request-log-session-header: must be a header name",
        ),
        (
            "--request-log-session-header=x session",
            "for flag -request-log-session-header: ' ' cannot be part of a header name",
        ),
    ];
    for (arg, want) in cases {
        let e = err(&["--pool-name=p", arg]);
        assert_eq!(e.exit_code(), 1, "{arg}");
        assert!(matches!(e, CliError::Invalid { .. }), "{arg}");
        assert!(e.to_string().contains(want), "{arg}: got {e}");
        assert_eq!(e.stderr_text().lines().count(), 1, "{arg}");
    }
}

#[test]
fn typed_values() {
    let o = ok(&[
        "--pool-name=p",
        "--pool-namespace=",
        "--pool-group=inference.networking.x-k8s.io",
        "--refresh-metrics-interval=1m30s",
        "--kv-cache-usage-percentage-metric= m{a=b} ",
        "--lora-info-metric=",
        "--model-server-metrics-scheme=https",
        "--request-body-mode-fallback=buffered",
        "--response-body-mode-override=none",
        "--cert-path=/certs",
        "--config-text=x: 1",
        "--max-request-body-bytes=1_000",
        "--request-log-file=/var/log/requests.jsonl",
        "--request-log-session-header=X-Conversation_ID",
    ]);
    assert_eq!(o.pool_namespace, "default");
    assert_eq!(o.pool_group, "inference.networking.x-k8s.io");
    assert_eq!(o.refresh_metrics_interval, Duration::from_secs(90));
    assert_eq!(o.kv_cache_usage_percentage_metric, spec("m{a=b}"));
    assert_eq!(o.lora_info_metric, None);
    assert_eq!(o.model_server_metrics_scheme, MetricsScheme::Https);
    assert_eq!(o.body_mode_fallback, BodyModeFallback::Buffered);
    assert_eq!(o.response_body_override, ResponseBodyOverride::None);
    assert_eq!(o.cert_path, Some(PathBuf::from("/certs")));
    assert_eq!(o.config_text.as_deref(), Some("x: 1"));
    assert_eq!(o.max_request_body_bytes, 1000);
    assert_eq!(
        o.request_log_file,
        Some(PathBuf::from("/var/log/requests.jsonl"))
    );
    assert_eq!(o.request_log_session_header, "x-conversation_id");
    assert!(
        o.flag_values()
            .contains(&("lora-info-metric".into(), String::new()))
    );
}

#[test]
fn log_options_resolution() {
    let log = |list: &[&str]| {
        let mut all = args(&["--pool-name=p"]);
        all.extend(args(list));
        parse(all, &env(&[])).unwrap().log
    };
    assert_eq!(log(&["-v", "5"]).verbosity, 5);
    let cases = [
        ("debug", 1),
        ("INFO", 0),
        ("error", -2),
        ("panic", -4),
        ("3", 3),
        ("+7", 7),
    ];
    for (level, verbosity) in cases {
        let flag = format!("--zap-log-level={level}");
        assert_eq!(log(&["-v=9", &flag]).verbosity, verbosity, "{level}");
    }

    let prod = log(&["--zap-devel=false"]);
    assert_eq!(
        (prod.encoder, prod.stacktrace_level),
        (LogEncoder::Json, StacktraceLevel::Error)
    );
    let custom = log(&[
        "--zap-devel=false",
        "--zap-encoder=Console",
        "--zap-stacktrace-level=PANIC",
        "--zap-time-encoding=nanos",
    ]);
    assert_eq!(custom.encoder, LogEncoder::Console);
    assert_eq!(custom.stacktrace_level, StacktraceLevel::Panic);
    assert_eq!(custom.time_encoding, TimeEncoding::Nanos);
    for (text, want) in [
        ("epoch", TimeEncoding::Epoch),
        ("millis", TimeEncoding::Millis),
        ("nano", TimeEncoding::Nanos),
        ("ISO8601", TimeEncoding::Iso8601),
        ("rfc3339", TimeEncoding::Rfc3339),
        ("rfc3339nano", TimeEncoding::Rfc3339Nano),
    ] {
        let flag = format!("--zap-time-encoding={text}");
        assert_eq!(log(&[&flag]).time_encoding, want, "{text}");
    }
}

#[test]
fn bind_addresses_default_to_bind_address_and_take_ipv4_and_ipv6() {
    use crate::cli::Listener;
    use std::net::IpAddr;
    let all = [
        Listener::Grpc,
        Listener::GrpcHealth,
        Listener::Metrics,
        Listener::Proxy,
    ];
    let ip = |s: &str| s.parse::<IpAddr>().expect("an IP");
    let o = ok(&["--pool-name", "p"]);
    for listener in all {
        assert_eq!(o.bind_address_of(listener), ip("0.0.0.0"), "{listener:?}");
    }
    let o = ok(&["--pool-name", "p", "--bind-address", "127.0.0.1"]);
    for listener in all {
        assert_eq!(o.bind_address_of(listener), ip("127.0.0.1"), "{listener:?}");
    }
    let o = ok(&[
        "--pool-name",
        "p",
        "--bind-address=::1",
        "--grpc-bind-address=0.0.0.0",
        "--grpc-health-bind-address=[::]",
        "--metrics-bind-address=10.1.2.3",
        "--proxy-bind-address=fe80::1",
    ]);
    assert_eq!(o.bind_address, ip("::1"));
    assert_eq!(o.bind_address_of(Listener::Grpc), ip("0.0.0.0"));
    assert_eq!(o.bind_address_of(Listener::GrpcHealth), ip("::"));
    assert_eq!(o.bind_address_of(Listener::Metrics), ip("10.1.2.3"));
    assert_eq!(o.bind_address_of(Listener::Proxy), ip("fe80::1"));
}

#[test]
fn bad_bind_addresses_and_proxy_flags_name_the_flag() {
    for (arg, want) in [
        (
            "--bind-address=localhost",
            "invalid value \"localhost\" for flag -bind-address: must be an IPv4 or IPv6 address",
        ),
        (
            "--grpc-bind-address=1.2.3",
            "invalid value \"1.2.3\" for flag -grpc-bind-address: must be an IPv4",
        ),
        (
            "--metrics-bind-address=127.0.0.1:9090",
            "for flag -metrics-bind-address: must be an IPv4",
        ),
        (
            "--proxy-bind-address=[::1",
            "for flag -proxy-bind-address: must be",
        ),
        (
            "--grpc-health-bind-address=::g",
            "for flag -grpc-health-bind-address",
        ),
        ("--bind-address=", "for flag -bind-address: must be"),
        ("--proxy-port=70000", "for flag -proxy-port: out of range"),
        (
            "--proxy-connect-timeout=0s",
            "for flag -proxy-connect-timeout: must be a duration > 0",
        ),
    ] {
        let message = err(&["--pool-name", "p", arg]).to_string();
        assert!(message.contains(want), "{arg}: {message}");
    }
    let o = ok(&[
        "--pool-name",
        "p",
        "--proxy-port",
        "8081",
        "--proxy-connect-timeout",
        "250ms",
    ]);
    assert_eq!(
        (o.proxy_port, o.proxy_connect_timeout),
        (8081, Duration::from_millis(250))
    );
}
