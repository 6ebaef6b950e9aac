//! A drop-in Rust Endpoint Picker (Envoy ext_proc) for the Gateway API Inference Extension.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod datalayer;
pub mod datastore;
pub mod director;
pub mod discovery;
pub mod extproc;
pub mod health;
pub mod listener;
pub mod prefix;
pub mod request;
pub mod scheduling;
pub mod sim;
pub mod telemetry;
pub mod tls;
