//! The flag table, `-h` and usage errors: exit codes and Go-format usage text.

use crate::cli::flags::FLAGS;
use crate::cli::{CliError, Options, usage};
use epp_flags::Kind;

use super::err;

#[test]
fn table_is_consistent() {
    let defaults = Options::default();
    let mut names: Vec<&str> = FLAGS.iter().map(|d| d.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), FLAGS.len(), "duplicate flag names");
    for def in FLAGS.iter() {
        assert!(!def.help.is_empty(), "{} has no help", def.name);
        // Every shown default must be accepted by its own parser and give the same value back.
        let shown = (def.get)(&defaults);
        if shown.is_empty() && def.kind == Kind::Value {
            continue; // Unset zap flags have no spelling, as in Go.
        }
        let mut copy = defaults.clone();
        (def.set)(&mut copy, &shown).unwrap_or_else(|e| panic!("{}: {e:?}", def.name));
        assert_eq!(copy, defaults, "{} default does not round-trip", def.name);
    }
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
