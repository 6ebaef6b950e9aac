//! Latency histograms in microseconds (HdrHistogram, 3 significant digits) and their summary.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency kept exactly: one hour. Longer values are clamped to it.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram with 1 µs resolution and 0.1% relative precision up to one hour.
#[derive(Clone, Debug)]
pub struct LatencyHistogram(Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        // Bounds are constants that HdrHistogram accepts (low ≥ 1, high ≥ 2·low, sigfig ≤ 5).
        let histogram = Histogram::new_with_bounds(1, MAX_MICROS, 3)
            .expect("constant histogram bounds are valid");
        LatencyHistogram(histogram)
    }

    /// Records one latency; sub-microsecond values count as 1 µs, over an hour as an hour.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        self.0.saturating_record(micros);
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Same bounds on both sides, so adding cannot fail.
        self.0
            .add(&other.0)
            .expect("histograms share bounds and auto-resize is off");
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at `quantile` (0.0–1.0) in microseconds; `None` when empty.
    pub fn quantile_micros(&self, quantile: f64) -> Option<u64> {
        (!self.0.is_empty()).then(|| self.0.value_at_quantile(quantile))
    }

    pub fn summary(&self) -> LatencySummary {
        let q = |quantile| self.quantile_micros(quantile).unwrap_or(0);
        LatencySummary {
            count: self.count(),
            min_us: if self.0.is_empty() { 0 } else { self.0.min() },
            mean_us: if self.0.is_empty() {
                0.0
            } else {
                self.0.mean()
            },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if self.0.is_empty() { 0 } else { self.0.max() },
        }
    }
}

/// Percentiles of one latency metric, in microseconds (0 when nothing was recorded).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// Microseconds as text with a unit that keeps 3 significant digits: `850µs`, `1.25ms`, `2.40s`.
pub fn format_micros(micros: u64) -> String {
    match micros {
        0..1_000 => format!("{micros}µs"),
        1_000..1_000_000 => format!("{:.2}ms", micros as f64 / 1e3),
        _ => format!("{:.2}s", micros as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(values_us: impl IntoIterator<Item = u64>) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for v in values_us {
            h.record(Duration::from_micros(v));
        }
        h
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let s = filled(1..=10_000).summary();
        assert_eq!(s.count, 10_000);
        assert_eq!(s.min_us, 1);
        // 3 significant digits: within 0.1% of the exact rank.
        for (got, exact) in [(s.p50_us, 5_000), (s.p90_us, 9_000), (s.p99_us, 9_900)] {
            let error = got.abs_diff(exact) as f64 / exact as f64;
            assert!(error <= 0.001, "got {got}, exact {exact}");
        }
        assert!(s.max_us.abs_diff(10_000) <= 10);
        assert!((s.mean_us - 5_000.5).abs() < 5.0);
    }

    #[test]
    fn tail_percentiles_see_outliers() {
        // 98 fast samples and 2 slow ones: p99 lands on the slow ones, p90 does not.
        let h = filled((0..98).map(|_| 100).chain([50_000, 50_000]));
        let s = h.summary();
        assert_eq!(s.p50_us, 100);
        assert_eq!(s.p90_us, 100);
        assert!(s.p99_us.abs_diff(50_000) <= 50, "{}", s.p99_us);
        assert!(s.max_us.abs_diff(50_000) <= 50);
    }

    #[test]
    fn clamps_and_empty() {
        let empty = LatencyHistogram::new().summary();
        assert_eq!(empty, LatencySummary::default());
        let h = filled([0]);
        assert_eq!(h.summary().max_us, 1, "sub-microsecond counts as 1 µs");
        let mut h = LatencyHistogram::new();
        h.record(Duration::from_secs(10_000));
        assert!(h.summary().max_us >= MAX_MICROS - MAX_MICROS / 1000);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = filled([10, 20]);
        a.merge(&filled([30]));
        assert_eq!(a.count(), 3);
        assert_eq!(a.summary().max_us, 30);
    }

    #[test]
    fn formats_with_units() {
        assert_eq!(format_micros(850), "850µs");
        assert_eq!(format_micros(1_250), "1.25ms");
        assert_eq!(format_micros(2_400_000), "2.40s");
    }
}
