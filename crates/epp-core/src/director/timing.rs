//! Plugin timings for `inference_extension_plugin_duration_seconds`: an observer that
//! records each plugin call into the EPP's metrics and passes every event on to the
//! observer it wraps (the decision trace, when records are on).

use std::time::Duration;

use crate::scheduling::{Candidate, CycleObserver, ExtensionPoint};
use crate::telemetry::metrics::EppMetrics;

pub(super) struct MetricsObserver<'a> {
    pub metrics: &'a EppMetrics,
    pub inner: &'a mut dyn CycleObserver,
}

impl CycleObserver for MetricsObserver<'_> {
    fn timed(&self) -> bool {
        true
    }

    fn plugin_time(
        &mut self,
        point: ExtensionPoint,
        type_name: &'static str,
        name: &str,
        elapsed: Duration,
    ) {
        self.metrics
            .plugin_duration(point.as_str(), type_name, name, elapsed.as_secs_f64());
        self.inner.plugin_time(point, type_name, name, elapsed);
    }

    fn traced(&self) -> bool {
        self.inner.traced()
    }

    fn profile_started(&mut self, profile: &str, candidates: &[Candidate<'_>]) {
        self.inner.profile_started(profile, candidates);
    }

    fn filtered(&mut self, filter: &str, kept: &[Candidate<'_>]) {
        self.inner.filtered(filter, kept);
    }

    fn scored(&mut self, scorer: &str, weight: f64, raw: &[f64]) {
        self.inner.scored(scorer, weight, raw);
    }

    fn picked(&mut self, candidates: &[Candidate<'_>], totals: &[f64], picked: &[usize]) {
        self.inner.picked(candidates, totals, picked);
    }
}
