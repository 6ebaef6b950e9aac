//! End-to-end tests through a real Envoy (1.40, installed by `.ci/install-envoy`): each test
//! starts `epp-sim` servers, the `epp` binary and Envoy with one of `configs/*.yaml`, sends
//! HTTP requests to Envoy, and checks what Envoy did (the `x-e2e-*` response headers and
//! the access log) and which simulator answered (`x-sim-server`).

mod client;
mod harness;
mod processes;

mod apis;
mod buffered_streaming;
mod conformance;
mod demo;
mod errors;
mod failure;
mod load;
mod precise;
mod routing;
mod scoring;
mod streaming;
mod subset;
mod tls;
