//! Tracing settings from the standard OpenTelemetry environment variables, checked once at
//! startup: a bad value is one error naming the variable, never a silent fallback.

use std::time::Duration;

/// Where spans go when no endpoint variable is set (the OTLP/gRPC default).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4317";
/// `service.name` when `OTEL_SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "epp";

/// Which requests are traced (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    AlwaysOn,
    AlwaysOff,
    /// This fraction of trace ids, whatever the caller decided.
    TraceIdRatio(f64),
    /// The caller's decision (`traceparent` flags) when it sent one, else always.
    ParentBasedAlwaysOn,
    /// The caller's decision when it sent one, else never.
    ParentBasedAlwaysOff,
    /// The caller's decision when it sent one, else this fraction of trace ids.
    ParentBasedTraceIdRatio(f64),
}

/// The span queue between the requests and the exporter (`OTEL_BSP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Spans waiting for export; past it new spans are dropped and counted.
    pub max_queue: usize,
    /// Spans per export call.
    pub max_batch: usize,
    /// Longest a span waits before its batch is sent.
    pub delay: Duration,
    /// Longest one export call may take.
    pub export_timeout: Duration,
}

impl Default for BatchSettings {
    /// The OpenTelemetry SDK defaults.
    fn default() -> Self {
        BatchSettings {
            max_queue: 2048,
            max_batch: 512,
            delay: Duration::from_secs(5),
            export_timeout: Duration::from_secs(30),
        }
    }
}

/// Everything the exporter needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// The OTLP/gRPC collector, `http://host:port`.
    pub endpoint: String,
    pub service_name: String,
    pub sampling: Sampling,
    pub batch: BatchSettings,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            sampling: Sampling::ParentBasedAlwaysOn,
            batch: BatchSettings::default(),
        }
    }
}

/// A variable whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {name}={value:?}: {problem}")]
pub struct SettingsError {
    pub name: &'static str,
    pub value: String,
    pub problem: String,
}

/// The settings read from the environment, and whether an endpoint was named there (which
/// turns tracing on unless `--tracing=false`).
#[derive(Debug, Clone, PartialEq)]
pub struct EnvSettings {
    pub settings: TraceSettings,
    pub endpoint_configured: bool,
}

impl TraceSettings {
    /// Reads the variables through `var` (unset and empty are the same, as the
    /// specification says).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<EnvSettings, SettingsError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let endpoint = match read(&get, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| read(&get, "OTEL_EXPORTER_OTLP_ENDPOINT"))
        {
            Some((name, value)) => Some(endpoint(name, value)?),
            None => None,
        };
        if let Some((name, value)) = read(&get, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| read(&get, "OTEL_EXPORTER_OTLP_PROTOCOL"))
            && value.trim() != "grpc"
        {
            return Err(invalid(
                name,
                value,
                "only grpc is supported (OTLP over gRPC, port 4317 by default)",
            ));
        }
        let service_name = get("OTEL_SERVICE_NAME").map_or_else(
            || DEFAULT_SERVICE_NAME.to_owned(),
            |name| name.trim().to_owned(),
        );
        let defaults = BatchSettings::default();
        let batch = BatchSettings {
            max_queue: count(&get, "OTEL_BSP_MAX_QUEUE_SIZE", defaults.max_queue)?,
            max_batch: count(&get, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", defaults.max_batch)?,
            delay: millis(&get, "OTEL_BSP_SCHEDULE_DELAY", defaults.delay)?,
            export_timeout: millis(&get, "OTEL_BSP_EXPORT_TIMEOUT", defaults.export_timeout)?,
        };
        if batch.max_batch > batch.max_queue {
            return Err(invalid(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                batch.max_batch.to_string(),
                "must not exceed OTEL_BSP_MAX_QUEUE_SIZE",
            ));
        }
        Ok(EnvSettings {
            endpoint_configured: endpoint.is_some(),
            settings: TraceSettings {
                endpoint: endpoint.unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
                service_name,
                sampling: sampling(&get)?,
                batch,
            },
        })
    }
}

