//! The EPP's own telemetry: logs (and, later, Prometheus metrics and decision records).

pub mod logging;
