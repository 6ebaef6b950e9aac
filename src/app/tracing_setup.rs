//! `--tracing`: the OTLP trace exporter, and its span counters on `/metrics`.

use std::sync::Arc;

use epp_core::telemetry::metrics::definitions as defs;
use epp_core::telemetry::metrics::{Collector, EppMetrics, Exposition};
use epp_trace::{SpanCounts, Tracing};

use super::StartError;
use crate::cli::Options;

/// Starts the exporter when tracing is on, and registers its counters.
pub(super) fn start(
    options: &Options,
    metrics: &Arc<EppMetrics>,
) -> Result<Option<Tracing>, StartError> {
    let Some(settings) = &options.trace_settings else {
        return Ok(None);
    };
    let tracing = Tracing::start(settings)?;
    metrics.register_collector(Arc::new(SpanCountsCollector(tracing.counts())));
    tracing::info!(
        endpoint = %settings.endpoint,
        service = %settings.service_name,
        sampling = ?settings.sampling,
        "exporting request traces over OTLP/gRPC"
    );
    Ok(Some(tracing))
}

/// `inference_extension_trace_spans_total`, read when Prometheus scrapes.
#[derive(Debug)]
struct SpanCountsCollector(Arc<SpanCounts>);

impl Collector for SpanCountsCollector {
    fn collect(&self, page: &mut Exposition) {
        let counts = &self.0;
        let mut family = page.family(&defs::TRACE_SPANS);
        for (outcome, n) in [
            ("exported", counts.exported()),
            ("dropped", counts.dropped()),
            ("failed", counts.failed()),
        ] {
            family.sample(&[outcome], n as f64);
        }
    }
}
