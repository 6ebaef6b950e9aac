//! Tests of the EPP command line: Go `flag` semantics, every flag, validation and environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::goflag::{parse_bool, parse_int};
use super::*;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ok(list: &[&str]) -> Options {
    parse(args(list), &env(&[])).unwrap_or_else(|e| panic!("{list:?}: {e}"))
}

fn err(list: &[&str]) -> CliError {
    parse(args(list), &env(&[])).unwrap_err()
}

fn spec(name: &str) -> Option<MetricSpec> {
    MetricSpec::parse(name).unwrap()
}

#[test]
fn every_flag_default() {
    let want = [
        ("cache-info-metric", "vllm:cache_config_info"),
        ("cert-path", ""),
        ("config-file", ""),
        ("config-text", ""),
        ("enable-pprof", "true"),
        ("endpoints", ""),
        ("endpoints-file", ""),
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
        ("max-endpoints", "10000"),
        ("max-request-body-bytes", "67108864"),
        ("metrics-port", "9090"),
        ("metrics-staleness-threshold", "2s"),
        ("model-server-metrics-https-insecure-skip-verify", "true"),
        ("model-server-metrics-path", "/metrics"),
        ("model-server-metrics-port", "0"),
        ("model-server-metrics-scheme", "http"),
        ("pool-group", "inference.networking.k8s.io"),
        ("pool-name", "p"),
        ("pool-namespace", "default"),
        ("refresh-metrics-interval", "50ms"),
        ("refresh-prometheus-metrics-interval", "5s"),
        ("request-body-mode-fallback", "full-duplex-streamed"),
        ("secure-serving", "true"),
        ("total-queued-requests-metric", "vllm:num_requests_waiting"),
        ("total-running-requests-metric", "vllm:num_requests_running"),
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
fn table_is_consistent() {
    let defaults = Options::default();
    let mut names: Vec<&str> = FLAGS.iter().map(|d| d.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), FLAGS.len(), "duplicate flag names");
    for def in FLAGS {
        assert!(!def.help.is_empty(), "{} has no help", def.name);
        // Every shown default must be accepted by its own parser and give the same value back.
        let shown = (def.get)(&defaults);
        if shown.is_empty() && def.kind == goflag::Kind::Value {
            continue; // Unset zap flags have no spelling, as in Go.
        }
        let mut copy = defaults.clone();
        (def.set)(&mut copy, &shown).unwrap_or_else(|e| panic!("{}: {e:?}", def.name));
        assert_eq!(copy, defaults, "{} default does not round-trip", def.name);
    }
}

#[test]
fn value_syntaxes() {
    for list in [
        &["--pool-name=p", "--grpc-port=1234"][..],
        &["-pool-name=p", "-grpc-port=1234"],
        &["-pool-name", "p", "-grpc-port", "1234"],
        &["--pool-name", "p", "--grpc-port", "1234"],
        &["--pool-name", "p", "--grpc-port", "0x4d2"],
        &["--pool-name", "p", "--grpc-port", "+1_234"],
        &["--pool-name", "p", "--grpc-port", "02322"],
    ] {
        let o = ok(list);
        assert_eq!((o.pool_name.as_str(), o.grpc_port), ("p", 1234), "{list:?}");
    }
    // A value may start with '-' when given as the next argument, as in Go.
    assert_eq!(ok(&["--pool-name", "-p"]).pool_name, "-p");
    assert_eq!(ok(&["--pool-name=a=b"]).pool_name, "a=b");
}

#[test]
fn bool_forms() {
    let cases = [
        ("--health-checking", true),
        ("-health-checking", true),
        ("--health-checking=true", true),
        ("--health-checking=1", true),
        ("--health-checking=t", true),
        ("--health-checking=T", true),
        ("--health-checking=TRUE", true),
        ("--health-checking=True", true),
        ("--health-checking=false", false),
        ("--health-checking=0", false),
        ("--health-checking=f", false),
        ("--health-checking=F", false),
        ("--health-checking=FALSE", false),
        ("--health-checking=False", false),
    ];
    for (flag, want) in cases {
        assert_eq!(ok(&["--pool-name=p", flag]).health_checking, want, "{flag}");
    }
    assert!(!ok(&["--pool-name=p", "--secure-serving=false"]).secure_serving);
    let e = err(&["--pool-name=p", "--secure-serving=yes"]);
    assert_eq!(e.exit_code(), 1);
    assert!(
        e.to_string()
            .starts_with("invalid boolean value \"yes\" for -secure-serving:"),
        "{e}"
    );
}

#[test]
fn positional_arguments_are_rejected() {
    let e = err(&["--pool-name=p", "--secure-serving", "false"]);
    assert_eq!(e.exit_code(), 1);
    assert_eq!(
        e.to_string(),
        "unexpected argument \"false\" after flag -secure-serving: boolean flags take their value as -secure-serving=false"
    );
    let cases = [
        (
            &["--pool-name=p", "extra", "--grpc-port=1"][..],
            "unexpected arguments \"extra\", \"--grpc-port=1\":",
        ),
        (&["--pool-name=p", "-"], "unexpected argument \"-\":"),
        (
            &["--pool-name=p", "--", "x"],
            "unexpected argument \"x\" after \"--\":",
        ),
        (
            &["--health-checking", "yes"],
            "unexpected argument \"yes\":",
        ),
    ];
    for (list, want) in cases {
        let e = err(list);
        assert!(matches!(e, CliError::Positional { .. }), "{list:?}");
        assert!(e.to_string().starts_with(want), "{list:?}: {e}");
        assert!(
            e.to_string().contains("takes no positional arguments"),
            "{e}"
        );
    }
    // A terminator with nothing after it is fine.
    assert_eq!(ok(&["--pool-name=p", "--"]).pool_name, "p");
}

#[test]
fn usage_errors_exit_2_with_usage() {
    let cases = [
        (&["--foo"][..], "flag provided but not defined: -foo"),
        (&["-foo=1"], "flag provided but not defined: -foo"),
        (
            &["--pool-name=p", "--grpc-port"],
            "flag needs an argument: -grpc-port",
        ),
        (&["---grpc-port=1"], "bad flag syntax: ---grpc-port=1"),
        (&["-=1"], "bad flag syntax: -=1"),
    ];
    for (list, want) in cases {
        let e = err(list);
        assert_eq!(e.exit_code(), 2, "{list:?}");
        assert_eq!(e.to_string(), want);
        let text = e.stderr_text();
        assert!(
            text.starts_with(&format!("{want}\nUsage of epp:\n")),
            "{text}"
        );
        assert!(text.contains("  -grpc-port int\n"), "{text}");
    }
}

#[test]
fn help_exits_0_with_usage() {
    for flag in ["-h", "-help", "--help", "--h", "-help=true"] {
        let e = err(&[flag]);
        assert_eq!(e.exit_code(), 0, "{flag}");
        assert!(
            matches!(&e, CliError::Help(u) if u.starts_with("Usage of epp:\n")),
            "{flag}"
        );
        assert_eq!(e.stderr_text(), usage());
    }
}

#[test]
fn usage_text_matches_go_format() {
    let text = usage();
    for want in [
        "  -grpc-port int\n    \tThe gRPC port used for communicating with Envoy proxy (default 9002)\n",
        "  -pool-namespace string\n    \tNamespace of the InferencePool this Endpoint Picker is associated with. (default \"default\")\n",
        "  -refresh-metrics-interval duration\n    \tinterval to refresh metrics (default 50ms)\n",
        "  -secure-serving\n    \tEnables secure serving. Defaults to true. (default true)\n",
        "  -health-checking\n    \tEnables health checking\n",
        "  -zap-encoder value\n    \tZap log encoding (one of 'json' or 'console')\n",
        "  -v int\n    \tnumber for the log level verbosity (default 2)\n",
        "  -total-queued-requests-metric string\n    \tPrometheus metric for the number of queued requests. (default \"vllm:num_requests_waiting\")\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("  -")).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), FLAGS.len());
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
        "--cert-path=/certs",
        "--config-text=x: 1",
        "--max-request-body-bytes=1_000",
    ]);
    assert_eq!(o.pool_namespace, "default");
    assert_eq!(o.pool_group, "inference.networking.x-k8s.io");
    assert_eq!(o.refresh_metrics_interval, Duration::from_secs(90));
    assert_eq!(o.kv_cache_usage_percentage_metric, spec("m{a=b}"));
    assert_eq!(o.lora_info_metric, None);
    assert_eq!(o.model_server_metrics_scheme, MetricsScheme::Https);
    assert_eq!(o.body_mode_fallback, BodyModeFallback::Buffered);
    assert_eq!(o.cert_path, Some(PathBuf::from("/certs")));
    assert_eq!(o.config_text.as_deref(), Some("x: 1"));
    assert_eq!(o.max_request_body_bytes, 1000);
    assert!(
        o.flag_values()
            .contains(&("lora-info-metric".into(), String::new()))
    );
}

