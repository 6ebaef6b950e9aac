//! Tests of the zap-compatible log output: encodings, span fields, time, numbers, filters.

use time::OffsetDateTime;
use tracing_subscriber::Registry;

use super::format::{encode_time, logger_name, push_json_float};
use super::*;
use crate::telemetry::go_float::write_go_float;

fn fixed_clock() -> OffsetDateTime {
    // 2024-03-05T06:07:08.120300000Z
    OffsetDateTime::from_unix_timestamp_nanos(1_709_618_828_120_300_000).expect("valid timestamp")
}

fn settings(encoder: LogEncoder, time_encoding: TimeEncoding, verbosity: i32) -> LogSettings {
    LogSettings {
        verbosity,
        encoder,
        time_encoding,
        ..LogSettings::default()
    }
}

/// Runs `f` with a subscriber formatting into a buffer at a fixed time.
fn capture(settings: &LogSettings, f: impl FnOnce()) -> Vec<String> {
    let logs = CapturedLogs::new();
    let level = settings.level_filter();
    let filter = Targets::new()
        .with_default(std::cmp::min(level, LevelFilter::INFO))
        .with_target("epp", level)
        .with_target(env!("CARGO_CRATE_NAME"), level);
    let layer = ZapLayer::new(settings.encoder, settings.time_encoding, logs.clone())
        .with_clock(fixed_clock)
        .with_filter(filter);
    let subscriber = Registry::default().with(layer);
    tracing::subscriber::with_default(subscriber, f);
    logs.lines()
}

#[test]
fn json_key_order_and_values() {
    let lines = capture(
        &settings(LogEncoder::Json, TimeEncoding::Rfc3339, 2),
        || {
            tracing::info!(
                target: "epp_extproc::server",
                pod = "vllm-0",
                count = 3,
                negative = -4,
                ratio = 0.5,
                ok = true,
                addr = %"10.0.0.1:8000",
                dbg = ?vec![1, 2],
                "Request handled"
            );
        },
    );
    assert_eq!(
        lines,
        vec![
            r#"{"level":"info","ts":"2024-03-05T06:07:08Z","logger":"extproc.server","msg":"Request handled","pod":"vllm-0","count":3,"negative":-4,"ratio":0.5,"ok":true,"addr":"10.0.0.1:8000","dbg":"[1, 2]"}"#
        ]
    );
}

