//! The Prometheus text format 0.0.4 exactly as Go's `expfmt.MetricFamilyToText` writes it, so
//! scrapes of this EPP and of the Go EPP give identical series: families sorted by name,
//! empty families omitted, labels in sorted-name order with `le` last, numbers formatted as
//! Go's `strconv.FormatFloat(v, 'g', -1, 64)` (`1.048576e+06`, `1e-05`, `+Inf`).

use crate::telemetry::go_float::write_go_float;
use crate::telemetry::metrics::definitions::{Kind, MetricDef};
use crate::telemetry::metrics::primitives::HistogramSnapshot;

/// The `Content-Type` of [`Exposition::finish`]'s output (Go's `expfmt.FmtText`).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Collects families, then writes them sorted by name.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<(&'static str, String)>,
}

impl Exposition {
    /// Starts a family; its `# HELP`/`# TYPE` lines are written with its first sample, so a
    /// family without samples leaves no trace (as in Go).
    pub fn family(&mut self, def: &'static MetricDef) -> FamilyWriter<'_> {
        self.families.push((def.name, String::new()));
        let index = self.families.len() - 1;
        FamilyWriter {
            def,
            out: &mut self.families[index].1,
        }
    }

    /// The page.
    pub fn finish(mut self) -> String {
        self.families.sort_by_key(|(name, _)| *name);
        let len = self.families.iter().map(|(_, body)| body.len()).sum();
        let mut page = String::with_capacity(len);
        for (_, body) in &self.families {
            page.push_str(body);
        }
        page
    }
}

/// Writes the samples of one family.
#[derive(Debug)]
pub struct FamilyWriter<'a> {
    def: &'static MetricDef,
    out: &'a mut String,
}

impl FamilyWriter<'_> {
    /// One counter or gauge sample; `values` follow `def.labels`.
    pub fn sample(&mut self, values: &[&str], value: f64) {
        self.header();
        write_sample(
            self.out,
            self.def.name,
            "",
            self.def.labels,
            values,
            None,
            value,
        );
    }

    /// The `_bucket`, `_sum` and `_count` lines of one histogram.
    pub fn histogram(&mut self, values: &[&str], snapshot: &HistogramSnapshot) {
        self.header();
        let (name, labels) = (self.def.name, self.def.labels);
        for (bound, count) in snapshot.bounds.iter().zip(&snapshot.cumulative) {
            write_sample(
                self.out,
                name,
                "_bucket",
                labels,
                values,
                Some(*bound),
                *count as f64,
            );
        }
        let count = snapshot.count as f64;
        write_sample(
            self.out,
            name,
            "_bucket",
            labels,
            values,
            Some(f64::INFINITY),
            count,
        );
        write_sample(self.out, name, "_sum", labels, values, None, snapshot.sum);
        write_sample(self.out, name, "_count", labels, values, None, count);
    }

    fn header(&mut self) {
        if !self.out.is_empty() {
            return;
        }
        let def = self.def;
        self.out.push_str("# HELP ");
        self.out.push_str(def.name);
        self.out.push(' ');
        escape_into(self.out, def.help, false);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(def.name);
        self.out.push(' ');
        self.out.push_str(def.kind.as_str());
        self.out.push('\n');
        debug_assert!(def.kind == Kind::Histogram || def.buckets.is_empty());
    }
}

fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[&str],
    values: &[&str],
    le: Option<f64>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        let mut separator = '{';
        for (label, label_value) in labels.iter().zip(values) {
            out.push(separator);
            out.push_str(label);
            out.push_str("=\"");
            escape_into(out, label_value, true);
            out.push('"');
            separator = ',';
        }
        if let Some(bound) = le {
            out.push(separator);
            out.push_str("le=\"");
            write_go_float(out, bound);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    write_go_float(out, value);
    out.push('\n');
}

/// Go's text-format escaping: `\` and newline always, `"` in label values.
fn escape_into(out: &mut String, text: &str, quote: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}
