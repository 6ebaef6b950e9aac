//! `--tracing` and the `OTEL_*` variables: on by default exactly when an OTLP endpoint is
//! configured, `--tracing=false` forces it off, `--tracing=true` alone uses the OTLP
//! default endpoint; a bad value is one error naming the variable.

use epp_trace::{DEFAULT_ENDPOINT, Sampling};

use crate::cli::parse;

use super::{args, env};

fn parse_with(
    flags: &[&str],
    vars: &[(&str, &str)],
) -> Result<crate::cli::Options, crate::cli::CliError> {
    let mut all = vec!["--pool-name=p"];
    all.extend_from_slice(flags);
    parse(args(&all), &env(vars))
}

#[test]
fn off_unless_an_endpoint_is_configured() {
    let o = parse_with(&[], &[]).expect("defaults");
    assert!(!o.tracing);
    assert_eq!(o.trace_settings, None);

    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ] {
        let o = parse_with(&[], &[(var, "http://collector:4317")]).expect(var);
        assert!(o.tracing, "{var}");
        let settings = o.trace_settings.expect("settings");
        assert_eq!(settings.endpoint, "http://collector:4317");
        assert_eq!(settings.service_name, "epp");
        assert_eq!(settings.sampling, Sampling::ParentBasedAlwaysOn);
    }
    // Other OTEL_* variables alone do not turn it on.
    let o = parse_with(&[], &[("OTEL_SERVICE_NAME", "router")]).expect("service only");
    assert!(!o.tracing);
}

#[test]
fn the_flag_decides_when_given() {
    let endpoint = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")];
    let o = parse_with(&["--tracing=false"], &endpoint).expect("forced off");
    assert!(!o.tracing);
    assert_eq!(o.trace_settings, None);
    // Off: the variables are not even read, so a bad one is no error.
    let o = parse_with(
        &["--tracing=false"],
        &[("OTEL_TRACES_SAMPLER", "sometimes")],
    )
    .expect("off ignores OTEL_*");
    assert!(!o.tracing);

    let o = parse_with(&["--tracing"], &[]).expect("forced on");
    assert!(o.tracing);
    assert_eq!(
        o.trace_settings.as_ref().expect("settings").endpoint,
        DEFAULT_ENDPOINT
    );
    assert_eq!(
        o.flag_values()
            .into_iter()
            .find(|(name, _)| name == "tracing"),
        Some(("tracing".to_owned(), "true".to_owned()))
    );
}

#[test]
fn a_bad_variable_is_one_error_naming_it() {
    let cases = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "lots"),
    ];
    for (var, value) in cases {
        let mut vars = vec![(var, value), ("OTEL_TRACES_SAMPLER", "traceidratio")];
        if var == "OTEL_TRACES_SAMPLER" {
            vars.pop();
        }
        let error = parse_with(&["--tracing=true"], &vars).expect_err(var);
        assert_eq!(error.exit_code(), 1, "{var}");
        let text = error.stderr_text();
        assert!(
            text.starts_with(&format!("tracing: environment variable {var}=")),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}
