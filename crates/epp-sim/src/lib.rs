//! A simulated vLLM model server for tests, the README quick start and benchmarks.
//!
//! Each server listens on its own port with its own state and behaves like a vLLM V1 server in
//! real (wall-clock) time, optionally sped up by [`SimConfig::time_scale`]:
//!
//! * **API**: `POST /v1/completions`, `/v1/chat/completions` and `/v1/responses` (JSON or
//!   SSE), `POST /v1/embeddings` (prefill-only, deterministic unit vectors), `POST /tokenize`
//!   (vLLM's, giving exactly the token ids the engine hashes: `tokenize.rs`), `GET /v1/models`,
//!   `/health`, `/metrics`; unknown model → 404, invalid JSON → 400, as vLLM answers. Every
//!   response has an `x-sim-server: <port>` header (`http.rs`).
//! * **Tokens**: about 4 characters per token (`ceil(len/4)`); output length is `max_tokens`
//!   (default 16), or exactly `"sim": {"output_tokens": N}` when a request gives it. Output text
//!   is deterministic filler (`tokens.rs`).
//! * **Engine**: continuous batching with `max_num_seqs`, a per-step token budget, chunked
//!   prefill, FCFS queueing, recompute preemption, and a step time of
//!   `base + prefill_tokens·a + decodes·b + decode_context·c` (`engine.rs`,
//!   [`config::StepTimeModel`]); the engine itself is `epp_engine`'s, shared with `epp-lab`.
//! * **KV cache**: refcounted blocks with chained prefix hashes and an LRU free queue; usage as
//!   vLLM reports it. See [`epp_engine::kv_cache`].
//! * **LoRA**: `max_loras` adapters run at once; others wait (`lora.rs`).
//! * **Metrics**: vLLM V1 names, plus llm-d-inference-sim's fake-metrics override, settable at
//!   start ([`SimConfig::fake_metrics`]), through [`RunningSim::set_fake_metrics`], or over
//!   HTTP (`PUT /sim/fake-metrics`) (`metrics.rs`, [`FakeMetrics`]).
//! * **KV-cache events**: with [`KvEventsConfig::port`], each server publishes its engine's
//!   cache events over ZMQ exactly as vLLM's `ZmqEventPublisher` (PUB, optional ROUTER replay),
//!   with optional drops, swaps and delay ([`kv_events`]).
//!
//! In process:
//!
//! ```no_run
//! # async fn demo() -> Result<(), epp_sim::SimError> {
//! use epp_sim::{SimConfig, start};
//! let config = SimConfig { max_num_seqs: 2, time_scale: 0.1, ..SimConfig::default() };
//! let sim = start(config, "127.0.0.1:0".parse().expect("an address")).await?;
//! println!("serving on {}", sim.url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The `epp-sim` binary and `epp` share the flag table: [`SimArgs::parse`] and [`usage`].

mod api;
pub mod args;
pub mod config;
mod embeddings;
pub mod fake;
mod http;
pub mod kv_events;
mod metrics;
mod respond;
mod responses;
mod sequence;
mod server;
mod tokenize;
mod tokens;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};

pub use args::{ArgsError, SimArgs, usage};
pub use config::{KvUsageMetric, OutputLength, SimConfig, StepTimeModel};
pub use fake::{FakeLora, FakeMetrics};
pub use kv_events::{HashForm, KvEventsConfig};
pub use server::{RunningSim, SimStats, start};

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The config breaks a limit; the message names the flag.
    #[error("invalid simulator config: {0}")]
    Config(String),
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `base_port + count` runs past port 65535.
    #[error("{count} servers from port {base_port} run past port 65535")]
    PortRange {
        /// The first port.
        base_port: u16,
        /// The number of servers.
        count: usize,
    },
}

/// Starts `count` independent servers with the same `config` on `host`, ports `base_port`,
/// `base_port + 1`, … (or free ports when `base_port` is 0). Server `i` is KV-event rank `i`
/// (its event ports are offset by `i`). On an error, the servers already started are shut
/// down.
pub async fn start_many(
    config: SimConfig,
    host: IpAddr,
    base_port: u16,
    count: usize,
) -> Result<Vec<RunningSim>, SimError> {
    // Free ports are picked, released, then bound: another process may take one in between,
    // so that case is retried with fresh ports a few times.
    let mut attempts = if base_port == 0 { 5 } else { 1 };
    loop {
        attempts -= 1;
        match start_once(config.clone(), host, base_port, count).await {
            Err(SimError::Bind { source, .. })
                if attempts > 0 && source.kind() == std::io::ErrorKind::AddrInUse => {}
            result => return result,
        }
    }
}

async fn start_once(
    config: SimConfig,
    host: IpAddr,
    base_port: u16,
    count: usize,
) -> Result<Vec<RunningSim>, SimError> {
    let mut sims = Vec::with_capacity(count);
    // With free ports, take them in ascending order, so that server `i` is also the `i`-th port
    // of its address: the rank an EPP derives for it (and so the event port it subscribes to).
    let free = if base_port == 0 && count > 1 {
        free_ports_ascending(host, count)
    } else {
        Vec::new()
    };
    for i in 0..count {
        let port = match base_port {
            0 => Some(free.get(i).copied().unwrap_or(0)),
            base => u16::try_from(i).ok().and_then(|i| base.checked_add(i)),
        };
        let Some(port) = port else {
            shutdown_all(sims).await;
            return Err(SimError::PortRange { base_port, count });
        };
        match server::start_ranked(config.clone(), SocketAddr::new(host, port), i).await {
            Ok(sim) => sims.push(sim),
            Err(error) => {
                shutdown_all(sims).await;
                return Err(error);
            }
        }
    }
    Ok(sims)
}

/// `count` ports that were free a moment ago, ascending (empty if they cannot be had; the
/// servers then bind port 0 each).
fn free_ports_ascending(host: IpAddr, count: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .filter_map(|_| std::net::TcpListener::bind(SocketAddr::new(host, 0)).ok())
        .collect();
    let mut ports: Vec<u16> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok().map(|a| a.port()))
        .collect();
    if ports.len() != count {
        return Vec::new();
    }
    ports.sort_unstable();
    ports
}

async fn shutdown_all(sims: Vec<RunningSim>) {
    for sim in sims {
        sim.shutdown().await;
    }
}
