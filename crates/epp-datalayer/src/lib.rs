//! The datalayer: what to scrape from model servers (metric specs, engine presets, the
//! text-format parser and extraction rules), the scrape tasks, and the pool gauges
//! computed from the scraped metrics.

pub mod extract;
pub mod metric_spec;
pub mod pool_gauges;
pub mod presets;
pub mod scraper;
pub mod text_format;