#[test]
fn json_levels_and_escaping() {
    let lines = capture(&settings(LogEncoder::Json, TimeEncoding::Nanos, 5), || {
        tracing::error!(target: "epp_core::director", error = "boom \"x\"\n", "failed\tbadly");
        tracing::warn!(target: "epp_core::director", "w");
        tracing::debug!(target: "epp_core::director", "d");
        tracing::trace!(target: "epp_core::director", "t");
        tracing::info!(target: "epp", ctl = "\u{1}", "root");
    });
    let ns = "1709618828120300000";
    assert_eq!(
        lines,
        vec![
            format!(
                r#"{{"level":"error","ts":{ns},"logger":"director","msg":"failed\tbadly","error":"boom \"x\"\n"}}"#
            ),
            format!(r#"{{"level":"warn","ts":{ns},"logger":"director","msg":"w"}}"#),
            format!(r#"{{"level":"debug","ts":{ns},"logger":"director","msg":"d"}}"#),
            format!(r#"{{"level":"trace","ts":{ns},"logger":"director","msg":"t"}}"#),
            format!(r#"{{"level":"info","ts":{ns},"logger":"epp","msg":"root","ctl":"\u0001"}}"#),
        ]
    );
}

#[test]
fn json_is_valid_and_error_values_are_strings() {
    let err = std::io::Error::other("disk on fire");
    let lines = capture(
        &settings(LogEncoder::Json, TimeEncoding::Rfc3339, 2),
        || {
            tracing::error!(target: "epp::x", error = &err as &(dyn std::error::Error + 'static), "oops");
        },
    );
    let value: serde_json::Value = serde_json::from_str(&lines[0]).expect("valid JSON");
    assert_eq!(value["error"], "disk on fire");
    assert_eq!(value["msg"], "oops");
}

#[test]
fn span_fields_are_inherited_with_dashed_names() {
    let lines = capture(
        &settings(LogEncoder::Json, TimeEncoding::Rfc3339, 2),
        || {
            let id = "abc-123";
            let outer =
                tracing::info_span!("request", "x-request-id" = %id, model = tracing::field::Empty);
            let _outer = outer.enter();
            outer.record("model", "llama");
            let inner = tracing::info_span!("schedule", attempt = 1);
            let _inner = inner.enter();
            tracing::info!(target: "epp_core::scheduling", { "picked-endpoint" = "10.0.0.7", n = 2 }, "Scheduled");
        },
    );
    assert_eq!(
        lines,
        vec![
            r#"{"level":"info","ts":"2024-03-05T06:07:08Z","logger":"scheduling","msg":"Scheduled","x-request-id":"abc-123","model":"llama","attempt":1,"picked-endpoint":"10.0.0.7","n":2}"#
        ]
    );
}

#[test]
fn console_format() {
    let lines = capture(
        &settings(LogEncoder::Console, TimeEncoding::Rfc3339, 2),
        || {
            tracing::info_span!("request", "x-request-id" = "r1").in_scope(|| {
                tracing::info!(target: "epp_extproc", n = 2, "Got request");
            });
            tracing::warn!(target: "epp_extproc", "No fields");
        },
    );
    assert_eq!(
        lines,
        vec![
            "2024-03-05T06:07:08Z\tINFO\textproc\tGot request\t{\"x-request-id\": \"r1\", \"n\": 2}",
            "2024-03-05T06:07:08Z\tWARN\textproc\tNo fields",
        ]
    );
}

#[test]
fn time_encodings() {
    let cases = [
        (
            TimeEncoding::Epoch,
            "1709618828.1203",
            "1.7096188281203e+09",
        ),
        (
            TimeEncoding::Millis,
            "1709618828120.3",
            "1.7096188281203e+12",
        ),
        (
            TimeEncoding::Nanos,
            "1709618828120300000",
            "1709618828120300000",
        ),
        (
            TimeEncoding::Iso8601,
            "\"2024-03-05T06:07:08.120Z\"",
            "2024-03-05T06:07:08.120Z",
        ),
        (
            TimeEncoding::Rfc3339,
            "\"2024-03-05T06:07:08Z\"",
            "2024-03-05T06:07:08Z",
        ),
        (
            TimeEncoding::Rfc3339Nano,
            "\"2024-03-05T06:07:08.1203Z\"",
            "2024-03-05T06:07:08.1203Z",
        ),
    ];
    for (encoding, json_ts, console_ts) in cases {
        let json = capture(&settings(LogEncoder::Json, encoding, 2), || {
            tracing::info!(target: "epp::t", "m");
        });
        assert_eq!(
            json,
            vec![format!(
                r#"{{"level":"info","ts":{json_ts},"logger":"t","msg":"m"}}"#
            )],
            "{encoding:?}"
        );
        let console = capture(&settings(LogEncoder::Console, encoding, 2), || {
            tracing::info!(target: "epp::t", "m");
        });
        assert_eq!(
            console,
            vec![format!("{console_ts}\tINFO\tt\tm")],
            "{encoding:?}"
        );
    }
}

#[test]
fn rfc3339nano_without_fraction_and_real_clock_shape() {
    let mut out = String::new();
    let t = OffsetDateTime::from_unix_timestamp(1_709_618_828).expect("valid");
    encode_time(TimeEncoding::Rfc3339Nano, t, true, &mut out);
    assert_eq!(out, "2024-03-05T06:07:08Z");

    // The real clock through layer_for_writer: shape only.
    let logs = CapturedLogs::new();
    let s = settings(LogEncoder::Json, TimeEncoding::Iso8601, 2);
    let subscriber = Registry::default().with(layer_for_writer(&s, logs.clone()).expect("layer"));
    tracing::subscriber::with_default(subscriber, || tracing::info!("now"));
    let value: serde_json::Value =
        serde_json::from_str(logs.lines()[0].as_str()).expect("valid JSON");
    let ts = value["ts"].as_str().expect("string ts");
    assert_eq!(ts.len(), "2024-03-05T06:07:08.120Z".len(), "{ts}");
    assert_eq!(&ts[4..5], "-");
    assert_eq!(&ts[10..11], "T");
    assert_eq!(&ts[19..20], ".");
    assert!(ts.ends_with('Z'));
    assert_eq!(value["logger"], "telemetry.logging.tests");
}

#[test]
fn go_float_formatting() {
    let cases = [
        (1.0, "1"),
        (123_456.0, "123456"),
        (1e6, "1e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e300, "1.5e+300"),
        (-2.5e7, "-2.5e+07"),
    ];
    for (value, expected) in cases {
        let mut out = String::new();
        write_go_float(&mut out, value);
        assert_eq!(out, expected);
    }

    let mut out = String::new();
    push_json_float(&mut out, f64::NAN);
    assert_eq!(out, "\"NaN\"");
}

#[test]
fn verbosity_filtering() {
    let emit = || {
        tracing::info!(target: "epp::v", "info");
        tracing::debug!(target: "epp::v", "debug");
        tracing::trace!(target: "epp::v", "trace");
        tracing::debug!(target: "h2::proto", "dependency debug");
    };
    let msgs = |v: i32| -> Vec<String> {
        capture(
            &settings(LogEncoder::Console, TimeEncoding::Rfc3339, v),
            emit,
        )
        .into_iter()
        .map(|l| l.rsplit('\t').next().unwrap_or_default().to_owned())
        .collect()
    };
    assert_eq!(msgs(2), vec!["info"]);
    assert_eq!(msgs(3), vec!["info", "debug"]);
    assert_eq!(msgs(4), vec!["info", "debug"]);
    assert_eq!(msgs(5), vec!["info", "debug", "trace"]);
    assert_eq!(msgs(0), vec!["info"]);
    assert!(msgs(-1).is_empty());
}

#[test]
fn level_mapping() {
    assert_eq!(verbosity_filter(-3), LevelFilter::ERROR);
    assert_eq!(verbosity_filter(-1), LevelFilter::WARN);
    assert_eq!(verbosity_filter(2), LevelFilter::INFO);
    assert_eq!(verbosity_filter(4), LevelFilter::DEBUG);
    assert_eq!(verbosity_filter(9), LevelFilter::TRACE);
    let s = LogSettings {
        verbosity: 5,
        ..LogSettings::default()
    };
    assert_eq!(s.level_filter(), LevelFilter::TRACE);
}

#[test]
fn directives_replace_the_filter() {
    let logs = CapturedLogs::new();
    let s = LogSettings {
        directives: Some("h2=debug,epp=warn".to_owned()),
        encoder: LogEncoder::Console,
        ..LogSettings::default()
    };
    let subscriber = Registry::default().with(layer_for_writer(&s, logs.clone()).expect("layer"));
    tracing::subscriber::with_default(subscriber, || {
        tracing::debug!(target: "h2::codec", "h2 debug");
        tracing::info!(target: "epp::x", "hidden");
    });
    let lines = logs.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].ends_with("\tDEBUG\th2.codec\th2 debug"),
        "{lines:?}"
    );

    let bad = LogSettings {
        directives: Some("epp=loud".to_owned()),
        ..LogSettings::default()
    };
    let err = layer_for_writer::<Registry, _>(&bad, CapturedLogs::new())
        .err()
        .expect("invalid directives");
    assert!(err.to_string().contains("RUST_LOG"), "{err}");
}

#[test]
fn logger_names_keep_the_module_paths_of_the_single_crate() {
    let cases = [
        ("epp", "epp"),
        ("epp::app", "app"),
        ("epp_core", "epp"),
        ("epp_core::director::admission", "director.admission"),
        ("epp_net::tls", "tls"),
        ("epp_extproc", "extproc"),
        ("epp_extproc::state::request", "extproc.state.request"),
        ("epp_datalayer::scraper", "datalayer.scraper"),
        ("epp_discovery::kube::pods", "discovery.kube.pods"),
        ("epp_sim::server", "sim.server"),
        ("epp_bench::load", "epp_bench.load"),
        ("eppx::y", "eppx.y"),
        ("h2::proto", "h2.proto"),
    ];
    for (target, want) in cases {
        assert_eq!(logger_name(target), want, "{target}");
    }
}
