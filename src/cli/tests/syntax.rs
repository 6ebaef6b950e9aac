//! Go `flag` syntax: value forms, bool forms, positional arguments, repeats, Go ints and bools.

use std::path::PathBuf;

use crate::cli::{CliError, EndpointSource, LogEncoder};
use epp_flags::goflag::{parse_bool, parse_int};

use super::{err, ok};

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
