//! Time as a parameter: every reading that can change a decision (metric stamps and ages,
//! the staleness cut-off of a scheduling cycle) goes through a [`Clock`] handle the
//! datastore holds, so tests and a discrete-event simulator can run in virtual time.
//!
//! Latency measurements for Prometheus histograms and decision records keep
//! `std::time::Instant`: they describe the process, they do not steer it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic source of "now", as the time elapsed since the clock's epoch.
///
/// Readings are `Duration`s so they fit in an atomic (endpoint metric stamps); two
/// readings are comparable only when they come from the same clock.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Time since the clock's epoch; never decreases.
    fn now(&self) -> Duration;
}

/// The host's monotonic clock, for production.
///
/// Every `SystemClock` shares one epoch (the first reading in the process), so readings
/// of different handles agree. It reads tokio's clock, which is the host clock unless a
/// test pauses it (`tokio::time::pause`), so paused-time tests keep working.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        static EPOCH: OnceLock<tokio::time::Instant> = OnceLock::new();
        let epoch = *EPOCH.get_or_init(tokio::time::Instant::now);
        tokio::time::Instant::now().saturating_duration_since(epoch)
    }
}

/// Virtual time that moves only when told to: for tests and simulation.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock at its epoch (`now() == 0`).
    pub fn new() -> Self {
        ManualClock::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = nanos(by);
        // The closure always returns `Some`, so the update cannot fail.
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Moves the clock to `to`; a time before the current one leaves it where it is, so
    /// the clock stays monotonic.
    pub fn set(&self, to: Duration) {
        self.nanos.fetch_max(nanos(to), Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

/// `d` in nanoseconds, saturating (u64 nanoseconds last 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward_when_told() {
        let clock = ManualClock::new();
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), Duration::from_millis(1500));
        clock.set(Duration::from_secs(10));
        assert_eq!(clock.now(), Duration::from_secs(10));
        clock.set(Duration::from_secs(3));
        assert_eq!(clock.now(), Duration::from_secs(10), "never backwards");
    }

    #[tokio::test(start_paused = true)]
    async fn system_clock_follows_paused_tokio_time() {
        let before = SystemClock.now();
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(SystemClock.now() - before, Duration::from_secs(7));
    }
}
