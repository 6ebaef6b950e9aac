//! Knobs of the intake, with the defaults the EPP runs with.

use std::time::Duration;

use epp_kvevents::Limits;

/// Settings shared by every endpoint's subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeSettings {
    /// Bounds on one decoded message (payload bytes, events, hashes, tokens).
    pub limits: Limits,
    /// Flood guard: events per second one endpoint may feed the index (its burst is one
    /// second's worth); batches beyond it are dropped with reason `flood`. 0 turns it off.
    pub max_events_per_second: u64,
    /// How long a batch that skipped ahead waits for the missing ones before the gap is
    /// resolved (by replay, or by applying it and letting the index count the gap).
    pub reorder_window: Duration,
    /// The whole replay of one gap (connect, request, every reply) must fit in this.
    pub replay_timeout: Duration,
    /// First wait before retrying a failed connection; doubles up to 30 times this, jittered.
    pub reconnect_backoff: Duration,
    /// How long one connection attempt may take (the socket retries inside it).
    pub connect_timeout: Duration,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_events_per_second: 200_000,
            reorder_window: Duration::from_millis(20),
            replay_timeout: Duration::from_millis(500),
            reconnect_backoff: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(2),
        }
    }
}
