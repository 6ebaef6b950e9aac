//! The `flowControl` section and the detector choice of `saturationDetector`, validated.

use std::time::Duration;

use crate::config::ConfigError;
use crate::config::raw::{RawFlowControl, RawSaturationDetector};
use crate::director::SaturationThresholds;
use crate::flowcontrol::{
    ConcurrencyDetector, Limits, Ordering, QueueConfig, SaturationDetector, UtilizationDetector,
};

/// Which saturation detector flow control asks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DetectorSpec {
    /// The `saturationDetector` thresholds over the scraped metrics (default).
    Utilization,
    /// This EPP's in-flight requests and prompt tokens per endpoint.
    Concurrency(ConcurrencyDetector),
}

impl DetectorSpec {
    /// The detector, with the utilization thresholds in force (flags, environment, config).
    pub fn build(&self, thresholds: SaturationThresholds) -> Box<dyn SaturationDetector> {
        match *self {
            DetectorSpec::Utilization => Box::new(UtilizationDetector { thresholds }),
            DetectorSpec::Concurrency(detector) => Box::new(detector),
        }
    }
}

/// Flow control as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowControlSettings {
    pub queue: QueueConfig,
    /// The header holding a request's deadline in milliseconds from arrival (EDF).
    pub deadline_header: String,
    /// Whether the gateway's `x-gateway-inference-fairness-id` names the flow.
    pub trust_fairness_header: bool,
}

pub const DEFAULT_DEADLINE_HEADER: &str = "x-gateway-inference-deadline-ms";

fn field(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        path: name.to_owned(),
        message: message.into(),
    }
}

pub(super) fn detector(raw: Option<&RawSaturationDetector>) -> Result<DetectorSpec, ConfigError> {
    let raw = raw.cloned().unwrap_or_default();
    let concurrency_fields = raw.max_concurrency.is_some() || raw.max_tokens_in_flight.is_some();
    match raw.detector.as_deref() {
        None | Some("utilization") if concurrency_fields => Err(field(
            "saturationDetector.type",
            "maxConcurrency and maxTokensInFlight need type: concurrency",
        )),
        None | Some("utilization") => Ok(DetectorSpec::Utilization),
        Some("concurrency") => {
            let defaults = ConcurrencyDetector::default();
            let max_requests = raw.max_concurrency.unwrap_or(defaults.max_requests);
            let max_tokens = raw.max_tokens_in_flight.unwrap_or(defaults.max_tokens);
            if max_requests == 0 {
                return Err(field(
                    "saturationDetector.maxConcurrency",
                    "must be at least 1",
                ));
            }
            if max_tokens == 0 {
                return Err(field(
                    "saturationDetector.maxTokensInFlight",
                    "must be at least 1",
                ));
            }
            Ok(DetectorSpec::Concurrency(ConcurrencyDetector {
                max_requests,
                max_tokens,
            }))
        }
        Some(other) => Err(field(
            "saturationDetector.type",
            format!("must be \"utilization\" or \"concurrency\", got {other:?}"),
        )),
    }
}

pub(super) fn flow_control(
    raw: Option<&RawFlowControl>,
) -> Result<Option<FlowControlSettings>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    let defaults = QueueConfig::default();
    let positive = |name: &str, value: Option<u64>, default: u64| match value {
        Some(0) => Err(field(&format!("flowControl.{name}"), "must be at least 1")),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    let as_u64 = |v: Option<usize>| v.map(|v| v as u64);
    let max_requests = positive(
        "maxRequests",
        as_u64(raw.max_requests),
        defaults.total.requests as u64,
    )?;
    let max_bytes = positive("maxBytes", raw.max_bytes, defaults.total.bytes)?;
    let total = Limits {
        requests: usize::try_from(max_requests).unwrap_or(usize::MAX),
        bytes: max_bytes,
    };
    let per_band = Limits {
        requests: usize::try_from(positive(
            "bandMaxRequests",
            as_u64(raw.band_max_requests),
            max_requests,
        )?)
        .unwrap_or(usize::MAX),
        bytes: positive("bandMaxBytes", raw.band_max_bytes, max_bytes)?,
    };
    let ttl = match raw.request_ttl.as_deref() {
        None => defaults.ttl,
        Some(text) => match epp_flags::duration::parse_go_duration(text) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => return Err(field("flowControl.requestTTL", "must be greater than 0")),
            Err(e) => {
                return Err(field(
                    "flowControl.requestTTL",
                    format!("{e} (Go duration, e.g. 30s)"),
                ));
            }
        },
    };
    let ordering = match raw.ordering.as_deref() {
        None | Some("fcfs") => Ordering::Fcfs,
        Some("edf") => Ordering::Edf,
        Some(other) => {
            return Err(field(
                "flowControl.ordering",
                format!("must be \"fcfs\" or \"edf\", got {other:?}"),
            ));
        }
    };
    let deadline_header = match raw.deadline_header.as_deref() {
        None => DEFAULT_DEADLINE_HEADER.to_owned(),
        Some(name) if is_header_name(name) => name.to_ascii_lowercase(),
        Some(name) => {
            return Err(field(
                "flowControl.deadlineHeader",
                format!("{name:?} is not a header name"),
            ));
        }
    };
    Ok(Some(FlowControlSettings {
        queue: QueueConfig {
            total,
            per_band,
            ttl,
            ordering,
        },
        deadline_header,
        trust_fairness_header: raw.trust_fairness_header.unwrap_or(false),
    }))
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A deadline header's value: milliseconds from arrival; anything else is no deadline.
pub fn parse_deadline_ms(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_millis)
}
