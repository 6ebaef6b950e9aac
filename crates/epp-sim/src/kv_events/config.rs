//! What `--kv-events-*` configure: where each server publishes, how hashes are encoded, the
//! replay buffer, and the faults injected on the way out.

use std::time::Duration;

/// Largest `--kv-events-buffer-steps`: bounds the replay memory of one server.
pub const MAX_BUFFER_STEPS: usize = 1_000_000;

/// How block hashes go on the wire (`--kv-events-hash-bytes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HashForm {
    /// The engine's 64-bit hash as a msgpack integer (vLLM before its hashes became bytes).
    #[default]
    Int,
    /// 32 bytes, as vLLM's SHA-256 block hashes: the 64-bit hash as a 256-bit big-endian
    /// integer (24 zero bytes, then the 8 bytes big-endian), so a consumer that keys on the
    /// last 8 bytes gets the integer back and one that hashes all 32 bytes sees distinct keys.
    Bytes32,
}

/// KV-cache event publishing of every server of one `epp-sim` process; server `i` uses the
/// ports `port + i` and `replay_port + i`, and sends `data_parallel_rank = i`.
#[derive(Clone, Debug, PartialEq)]
pub struct KvEventsConfig {
    /// PUB port of server 0 (`--kv-events-port`); `None`: no events (the engine records none).
    /// `Some(0)` gives every server a free port (see `RunningSim::kv_events_address`).
    pub port: Option<u16>,
    /// ROUTER port of server 0 for replays (`--kv-events-replay-port`); `None`: no replay.
    /// `Some(0)` picks free ports, as for `port`.
    pub replay_port: Option<u16>,
    /// First frame of every message (`--kv-events-topic`); vLLM's default is empty.
    pub topic: String,
    /// How hashes are encoded.
    pub hash_form: HashForm,
    /// Batches kept for replay, newest last (`--kv-events-buffer-steps`, 1..=1,000,000).
    pub buffer_steps: usize,
    /// Fraction of batches never sent, in [0, 1]; a dropped batch keeps its seq and stays in
    /// the replay buffer, like a message lost on the network.
    pub drop_ratio: f64,
    /// How much later than produced every batch is sent, order kept (0 = at once).
    pub delay: Duration,
    /// Fraction of batches swapped with the one that follows, in [0, 1]. A batch held for a
    /// swap goes out alone when no successor comes within 50 ms, so sparse traffic is swapped
    /// less often than the ratio says.
    pub reorder_ratio: f64,
}

impl Default for KvEventsConfig {
    fn default() -> Self {
        Self {
            port: None,
            replay_port: None,
            topic: String::new(),
            hash_form: HashForm::Int,
            buffer_steps: 10_000,
            drop_ratio: 0.0,
            delay: Duration::ZERO,
            reorder_ratio: 0.0,
        }
    }
}

impl KvEventsConfig {
    /// Whether servers publish at all.
    pub fn enabled(&self) -> bool {
        self.port.is_some()
    }

    /// Checks ranges; the error names the flag.
    pub fn validate(&self) -> Result<(), String> {
        for (flag, ratio) in [
            ("kv-events-drop-ratio", self.drop_ratio),
            ("kv-events-reorder-ratio", self.reorder_ratio),
        ] {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(format!("--{flag} must be in [0, 1], got {ratio}"));
            }
        }
        if !(1..=MAX_BUFFER_STEPS).contains(&self.buffer_steps) {
            return Err(format!(
                "--kv-events-buffer-steps must be in 1..={MAX_BUFFER_STEPS}, got {}",
                self.buffer_steps
            ));
        }
        if self.replay_port.is_some() && self.port.is_none() {
            return Err("--kv-events-replay-port needs --kv-events-port".to_owned());
        }
        Ok(())
    }
}

/// The port of server `rank` when server 0 has `base` (0 stays 0: a free port each);
/// `None` past 65535.
pub(crate) fn port_of(base: u16, rank: usize) -> Option<u16> {
    match base {
        0 => Some(0),
        base => u16::try_from(rank).ok().and_then(|r| base.checked_add(r)),
    }
}
