//! Router mode (`--proxy-port`): the EPP serves the OpenAI HTTP API itself, routes each
//! request with the same director (and so the same scheduling profiles) as its ext_proc
//! service, and forwards it to the picked endpoint, streaming the response back.
//!
//! One exchange: read the head ([`headers`]), read the body within the limits
//! ([`inbound`]), parse and route it ([`exchange`]), send it upstream over a pooled
//! keep-alive connection ([`upstream`]), and stream the answer back frame by frame
//! ([`response`]), keeping the pick's in-flight count raised until the response ends or
//! the client leaves.
//!
//! Invariants:
//! - The limits and answers are ext_proc's: `--max-request-body-bytes` (413), the shared
//!   [`epp_extproc::BufferBudget`] (503), and pick failures mapped by
//!   [`epp_extproc::Rejection`].
//! - The response body is pulled from upstream only when the client takes a frame
//!   (backpressure); when the client leaves, the upstream response is dropped at once,
//!   which closes its connection and so cancels the request at the model server.
//! - The [`epp_core::director::Decision`] lives exactly as long as the exchange.
//! - Prompts and bodies are never logged.

mod exchange;
pub mod headers;
mod inbound;
mod response;
mod server;
mod stats;
pub mod timeline;
mod upstream;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use epp_extproc::{EndpointPicker, StreamSettings};

pub use server::Proxy;
pub use stats::{ProxyCollector, ProxyStats};
pub use timeline::{ExchangeObserver, ExchangeReport, Outcome, Timeline};

/// Default of `--proxy-connect-timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the router mode serves and forwards.
#[derive(Clone)]
pub struct ProxySettings {
    /// The limits, metrics, budget, request log and token source, shared with ext_proc
    /// (the budget is one process-wide instance).
    pub stream: Arc<StreamSettings>,
    /// Longest wait for a TCP connection to an endpoint; past it the client gets 504.
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per endpoint.
    pub max_idle_per_endpoint: usize,
    /// An idle upstream connection is closed after this.
    pub idle_timeout: Duration,
    /// Told about every finished exchange (the hook for tracing spans); `None`: nobody.
    pub observer: Option<Arc<dyn ExchangeObserver>>,
}

impl ProxySettings {
    /// The defaults around `stream`.
    pub fn new(stream: Arc<StreamSettings>) -> Self {
        ProxySettings {
            stream,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_idle_per_endpoint: 256,
            idle_timeout: Duration::from_secs(90),
            observer: None,
        }
    }
}

impl std::fmt::Debug for ProxySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxySettings")
            .field("connect_timeout", &self.connect_timeout)
            .field("max_idle_per_endpoint", &self.max_idle_per_endpoint)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// What every exchange shares: the picker, the settings, the upstream client, counters.
struct Shared {
    picker: Arc<dyn EndpointPicker>,
    settings: ProxySettings,
    client: upstream::Client,
    stats: Arc<ProxyStats>,
}
