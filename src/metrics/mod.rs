//! Serving the EPP's metrics: the `/metrics` HTTP endpoint with its optional Kubernetes
//! authorization, and the scrape-time collector over the datastore, scrape stats and prefix
//! indexes. The families and their recording live in `epp_core::telemetry::metrics`.

mod auth;
mod server;
mod sources;

pub use auth::{AuthError, MetricsAuth};
pub use server::serve;
pub use sources::{MetricSources, SourcesCollector};

#[cfg(test)]
mod tests;
