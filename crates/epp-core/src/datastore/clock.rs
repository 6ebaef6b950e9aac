//! The process clock for metric timestamps: monotonic, and pausable in tests through tokio.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Time elapsed since the first call in this process.
///
/// Stored as a `Duration` so it fits in an atomic; under `tokio::time::pause` it follows
/// the paused clock, which lets staleness tests run without sleeping.
pub fn now() -> Duration {
    let epoch = epoch();
    Instant::now().saturating_duration_since(epoch)
}