#[test]
fn last_flag_wins() {
    let o = ok(&[
        "--pool-name=a",
        "--grpc-port=1",
        "-grpc-port",
        "2",
        "--pool-name=b",
    ]);
    assert_eq!((o.pool_name.as_str(), o.grpc_port), ("b", 2));
    let o = ok(&[
        "--pool-name=p",
        "--secure-serving=false",
        "--secure-serving",
    ]);
    assert!(o.secure_serving);
}

#[test]
fn upstream_argument_list_parses() {
    let o = ok(&[
        "--pool-name",
        "mistral",
        "--pool-namespace",
        "default",
        "--v",
        "4",
        "--zap-encoder",
        "json",
        "--grpc-port",
        "9002",
        "--grpc-health-port",
        "9003",
        "--config-file",
        "/config/default-plugins.yaml",
    ]);
    assert_eq!(o.pool_name, "mistral");
    assert_eq!(
        (o.log.v, o.log.verbosity, o.log.encoder),
        (4, 4, LogEncoder::Json)
    );
    assert_eq!(
        o.config_file,
        Some(PathBuf::from("/config/default-plugins.yaml"))
    );
    assert!(matches!(
        o.endpoint_source,
        EndpointSource::Kubernetes { .. }
    ));
}

#[test]
fn endpoint_source_rules() {
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    let o = ok(&["--endpoints=10.0.0.1:8000, 10.0.0.1:8001,[fd00::1]:8000"]);
    let want = vec![
        addr("10.0.0.1:8000"),
        addr("10.0.0.1:8001"),
        addr("[fd00::1]:8000"),
    ];
    assert_eq!(o.endpoint_source, EndpointSource::Static(want.clone()));
    assert_eq!(o.endpoints, want);
    assert!(o.flag_values().contains(&(
        "endpoints".into(),
        "10.0.0.1:8000,10.0.0.1:8001,[fd00::1]:8000".into()
    )));
    let o = ok(&["--endpoints-file", "/etc/epp/endpoints.yaml"]);
    let want = EndpointSource::File(PathBuf::from("/etc/epp/endpoints.yaml"));
    assert_eq!(o.endpoint_source, want);
    assert_eq!(
        ok(&["--validate-config"]).endpoint_source,
        EndpointSource::None
    );
    let o = ok(&["--validate-config", "--pool-name=p"]);
    assert!(matches!(
        o.endpoint_source,
        EndpointSource::Kubernetes { .. }
    ));

    let exactly_one = "flags --pool-name, --endpoints and --endpoints-file select the endpoint source; set exactly one";
    let missing = "required \"poolName\" flag not set (or use --endpoints / --endpoints-file for standalone mode)";
    let cases = [
        (&[][..], missing),
        (&["--pool-name="], missing),
        (&["--pool-name=p", "--endpoints=10.0.0.1:80"], exactly_one),
        (&["--pool-name=p", "--endpoints-file=f"], exactly_one),
        (
            &["--endpoints=10.0.0.1:80", "--endpoints-file=f"],
            exactly_one,
        ),
        (
            &[
                "--validate-config",
                "--endpoints=10.0.0.1:80",
                "--endpoints-file=f",
            ],
            exactly_one,
        ),
        (
            &["--endpoints=10.0.0.1:80,10.0.0.2:80", "--max-endpoints=1"],
            "flag --endpoints lists 2 endpoints, more than --max-endpoints=1",
        ),
    ];
    for (list, want) in cases {
        let e = err(list);
        assert_eq!(
            (e.exit_code(), e.to_string().as_str()),
            (1, want),
            "{list:?}"
        );
    }
}

