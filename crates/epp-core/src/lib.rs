//! The scheduling core of the EPP: everything that decides where a request goes, with no
//! network, no gRPC, no Kubernetes and no async runtime underneath, so the same code serves
//! the ext_proc service, tests and a simulator in virtual time.
#![forbid(unsafe_code)]

pub mod config;
pub mod datastore;
pub mod director;
pub mod prefix;
pub mod request;
pub mod scheduling;
pub mod telemetry;
