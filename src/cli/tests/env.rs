//! `SD_*` and datalayer environment variables: accepted values and fallbacks with warnings;
//! notes about settings that have no effect.

use std::time::Duration;

use crate::cli::{SaturationThresholds, parse};

use super::{args, env};

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
fn inert_flags_and_variables_are_noted_when_given() {
    let quiet = parse(args(&["--pool-name=p"]), &env(&[])).unwrap();
    assert!(quiet.inert.is_empty(), "{:?}", quiet.inert);
    let given = parse(
        args(&[
            "--pool-name=p",
            "--enable-pprof=false",
            "--zap-stacktrace-level=panic",
        ]),
        &env(&[("ENABLE_EXPERIMENTAL_DATALAYER_V2", "true")]),
    )
    .unwrap();
    assert_eq!(
        given.inert,
        [
            "flag --enable-pprof has no effect: this EPP has no Go pprof handlers",
            "flag --zap-stacktrace-level has no effect: log records carry no stacktraces",
            "environment variable ENABLE_EXPERIMENTAL_DATALAYER_V2 has no effect: this EPP has a single datalayer",
        ]
    );
    assert!(given.warnings.is_empty(), "{:?}", given.warnings);
}
