//! The datalayer: what to scrape from model servers (metric specs, engine presets), the
//! scrape tasks, and the pool gauges computed from the scraped metrics.

pub mod metric_spec;
pub mod pool_gauges;
pub mod presets;
