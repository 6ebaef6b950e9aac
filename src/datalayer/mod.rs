//! The datalayer: what to scrape from model servers (metric specs, engine presets).

pub mod metric_spec;
