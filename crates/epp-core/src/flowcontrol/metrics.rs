//! Flow control's metrics: the controller's observer records into [`FlowMetrics`], and a
//! [`Collector`] adds the waiting sizes at scrape time.

use std::sync::Arc;
use std::time::Duration;

use crate::flowcontrol::controller::{FlowController, FlowObserver};
use crate::flowcontrol::queues::Rejection;
use crate::flowcontrol::saturation::Saturation;
use crate::telemetry::metrics::{Collector, Exposition, FlowMetrics};

/// Records the controller's events.
#[derive(Debug, Clone, Default)]
pub struct MetricsObserver(pub Arc<FlowMetrics>);

impl FlowObserver for MetricsObserver {
    fn dispatched(&self, priority: i32, waited: Duration) {
        self.0.waited(priority, "dispatched", waited.as_secs_f64());
    }

    fn refused(&self, priority: i32, reason: Rejection, waited: Duration) {
        self.0.refused(priority, reason.label());
        if matches!(reason, Rejection::Expired | Rejection::Displaced) {
            self.0
                .waited(priority, reason.label(), waited.as_secs_f64());
        }
    }

    fn saturation(&self, detector: &'static str, saturation: Saturation) {
        self.0.saturation(detector, saturation.level);
    }
}

/// Adds flow control's families to `/metrics`.
pub struct FlowCollector {
    pub metrics: Arc<FlowMetrics>,
    pub controller: Arc<FlowController>,
}

impl std::fmt::Debug for FlowCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowCollector").finish_non_exhaustive()
    }
}

impl Collector for FlowCollector {
    fn collect(&self, page: &mut Exposition) {
        let bands: Vec<(i32, usize, u64)> = self
            .controller
            .bands()
            .iter()
            .map(|b| (b.priority, b.requests, b.bytes))
            .collect();
        self.metrics.collect(page, &bands);
    }
}
