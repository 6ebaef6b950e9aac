//! OpenTelemetry tracing of the EPP's requests, for every front end (ext_proc, the HTTP
//! proxy): the OTLP/gRPC exporter set up from the standard `OTEL_*` variables
//! ([`TraceSettings::from_env`], [`Tracing::start`]), and [`RequestTrace`], which a front end
//! fills with phase instants and finishes when the request ends.
//!
//! Invariants:
//! - With tracing off there is no [`Tracing`] and the front ends hold `None`: one branch
//!   per phase, nothing else. An unsampled request holds `None` too.
//! - Spans are built when the request ends, from recorded instants; no span is entered or
//!   polled on the hot path (a `tracing` span per stream cost 7% of an exchange).
//! - Finished spans go through a bounded queue that never blocks a request: past
//!   `OTEL_BSP_MAX_QUEUE_SIZE` a span is dropped and counted ([`SpanCounts::dropped`]).
//! - No attribute carries a prompt, a body or a response.

mod export;
mod request;
mod settings;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

pub use export::SpanCounts;
pub use request::{HeaderLookup, Mark, RequestTrace, RequestTracer, keys, names};
pub use settings::{
    BatchSettings, DEFAULT_ENDPOINT, DEFAULT_SERVICE_NAME, EnvSettings, Sampling, SettingsError,
    TraceSettings,
};

/// The exporter could not be built from valid-looking settings.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP trace exporter for {endpoint}: {reason}")]
pub struct StartError {
    pub endpoint: String,
    pub reason: String,
}

/// The running tracing pipeline: the tracer the front ends use, the export task, and its
/// counters. Call [`Tracing::shutdown`] to send what is queued before the process exits.
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: RequestTracer,
    export: export::ExportHandle,
    counts: Arc<SpanCounts>,
}

impl Tracing {
    /// Builds the exporter and starts the export task on its own thread. The
    /// collector is connected to lazily: an unreachable one costs failed exports (counted),
    /// not a failed start.
    pub fn start(settings: &TraceSettings) -> Result<Tracing, StartError> {
        let resource = Resource::builder()
            .with_service_name(settings.service_name.clone())
            .build();
        let endpoint = settings.endpoint.clone();
        let timeout = settings.batch.export_timeout;
        let exporter_resource = resource.clone();
        let make_exporter = move || {
            let mut exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .build()
                .map_err(|e| e.to_string())?;
            opentelemetry_sdk::trace::SpanExporter::set_resource(&mut exporter, &exporter_resource);
            Ok(exporter)
        };
        let counts = Arc::new(SpanCounts::default());
        let (processor, export) = export::start(make_exporter, settings.batch, Arc::clone(&counts))
            .map_err(|reason| StartError {
                endpoint: settings.endpoint.clone(),
                reason,
            })?;
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler(settings.sampling))
            .with_resource(resource)
            .build();
        let tracer = RequestTracer::new(provider.tracer("epp"));
        Ok(Tracing {
            provider,
            tracer,
            export,
            counts,
        })
    }

    /// What the front ends start request traces with.
    pub fn tracer(&self) -> RequestTracer {
        self.tracer.clone()
    }

    /// Spans exported, dropped and failed so far.
    pub fn counts(&self) -> Arc<SpanCounts> {
        Arc::clone(&self.counts)
    }

    /// Exports everything queued so far; `false` if that took longer than `limit`.
    pub async fn flush(&self, limit: Duration) -> bool {
        self.export.flush(limit).await
    }

    /// Exports what is queued (within `limit`) and stops. Spans ended after this are
    /// dropped.
    pub async fn shutdown(self, limit: Duration) {
        if !self.export.flush(limit).await {
            tracing::warn!(timeout = ?limit, "trace spans not all exported before shutdown");
        }
        if let Err(error) = self.provider.shutdown() {
            tracing::debug!(%error, "tracer provider shutdown");
        }
    }
}

fn sampler(sampling: Sampling) -> Sampler {
    match sampling {
        Sampling::AlwaysOn => Sampler::AlwaysOn,
        Sampling::AlwaysOff => Sampler::AlwaysOff,
        Sampling::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        Sampling::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        Sampling::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        Sampling::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}
