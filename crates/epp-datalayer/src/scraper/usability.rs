//! Whether a successful scrape gave usable load metrics, why not, and the log of it: once
//! per change of state, not once per scrape.
//!
//! A page can parse and still say nothing about load: it is empty, it is another engine's
//! page (an SGLang server under the vLLM preset), or it reports NaN, infinite or negative
//! values. Extraction leaves such signals `None`, so they are not refreshed and go stale;
//! the load scorers then treat the endpoint's load as unknown (the stale-metrics rule,
//! `scheduling::SignalComparison`). This module names the case for the log and the
//! `inference_extension_model_server_unusable_metrics_total{reason}` counter.

use crate::extract::{Extracted, FieldSet};
use crate::presets::MetricField;

/// The fields the load scorers and admission read; LoRA and cache geometry are optional.
const LOAD_FIELDS: [MetricField; 3] = [
    MetricField::Queue,
    MetricField::Running,
    MetricField::KvUsage,
];

/// Why a successful scrape yielded unusable load metrics (bounded: a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnusableReason {
    /// A configured load metric has a NaN, infinite or negative value.
    InvalidValue,
    /// No configured metric is on the page at all: an empty page, or another engine's
    /// metrics (check `--engine-type` and the metric flags).
    NoConfiguredMetrics,
    /// The page has some configured metrics but lacks a load metric.
    MissingMetric,
}

impl UnusableReason {
    /// Every reason, in label order.
    pub const ALL: [UnusableReason; 3] = [
        UnusableReason::InvalidValue,
        UnusableReason::NoConfiguredMetrics,
        UnusableReason::MissingMetric,
    ];

    /// The metric label: `invalid_value`, `no_configured_metrics`, `missing_metric`.
    pub fn as_str(self) -> &'static str {
        match self {
            UnusableReason::InvalidValue => "invalid_value",
            UnusableReason::NoConfiguredMetrics => "no_configured_metrics",
            UnusableReason::MissingMetric => "missing_metric",
        }
    }
}

/// The load signals one scrape could not refresh, and the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unusable {
    /// The first reason that applies, in [`UnusableReason::ALL`] order.
    pub reason: UnusableReason,
    /// The configured load fields (queue, running, KV usage) without a valid value.
    pub fields: FieldSet,
}

/// Judges one successful extraction under a mapping that reads `configured` fields:
/// `None` when every configured load signal got a valid value.
pub fn judge(extracted: &Extracted, configured: FieldSet) -> Option<Unusable> {
    let load: FieldSet = LOAD_FIELDS.into_iter().collect();
    let load = load.intersection(configured);
    let invalid = extracted.invalid.intersection(load);
    let fields = invalid.union(extracted.missing.intersection(load));
    if fields.is_empty() {
        return None;
    }
    let nothing_present =
        extracted.invalid.is_empty() && extracted.missing.intersection(configured) == configured;
    let reason = if !invalid.is_empty() {
        UnusableReason::InvalidValue
    } else if nothing_present {
        UnusableReason::NoConfiguredMetrics
    } else {
        UnusableReason::MissingMetric
    };
    Some(Unusable { reason, fields })
}

/// An endpoint's metrics usability as last logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// No successful scrape yet.
    #[default]
    Unknown,
    Usable,
    Unusable(Unusable),
}

/// Logs changes of one endpoint's metrics usability: a warning when it becomes unusable
/// (or unusable in another way), naming the reason and fields; an info line when it is
/// usable again. The first usable scrape is not logged.
#[derive(Debug, Default)]
pub(super) struct UsabilityLog {
    state: State,
}

impl UsabilityLog {
    /// Records the judgement of one successful scrape of `endpoint` (`ip:port`).
    pub(super) fn report(&mut self, endpoint: &str, judged: Option<Unusable>) {
        let next = judged.map_or(State::Usable, State::Unusable);
        if next == self.state {
            return;
        }
        match (self.state, judged) {
            (_, Some(unusable)) => tracing::warn!(
                endpoint,
                reason = unusable.reason.as_str(),
                fields = ?unusable.fields,
                "model-server metrics unusable; the endpoint's load counts as unknown (stale) until valid values return"
            ),
            (State::Unusable(_), None) => {
                tracing::info!(endpoint, "model-server metrics usable again")
            }
            (State::Unknown | State::Usable, None) => {}
        }
        self.state = next;
    }
}

#[cfg(test)]
mod tests;
