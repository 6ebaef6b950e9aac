//! Counters of a token source, read by the binary for its metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use epp_core::tokens::TokenizeError;

/// A copy of a source's counters (all monotonic but the cache gauges).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenizeStats {
    /// Calls answered from the cache, without a tokenizer.
    pub cache_hits: u64,
    /// Calls that asked the tokenizer (model server or file), successful or not (the
    /// file source has no cache: every call that reaches its tokenizer counts here).
    pub cache_misses: u64,
    /// Calls that shared the answer of an identical call in progress.
    pub coalesced: u64,
    /// Calls whose body already held token ids.
    pub passthrough: u64,
    /// Failed calls, by [`TokenizeError::reason`].
    pub errors: ErrorCounts,
    /// Summed wall time of the calls that asked the tokenizer, successful or not.
    pub latency_sum: Duration,
    /// Prompts cached now (gauge).
    pub cache_entries: u64,
    /// Bytes charged for the cached prompts now (gauge).
    pub cache_bytes: u64,
}

/// Failed calls by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    pub timeout: u64,
    pub unavailable: u64,
    pub bad_response: u64,
    pub unsupported: u64,
}

impl ErrorCounts {
    /// `(reason label, count)` pairs, labels as [`TokenizeError::reason`] gives them.
    pub fn by_reason(&self) -> [(&'static str, u64); 4] {
        [
            ("timeout", self.timeout),
            ("unavailable", self.unavailable),
            ("bad_response", self.bad_response),
            ("unsupported", self.unsupported),
        ]
    }

    pub fn total(&self) -> u64 {
        self.timeout + self.unavailable + self.bad_response + self.unsupported
    }
}

/// Reads a source's counters; cheap to clone and keep after the source is type-erased.
#[derive(Debug, Clone, Default)]
pub struct StatsHandle(Arc<Counters>);

impl StatsHandle {
    pub fn read(&self) -> TokenizeStats {
        self.0.read()
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.0
    }
}

/// The live counters, shared by a source and its [`StatsHandle`]s.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    passthrough: AtomicU64,
    coalesced: AtomicU64,
    timeout: AtomicU64,
    unavailable: AtomicU64,
    bad_response: AtomicU64,
    unsupported: AtomicU64,
    latency_nanos: AtomicU64,
    cache_entries: AtomicU64,
    cache_bytes: AtomicU64,
}

impl Counters {
    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn coalesced(&self) {
        self.coalesced.fetch_add(1, Ordering::Relaxed);
    }

    pub fn passthrough(&self) {
        self.passthrough.fetch_add(1, Ordering::Relaxed);
    }

    /// A call that asked the tokenizer, and how long it took.
    pub fn cache_miss(&self, latency: Duration) {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn error(&self, error: &TokenizeError) {
        let counter = match error {
            TokenizeError::Timeout => &self.timeout,
            TokenizeError::Unavailable(_) => &self.unavailable,
            TokenizeError::BadResponse(_) => &self.bad_response,
            TokenizeError::Unsupported(_) => &self.unsupported,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cache_size(&self, entries: usize, bytes: usize) {
        self.cache_entries.store(entries as u64, Ordering::Relaxed);
        self.cache_bytes.store(bytes as u64, Ordering::Relaxed);
    }

    fn read(&self) -> TokenizeStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TokenizeStats {
            cache_hits: load(&self.cache_hits),
            cache_misses: load(&self.cache_misses),
            passthrough: load(&self.passthrough),
            coalesced: load(&self.coalesced),
            errors: ErrorCounts {
                timeout: load(&self.timeout),
                unavailable: load(&self.unavailable),
                bad_response: load(&self.bad_response),
                unsupported: load(&self.unsupported),
            },
            latency_sum: Duration::from_nanos(load(&self.latency_nanos)),
            cache_entries: load(&self.cache_entries),
            cache_bytes: load(&self.cache_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_labels_match_the_contract() {
        let handle = StatsHandle::default();
        let errors = [
            TokenizeError::Timeout,
            TokenizeError::Unavailable(String::new()),
            TokenizeError::BadResponse(String::new()),
            TokenizeError::Unsupported(String::new()),
        ];
        for (i, error) in errors.iter().enumerate() {
            for _ in 0..=i {
                handle.counters().error(error);
            }
        }
        let counts = handle.read().errors;
        for (i, ((label, count), error)) in counts.by_reason().iter().zip(&errors).enumerate() {
            assert_eq!((*label, *count), (error.reason(), i as u64 + 1));
        }
        assert_eq!(counts.total(), 10);
    }
}