fn read(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Option<(&'static str, String)> {
    get(name).map(|value| (name, value))
}

fn invalid(name: &'static str, value: String, problem: impl Into<String>) -> SettingsError {
    SettingsError {
        name,
        value,
        problem: problem.into(),
    }
}

/// An `http://host:port` collector address. TLS is not built in: `https` is refused here
/// rather than failing on every export.
fn endpoint(name: &'static str, value: String) -> Result<String, SettingsError> {
    let trimmed = value.trim();
    let Some(rest) = trimmed.strip_prefix("http://") else {
        let problem = if trimmed.starts_with("https://") {
            "https is not supported by this build; use http:// (for example a collector on the same node)"
        } else {
            "expected an http:// URL such as http://localhost:4317"
        };
        return Err(invalid(name, value, problem));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(invalid(
            name,
            value,
            "expected an http:// URL with a host, such as http://localhost:4317",
        ));
    }
    Ok(trimmed.to_owned())
}

fn sampling(get: &impl Fn(&str) -> Option<String>) -> Result<Sampling, SettingsError> {
    const NAME: &str = "OTEL_TRACES_SAMPLER";
    let ratio = || -> Result<f64, SettingsError> {
        const ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
        let Some(raw) = get(ARG) else {
            return Ok(1.0);
        };
        match raw.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(invalid(ARG, raw, "expected a ratio between 0 and 1")),
        }
    };
    let Some(raw) = get(NAME) else {
        return Ok(Sampling::ParentBasedAlwaysOn);
    };
    Ok(match raw.trim() {
        "always_on" => Sampling::AlwaysOn,
        "always_off" => Sampling::AlwaysOff,
        "traceidratio" => Sampling::TraceIdRatio(ratio()?),
        "parentbased_always_on" => Sampling::ParentBasedAlwaysOn,
        "parentbased_always_off" => Sampling::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => Sampling::ParentBasedTraceIdRatio(ratio()?),
        _ => {
            return Err(invalid(
                NAME,
                raw,
                "expected always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio",
            ));
        }
    })
}

fn count(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: usize,
) -> Result<usize, SettingsError> {
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<usize>() {
        Ok(n) if n > 0 && n <= 1 << 20 => Ok(n),
        _ => Err(invalid(name, raw, "expected an integer from 1 to 1048576")),
    }
}

fn millis(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: Duration,
) -> Result<Duration, SettingsError> {
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<u64>() {
        Ok(ms) if ms > 0 && ms <= 3_600_000 => Ok(Duration::from_millis(ms)),
        _ => Err(invalid(
            name,
            raw,
            "expected milliseconds from 1 to 3600000",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<EnvSettings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TraceSettings::from_env(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_means_defaults_and_no_endpoint() {
        let got = parse(&[]).expect("defaults");
        assert!(!got.endpoint_configured);
        assert_eq!(got.settings, TraceSettings::default());
        // Empty is unset.
        let got = parse(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).expect("empty");
        assert!(!got.endpoint_configured);
    }

    #[test]
    fn the_traces_endpoint_wins_over_the_general_one() {
        let got = parse(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_SERVICE_NAME", "router"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "16"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .expect("valid");
        assert!(got.endpoint_configured);
        assert_eq!(got.settings.endpoint, "http://traces:4317");
        assert_eq!(got.settings.service_name, "router");
        assert_eq!(
            got.settings.sampling,
            Sampling::ParentBasedTraceIdRatio(0.25)
        );
        assert_eq!(
            (
                got.settings.batch.max_queue,
                got.settings.batch.max_batch,
                got.settings.batch.delay
            ),
            (16, 4, Duration::from_millis(100))
        );
        let only_general =
            parse(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]).expect("valid");
        assert_eq!(only_general.settings.endpoint, "http://collector:4317");
    }

    #[test]
    fn every_sampler_name_is_understood() {
        let cases = [
            ("always_on", Sampling::AlwaysOn),
            ("always_off", Sampling::AlwaysOff),
            ("traceidratio", Sampling::TraceIdRatio(1.0)),
            ("parentbased_always_on", Sampling::ParentBasedAlwaysOn),
            ("parentbased_always_off", Sampling::ParentBasedAlwaysOff),
            (
                "parentbased_traceidratio",
                Sampling::ParentBasedTraceIdRatio(1.0),
            ),
        ];
        for (name, want) in cases {
            let got = parse(&[("OTEL_TRACES_SAMPLER", name)]).expect(name);
            assert_eq!(got.settings.sampling, want, "{name}");
        }
        let zero = parse(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ])
        .expect("zero");
        assert_eq!(zero.settings.sampling, Sampling::TraceIdRatio(0.0));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: [(&[(&str, &str)], &str); 10] = [
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://c:4317")],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "sometimes")],
                "OTEL_TRACES_SAMPLER",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "half"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                &[("OTEL_BSP_MAX_QUEUE_SIZE", "0")],
                "OTEL_BSP_MAX_QUEUE_SIZE",
            ),
            (
                &[("OTEL_BSP_SCHEDULE_DELAY", "-5")],
                "OTEL_BSP_SCHEDULE_DELAY",
            ),
            (
                &[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096")],
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            ),
        ];
        for (vars, name) in cases {
            let error = parse(vars).expect_err(name);
            assert_eq!(error.name, name, "{vars:?}");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("environment variable {name}=")),
                "{error}"
            );
        }
    }
}
