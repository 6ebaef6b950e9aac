//! Builds the page Prometheus scrapes: the recorded families, then the families read from
//! the registered [`super::Collector`]s at scrape time.

use crate::telemetry::metrics::EppMetrics;
use crate::telemetry::metrics::definitions::{self as defs, MetricDef};
use crate::telemetry::metrics::exposition::Exposition;
use crate::telemetry::metrics::primitives::Histogram;
use crate::telemetry::metrics::recording::{ErrorCode, PairMetrics, Phase};

/// Picks one histogram out of a pair's metrics.
type PairHistogram = fn(&PairMetrics) -> &Histogram;

impl EppMetrics {
    /// The page Prometheus scrapes (text format 0.0.4, see [`super::CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut page = Exposition::default();
        self.render_pairs(&mut page);
        self.render_scheduling(&mut page);
        self.render_own(&mut page);
        let collectors = self.collectors.lock().clone();
        for collector in &collectors {
            collector.collect(&mut page);
        }
        page.finish()
    }

    fn render_pairs(&self, page: &mut Exposition) {
        let pairs = self.pairs.entries();
        let histograms: [(&'static MetricDef, PairHistogram); 6] = [
            (&defs::REQUEST_DURATION, |p| &p.duration),
            (&defs::REQUEST_SIZES, |p| &p.request_sizes),
            (&defs::RESPONSE_SIZES, |p| &p.response_sizes),
            (&defs::INPUT_TOKENS, |p| &p.input_tokens),
            (&defs::OUTPUT_TOKENS, |p| &p.output_tokens),
            (&defs::NTPOT, |p| &p.ntpot),
        ];
        // Go's vectors export only label sets that were used: a pair seen only in an
        // error has no request_total series.
        let mut requests = page.family(&defs::REQUEST_TOTAL);
        for (key, pair) in &pairs {
            let count = pair.requests.get();
            if count > 0 {
                requests.sample(&key.values(), count as f64);
            }
        }
        let mut errors = page.family(&defs::REQUEST_ERROR_TOTAL);
        for (key, pair) in &pairs {
            let [model, target] = key.values();
            for code in ErrorCode::ALL {
                let count = pair.errors[code as usize].get();
                if count > 0 {
                    errors.sample(&[code.as_str(), model, target], count as f64);
                }
            }
        }
        for (def, histogram) in histograms {
            let mut family = page.family(def);
            for (key, pair) in &pairs {
                let histogram = histogram(pair);
                // A pair touched by one recording has no observation in the others; Go
                // creates a histogram series only when it is observed.
                if histogram.count() > 0 {
                    family.histogram(&key.values(), &histogram.snapshot());
                }
            }
        }
        let mut running = page.family(&defs::RUNNING_REQUESTS);
        for (key, gauge) in self.running.entries() {
            running.sample(&key.values(), gauge.get() as f64);
        }
    }

    fn render_scheduling(&self, page: &mut Exposition) {
        if self.scheduler.count() > 0 {
            page.family(&defs::SCHEDULER_E2E)
                .histogram(&[], &self.scheduler.snapshot());
        }
        let mut plugins = page.family(&defs::PLUGIN_DURATION);
        for (key, histogram) in self.plugins.entries() {
            plugins.histogram(&key.values(), &histogram.snapshot());
        }
        if self.prefix_hit_bytes.count() > 0 {
            page.family(&defs::PREFIX_HIT_BYTES)
                .histogram(&[], &self.prefix_hit_bytes.snapshot());
        }
        if self.prefix_hit_ratio.count() > 0 {
            page.family(&defs::PREFIX_HIT_RATIO)
                .histogram(&[], &self.prefix_hit_ratio.snapshot());
        }
        if let Some(build) = self.build.load_full() {
            let (commit, build_ref) = &*build;
            page.family(&defs::INFO)
                .sample(&[build_ref.as_str(), commit.as_str()], 1.0);
        }
    }

    /// This EPP's own families: present from the start (at zero) so rates and alerts work.
    fn render_own(&self, page: &mut Exposition) {
        let mut phases = page.family(&defs::PHASE_DURATION);
        for phase in Phase::ALL {
            phases.histogram(&[phase.as_str()], &self.phases[phase as usize].snapshot());
        }
        let mut picks = page.family(&defs::PICKS_TOTAL);
        for (key, counter) in self.picks.entries() {
            picks.sample(&key.values(), counter.get() as f64);
        }
        page.family(&defs::EXT_PROC_STREAMS)
            .sample(&[], self.streams.get() as f64);
        page.family(&defs::SCRAPE_DURATION)
            .histogram(&[], &self.scrape_duration.snapshot());
        let mut overflow = page.family(&defs::LABEL_OVERFLOW_TOTAL);
        for (label_set, count) in [
            ("model", self.running.overflowed()),
            ("model_pair", self.pairs.overflowed()),
            ("plugin", self.plugins.overflowed()),
        ] {
            overflow.sample(&[label_set], count as f64);
        }
        let mut unusable = page.family(&defs::UNUSABLE_METRICS_TOTAL);
        for (key, counter) in self.unusable_metrics.entries() {
            unusable.sample(&key.values(), counter.get() as f64);
        }
        page.family(&defs::BUFFERED_REQUEST_BYTES)
            .sample(&[], self.buffered_bytes.get() as f64);
        page.family(&defs::BUFFER_BUDGET_REJECTIONS)
            .sample(&[], self.budget_rejections.get() as f64);
    }
}
