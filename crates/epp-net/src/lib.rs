//! Serving plumbing shared by the EPP's processes: a TCP acceptor that survives descriptor
//! exhaustion, serving certificates with hot reload, and the gRPC health service.
#![forbid(unsafe_code)]

pub mod health;
pub mod listener;
pub mod tls;
