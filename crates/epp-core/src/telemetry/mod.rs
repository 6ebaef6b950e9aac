//! The EPP's own telemetry: logs and Prometheus metrics (decision records live with the
//! director, which makes the decisions).

mod go_float;
pub mod logging;
pub mod metrics;
