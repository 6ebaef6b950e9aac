//! The `epp` binary's library: command-line flags, startup wiring of the crates below it, and
//! the metrics endpoint. The scheduling core is `epp_core`; see ARCHITECTURE.md for the map.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod metrics;
