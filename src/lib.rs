//! A drop-in Rust Endpoint Picker (Envoy ext_proc) for the Gateway API Inference Extension.
#![forbid(unsafe_code)]

pub mod cli;
pub mod datalayer;
pub mod datastore;
pub mod request;