#[test]
fn config_file_and_text_are_exclusive() {
    let e = err(&["--pool-name=p", "--config-file=a.yaml", "--config-text=x"]);
    assert_eq!(e.exit_code(), 1);
    assert_eq!(
        e.to_string(),
        "both the \"configText\" and \"configFile\" flags can not be set at the same time"
    );
    let o = ok(&["--pool-name=p", "--config-file=a.yaml", "--config-text="]);
    assert_eq!((o.config_file.is_some(), o.config_text), (true, None));
}

#[test]
fn environment_values() {
    let parse_env = |vars: &[(&str, &str)]| parse(args(&["--pool-name=p"]), &env(vars)).unwrap();
    let o = parse_env(&[
        ("SD_QUEUE_DEPTH_THRESHOLD", "12"),
        ("SD_KV_CACHE_UTIL_THRESHOLD", "0.95"),
        ("SD_METRICS_STALENESS_THRESHOLD", "1.5s"),
        ("ENABLE_EXPERIMENTAL_DATALAYER_V2", "true"),
    ]);
    let want = SaturationThresholds {
        queue_depth: 12,
        kv_cache_util: 0.95,
        metrics_staleness: Duration::from_millis(1500),
    };
    assert_eq!(
        (o.saturation, o.enable_experimental_datalayer_v2),
        (want, true)
    );
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);

    let fallbacks = [
        (
            "SD_QUEUE_DEPTH_THRESHOLD",
            "many",
            "expected an integer > 0; using the default 5",
        ),
        ("SD_QUEUE_DEPTH_THRESHOLD", "0", "using the default 5"),
        ("SD_QUEUE_DEPTH_THRESHOLD", "-3", "using the default 5"),
        (
            "SD_KV_CACHE_UTIL_THRESHOLD",
            "1",
            "between 0 and 1 (exclusive); using the default 0.8",
        ),
        ("SD_KV_CACHE_UTIL_THRESHOLD", "0", "using the default 0.8"),
        ("SD_KV_CACHE_UTIL_THRESHOLD", "NaN", "using the default 0.8"),
        (
            "SD_KV_CACHE_UTIL_THRESHOLD",
            "high",
            "using the default 0.8",
        ),
        (
            "SD_METRICS_STALENESS_THRESHOLD",
            "200",
            "using the default 200ms",
        ),
        (
            "SD_METRICS_STALENESS_THRESHOLD",
            "-1s",
            "using the default 200ms",
        ),
        (
            "SD_METRICS_STALENESS_THRESHOLD",
            "0s",
            "using the default 200ms",
        ),
        (
            "ENABLE_EXPERIMENTAL_DATALAYER_V2",
            "yes",
            "expected true or false; using the default false",
        ),
    ];
    for (key, value, want) in fallbacks {
        let o = parse_env(&[(key, value)]);
        assert_eq!(
            o.saturation,
            SaturationThresholds::default(),
            "{key}={value}"
        );
        assert!(!o.enable_experimental_datalayer_v2);
        assert_eq!(o.warnings.len(), 1, "{key}={value}");
        let prefix = format!("ignoring environment variable {key}={value:?}: ");
        assert!(o.warnings[0].starts_with(&prefix), "{}", o.warnings[0]);
        assert!(o.warnings[0].ends_with(want), "{}", o.warnings[0]);
    }
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
fn go_int_syntax() {
    let good = [
        ("0", 0),
        ("42", 42),
        ("+42", 42),
        ("-42", -42),
        ("0x1F", 31),
        ("0X1f", 31),
        ("0o17", 15),
        ("017", 15),
        ("0b101", 5),
        ("1_000", 1000),
        ("0x_1F", 31),
        ("-9223372036854775808", i64::MIN),
        ("9223372036854775807", i64::MAX),
    ];
    for (text, want) in good {
        assert_eq!(parse_int(text), Ok(want), "{text}");
    }
    for text in [
        "", "+", "-", "abc", "1.0", "08", "0x", "1__0", "_1", "1_", "0x_", " 1", "1e3",
    ] {
        let e = parse_int(text).unwrap_err();
        assert!(e.starts_with("parse error"), "{text}: {e}");
    }
    for text in [
        "9223372036854775808",
        "-9223372036854775809",
        "0x1_0000_0000_0000_0000",
    ] {
        assert!(
            parse_int(text)
                .unwrap_err()
                .starts_with("value out of range"),
            "{text}"
        );
    }
}

#[test]
fn go_bool_syntax() {
    for text in ["1", "t", "T", "TRUE", "true", "True"] {
        assert_eq!(parse_bool(text), Ok(true));
    }
    for text in ["0", "f", "F", "FALSE", "false", "False"] {
        assert_eq!(parse_bool(text), Ok(false));
    }
    for text in ["", "yes", "tRUE", "on", " true"] {
        assert!(parse_bool(text).is_err(), "{text}");
    }
}
