//! The router mode's own counters, exported on `/metrics` by a [`Collector`] at scrape time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use epp_core::telemetry::metrics::definitions::{Kind, MetricDef};
use epp_core::telemetry::metrics::{Collector, Exposition};

/// Why an upstream exchange failed (a bounded metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// The endpoint refused or dropped the connection attempt: 503.
    Connect,
    /// No connection within `--proxy-connect-timeout`: 504.
    ConnectTimeout,
    /// The connection broke before or during the response: 502 (or a cut stream).
    Reset,
}

impl UpstreamError {
    const ALL: [UpstreamError; 3] = [
        UpstreamError::Connect,
        UpstreamError::ConnectTimeout,
        UpstreamError::Reset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::ConnectTimeout => "connect_timeout",
            UpstreamError::Reset => "reset",
        }
    }
}

const UPSTREAM_ERRORS: MetricDef = MetricDef {
    name: "inference_extension_proxy_upstream_errors_total",
    help: "[ALPHA] Router mode: requests whose endpoint could not be reached or broke off, by reason (connect, connect_timeout, reset).",
    kind: Kind::Counter,
    labels: &["reason"],
    buckets: &[],
};
const CLIENT_CANCELLATIONS: MetricDef = MetricDef {
    name: "inference_extension_proxy_client_cancellations_total",
    help: "[ALPHA] Router mode: requests whose client left before the response ended (the upstream request was cancelled).",
    kind: Kind::Counter,
    labels: &[],
    buckets: &[],
};
const IN_FLIGHT: MetricDef = MetricDef {
    name: "inference_extension_proxy_requests",
    help: "[ALPHA] Router mode: requests being served now.",
    kind: Kind::Gauge,
    labels: &[],
    buckets: &[],
};

/// Counters of the router mode.
#[derive(Debug, Default)]
pub struct ProxyStats {
    upstream_errors: [AtomicU64; UpstreamError::ALL.len()],
    client_cancellations: AtomicU64,
    in_flight: AtomicI64,
}

impl ProxyStats {
    pub fn upstream_error(&self, error: UpstreamError) {
        self.upstream_errors[error as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn upstream_errors(&self, error: UpstreamError) -> u64 {
        self.upstream_errors[error as usize].load(Ordering::Relaxed)
    }

    pub fn client_cancelled(&self) {
        self.client_cancellations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn client_cancellations(&self) -> u64 {
        self.client_cancellations.load(Ordering::Relaxed)
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request as being served until the guard drops.
    pub(crate) fn serving(self: &Arc<Self>) -> ServingGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        ServingGuard(Arc::clone(self))
    }
}

/// Keeps one request counted in [`ProxyStats::in_flight`].
#[derive(Debug)]
pub(crate) struct ServingGuard(Arc<ProxyStats>);

impl Drop for ServingGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Writes [`ProxyStats`] into the `/metrics` page.
#[derive(Debug)]
pub struct ProxyCollector(pub Arc<ProxyStats>);

impl Collector for ProxyCollector {
    fn collect(&self, page: &mut Exposition) {
        let mut errors = page.family(&UPSTREAM_ERRORS);
        for error in UpstreamError::ALL {
            errors.sample(&[error.as_str()], self.0.upstream_errors(error) as f64);
        }
        page.family(&CLIENT_CANCELLATIONS)
            .sample(&[], self.0.client_cancellations() as f64);
        page.family(&IN_FLIGHT)
            .sample(&[], self.0.in_flight() as f64);
    }
}
