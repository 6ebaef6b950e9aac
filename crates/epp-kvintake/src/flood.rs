//! The flood guard: a token bucket of events per second, one per endpoint.

use std::time::Duration;

/// Refills `rate` tokens per second up to a burst of one second's worth. A rate of 0 admits
/// everything.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Option<Duration>,
}

impl TokenBucket {
    pub fn new(events_per_second: u64) -> Self {
        let rate = events_per_second as f64;
        Self {
            rate,
            tokens: rate,
            last: None,
        }
    }

    /// Takes `events` tokens at time `now` if they are there; `false` means drop the batch.
    pub fn admit(&mut self, events: u64, now: Duration) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        if let Some(last) = self.last {
            let elapsed = now.saturating_sub(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        }
        self.last = Some(now);
        let need = events as f64;
        if need <= self.tokens {
            self.tokens -= need;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let mut b = TokenBucket::new(100);
        let t0 = Duration::from_secs(1);
        assert!(b.admit(60, t0));
        assert!(b.admit(40, t0));
        assert!(!b.admit(1, t0), "burst of one second's worth is spent");
        assert!(!b.admit(20, t0 + Duration::from_millis(100)), "10 refilled");
        assert!(b.admit(10, t0 + Duration::from_millis(200)));
        assert!(
            b.admit(100, t0 + Duration::from_secs(10)),
            "refill caps at the burst"
        );
        assert!(!b.admit(1, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn zero_rate_admits_all() {
        let mut b = TokenBucket::new(0);
        assert!(b.admit(u64::MAX, Duration::ZERO));
    }

    #[test]
    fn batch_larger_than_burst_is_dropped() {
        let mut b = TokenBucket::new(10);
        assert!(!b.admit(11, Duration::ZERO));
        assert!(b.admit(10, Duration::ZERO));
    }
}
