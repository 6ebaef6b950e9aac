//! Lock-free counters, gauges and histograms: plain atomics, no allocation when recording.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A monotonic count of events.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// An integer gauge (open streams, running requests).
#[derive(Debug, Default)]
pub struct IntGauge(AtomicI64);

impl IntGauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Ordering::Relaxed);
    }
}

/// A classic Prometheus histogram with fixed upper bounds.
///
/// Buckets hold per-bucket (not cumulative) counts, the last one for values above every
/// bound; the count is their sum, so `_count` always equals the `+Inf` bucket.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
}

/// A copy of a histogram for rendering: cumulative counts per bound, sum and count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub bounds: &'static [f64],
    /// `cumulative[i]` = observations `<= bounds[i]`.
    pub cumulative: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    /// `bounds` must be ascending (they are the constants of `definitions`).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Adds one observation. A value equal to a bound falls in that bound's bucket (`le`),
    /// as Go's `sort.SearchFloat64s`. NaN is ignored (Go would poison the sum with it).
    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let index = self.bounds.partition_point(|bound| *bound < value);
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.add_to_sum(value);
    }

    fn add_to_sum(&self, value: f64) {
        // A CAS loop: there is no atomic float add. Contention is per label set and short.
        let mut current = self.sum_bits.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match self.sum_bits.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Total observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0u64;
        let mut cumulative = Vec::with_capacity(self.bounds.len());
        for bucket in self.buckets.iter().take(self.bounds.len()) {
            running += bucket.load(Ordering::Relaxed);
            cumulative.push(running);
        }
        let overflow = self.buckets.last().map_or(0, |b| b.load(Ordering::Relaxed));
        HistogramSnapshot {
            bounds: self.bounds,
            cumulative,
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
            count: running + overflow,
        }
    }
}
