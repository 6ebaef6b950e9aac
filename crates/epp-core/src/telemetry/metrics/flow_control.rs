//! Flow control's families: what waits, how long, and what was refused. Recorded by the
//! flow controller's observer; the waiting sizes are read at scrape time.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::telemetry::metrics::definitions::{
    FLOW_CONTROL_DISPATCHES, FLOW_CONTROL_QUEUE_BYTES, FLOW_CONTROL_QUEUE_DURATION,
    FLOW_CONTROL_QUEUE_SIZE, FLOW_CONTROL_REJECTIONS, FLOW_QUEUE_WAIT_BUCKETS, POOL_SATURATION,
};
use crate::telemetry::metrics::exposition::Exposition;
use crate::telemetry::metrics::labels::LabelCache;
use crate::telemetry::metrics::primitives::{Counter, Histogram};

/// Priority bands with their own series; more distinct priorities share `other`.
const MAX_BANDS: usize = 64;

/// See the module docs.
#[derive(Debug)]
pub struct FlowMetrics {
    waits: LabelCache<2, Histogram>,
    dispatches: LabelCache<1, Counter>,
    rejections: LabelCache<2, Counter>,
    /// The detector's name and its last level (as f64 bits): written on every admission,
    /// so no lock.
    detector: OnceLock<&'static str>,
    level: AtomicU64,
}

impl Default for FlowMetrics {
    fn default() -> Self {
        FlowMetrics {
            waits: LabelCache::new(MAX_BANDS * 3, || Histogram::new(FLOW_QUEUE_WAIT_BUCKETS)),
            dispatches: LabelCache::new(MAX_BANDS, Counter::default),
            rejections: LabelCache::new(MAX_BANDS * 4, Counter::default),
            detector: OnceLock::new(),
            level: AtomicU64::new(0),
        }
    }
}

impl FlowMetrics {
    /// A request that waited `seconds` left the room: `outcome` is `dispatched` or the
    /// refusal reason.
    pub fn waited(&self, priority: i32, outcome: &str, seconds: f64) {
        let priority = priority.to_string();
        self.waits
            .with([priority.as_str(), outcome], |h| h.observe(seconds));
        if outcome == "dispatched" {
            self.dispatches.with([priority.as_str()], Counter::inc);
        }
    }

    /// A refusal, on arrival (`band_full`, `queue_full`) or later (`displaced`, `expired`).
    pub fn refused(&self, priority: i32, reason: &str) {
        let priority = priority.to_string();
        self.rejections
            .with([priority.as_str(), reason], Counter::inc);
    }

    /// The detector's last reading.
    pub fn saturation(&self, detector: &'static str, level: f64) {
        self.level.store(level.to_bits(), Ordering::Relaxed);
        if self.detector.get().is_none() {
            let _ = self.detector.set(detector);
        }
    }

    /// Writes the families; `bands` are (priority, requests, bytes) waiting now.
    pub fn collect(&self, page: &mut Exposition, bands: &[(i32, usize, u64)]) {
        let mut size = page.family(&FLOW_CONTROL_QUEUE_SIZE);
        for &(priority, requests, _) in bands {
            size.sample(&[&priority.to_string()], requests as f64);
        }
        let mut bytes = page.family(&FLOW_CONTROL_QUEUE_BYTES);
        for &(priority, _, b) in bands {
            bytes.sample(&[&priority.to_string()], b as f64);
        }
        let mut waits = page.family(&FLOW_CONTROL_QUEUE_DURATION);
        for (key, histogram) in self.waits.entries() {
            waits.histogram(&key.values(), &histogram.snapshot());
        }
        let mut dispatches = page.family(&FLOW_CONTROL_DISPATCHES);
        for (key, counter) in self.dispatches.entries() {
            dispatches.sample(&key.values(), counter.get() as f64);
        }
        let mut rejections = page.family(&FLOW_CONTROL_REJECTIONS);
        for (key, counter) in self.rejections.entries() {
            rejections.sample(&key.values(), counter.get() as f64);
        }
        if let Some(detector) = self.detector.get() {
            let level = f64::from_bits(self.level.load(Ordering::Relaxed));
            page.family(&POOL_SATURATION).sample(&[detector], level);
        }
    }
}
