//! Test scaffolding shared by the EPP's integration tests (`tests/`), benches (`benches/`)
//! and the `epp-bench` load tool. Only dev-dependencies and `epp-bench` use it; no
//! production crate does.
//!
//! # Module map
//!
//! Always built (all `epp-bench` compiles):
//!
//! | module | gives | used by |
//! |---|---|---|
//! | [`messages`] | `ProcessingRequest` builders (headers, bodies, chunked bodies, trailers, body modes, subset hint) and `ProcessingResponse` readers (destination, set headers, streamed chunks, immediate responses) | `epp-bench` (`direct`, `noop`), tests `protocol`, `metrics`, `binary`, `kubernetes`, bench `memory` |
//!
//! With the `harness` feature (tests and benches):
//!
//! | module | gives | used by |
//! |---|---|---|
//! | [`stream`] | [`ExtProcStream`]: one ext_proc stream driven message by message, [`Next`], [`REPLY_TIMEOUT`], a plaintext client | `protocol`, `metrics`, `binary`, `kubernetes` |
//! | [`driver`] | `send_request`: one request in FULL_DUPLEX_STREAMED or BUFFERED, read as the gateway would (`Outcome`) | `protocol`, `metrics`, `kubernetes` |
//! | [`loopback`] | [`loopback_epp!`]: `TestEpp` (an in-process EPP on loopback over static endpoints) and `KubeEpp` (the same discovering through the fake API server); [`HERMETIC_CONFIG`], [`metrics`] | `protocol`, `metrics`, `kubernetes`, `binary` (`bench_tool`), bench `memory` |
//! | [`fake_apiserver`] | an in-process fake Kubernetes API server (list/watch, patches, faults, reviews) | `kubernetes`, `metrics`, `fake_apiserver_selftest` |
//! | [`tls_client`] | a TLS channel that accepts any certificate and remembers it | `binary` |
//! | [`otlp`] | an OTLP/gRPC trace collector (the real `TraceService/Export`) that keeps the spans it receives, and can hold exports | `protocol` (`tracing`), `binary` (`tracing`) |
//! | [`ports`] | free loopback ports for child processes, the `epp` binary's port flags | `binary`, `envoy` |
//! | [`health`] | whether a health port answers SERVING | `binary`, `envoy` |
//! | [`procfs`] | CPU time and resident memory from `/proc` | `binary`, benches `memory`, `scrape_cost` |
//! | [`prometheus`] | one sample's value from a Prometheus text page | `metrics`, `protocol`, bench `memory` |
//! | [`fixtures`] | endpoint fixtures (`TestEndpoint`), re-exported from `epp-core` | benches `scheduling`, `scrape_cost` |
//! | [`datastore`] | a datastore holding endpoint fixtures | benches `scheduling`, `scrape_cost` |
//! | [`env`] | a bench setting read from the environment | benches `memory`, `scrape_cost` |
//!
//! The `harness` feature is off by default: `epp-bench` ships inside the `epp` package,
//! so a production build compiles only [`messages`] (and no `epp-core` fixtures).
#![forbid(unsafe_code)]

pub mod messages;

#[cfg(feature = "harness")]
pub mod datastore;
#[cfg(feature = "harness")]
pub mod driver;
#[cfg(feature = "harness")]
pub mod env;
#[cfg(feature = "harness")]
pub mod fake_apiserver;
#[cfg(feature = "harness")]
pub mod health;
#[cfg(feature = "harness")]
pub mod loopback;
#[cfg(feature = "harness")]
pub mod otlp;
#[cfg(feature = "harness")]
pub mod ports;
#[cfg(feature = "harness")]
pub mod procfs;
#[cfg(feature = "harness")]
pub mod prometheus;
#[cfg(feature = "harness")]
pub mod python;
#[cfg(feature = "harness")]
pub mod stream;
#[cfg(feature = "harness")]
pub mod tls_client;

#[cfg(feature = "harness")]
pub use epp_core::datastore::fixtures;
#[cfg(feature = "harness")]
pub use loopback::{HERMETIC_CONFIG, metrics};
#[cfg(feature = "harness")]
pub use stream::{ExtProcStream, Next, REPLY_TIMEOUT};
