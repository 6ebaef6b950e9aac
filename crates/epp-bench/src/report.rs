//! The result: a table on stdout and, with `--json`, a JSON document for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use crate::histogram::{LatencySummary, format_micros};
use crate::load::Stats;
use crate::workload::Workload;

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub command_line: Vec<String>,
    /// `direct` or `proxy`.
    pub mode: &'static str,
    /// Every flag of the subcommand with its effective value.
    pub config: BTreeMap<&'static str, String>,
    pub machine: Machine,
    pub started_unix_s: u64,
    pub workload: WorkloadInfo,
    pub targets: Vec<TargetReport>,
    /// The first target against the second (the baseline), when there is one.
    pub ratio: Option<Ratio>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub os: &'static str,
    pub arch: &'static str,
    pub cpu_model: Option<String>,
    pub kernel: Option<String>,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            });
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, usize::from),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|k| k.trim().to_owned()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct WorkloadInfo {
    pub distinct_requests: usize,
    pub body_bytes_min: usize,
    pub body_bytes_max: usize,
}

impl WorkloadInfo {
    pub fn of(workload: &Workload) -> WorkloadInfo {
        let (body_bytes_min, body_bytes_max) = workload.body_bytes();
        WorkloadInfo {
            distinct_requests: workload.len(),
            body_bytes_min,
            body_bytes_max,
        }
    }
}

/// One measured server.
#[derive(Debug, Serialize)]
pub struct TargetReport {
    /// `epp`, `noop` or `proxy`.
    pub name: String,
    pub address: String,
    pub requests_ok: u64,
    pub errors_total: u64,
    pub errors: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    pub throughput_rps: f64,
    /// Per metric; the first of `metrics` is the headline.
    pub metrics: Vec<&'static str>,
    pub latency: BTreeMap<&'static str, LatencySummary>,
    pub destinations: BTreeMap<String, u64>,
    /// Shared-prefix: the share of requests sent to their group's most used destination.
    pub group_affinity: Option<f64>,
}

impl TargetReport {
    pub fn new(name: &str, address: &str, stats: &Stats) -> TargetReport {
        TargetReport {
            name: name.to_owned(),
            address: address.to_owned(),
            requests_ok: stats.ok,
            errors_total: stats.error_count(),
            errors: stats.errors.clone(),
            elapsed_s: stats.elapsed.as_secs_f64(),
            throughput_rps: stats.throughput(),
            metrics: stats.metrics.iter().map(|(name, _)| *name).collect(),
            latency: stats
                .metrics
                .iter()
                .map(|(name, h)| (*name, h.summary()))
                .collect(),
            destinations: stats.destinations.clone(),
            group_affinity: stats.group_affinity(),
        }
    }

    fn headline(&self) -> Option<(&'static str, &LatencySummary)> {
        let name = *self.metrics.first()?;
        Some((name, self.latency.get(name)?))
    }
}

/// Target ÷ baseline for the headline latency (lower is better, 1.0 = same) and throughput.
#[derive(Debug, Serialize, PartialEq)]
pub struct Ratio {
    pub metric: &'static str,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub throughput: f64,
}

impl Ratio {
    pub fn of(target: &TargetReport, baseline: &TargetReport) -> Option<Ratio> {
        let (metric, t) = target.headline()?;
        let (_, b) = baseline.headline()?;
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        Some(Ratio {
            metric,
            p50: div(t.p50_us as f64, b.p50_us as f64),
            p90: div(t.p90_us as f64, b.p90_us as f64),
            p99: div(t.p99_us as f64, b.p99_us as f64),
            max: div(t.max_us as f64, b.max_us as f64),
            throughput: div(target.throughput_rps, baseline.throughput_rps),
        })
    }
}

impl Report {
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self).context("serialize the report")?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("write --json {}", path.display()))
    }

    /// The human-readable table.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<6} {:>8} {:>7} {:>10}  {:<9} {:>9} {:>9} {:>9} {:>9}",
            "target", "ok", "errors", "req/s", "metric", "p50", "p90", "p99", "max"
        );
        for target in &self.targets {
            for (i, metric) in target.metrics.iter().enumerate() {
                let s = target.latency.get(metric).cloned().unwrap_or_default();
                let lead = match i {
                    0 => format!(
                        "{:<6} {:>8} {:>7} {:>10.1}",
                        target.name, target.requests_ok, target.errors_total, target.throughput_rps
                    ),
                    _ => format!("{:<6} {:>8} {:>7} {:>10}", "", "", "", ""),
                };
                let _ = writeln!(
                    out,
                    "{lead}  {metric:<9} {:>9} {:>9} {:>9} {:>9}",
                    format_micros(s.p50_us),
                    format_micros(s.p90_us),
                    format_micros(s.p99_us),
                    format_micros(s.max_us)
                );
            }
        }
        if let Some(r) = &self.ratio {
            let _ = writeln!(
                out,
                "ratio {}/{} ({}): p50 {:.2}x  p90 {:.2}x  p99 {:.2}x  max {:.2}x  throughput {:.2}x",
                self.targets[0].name,
                self.targets[1].name,
                r.metric,
                r.p50,
                r.p90,
                r.p99,
                r.max,
                r.throughput
            );
        }
        for target in &self.targets {
            let list = |map: &BTreeMap<String, u64>| {
                map.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !target.errors.is_empty() {
                let _ = writeln!(out, "errors of {}: {}", target.name, list(&target.errors));
            }
            if !target.destinations.is_empty() {
                let _ = writeln!(
                    out,
                    "destinations of {}: {}",
                    target.name,
                    list(&target.destinations)
                );
            }
            if let Some(affinity) = target.group_affinity {
                let _ = writeln!(
                    out,
                    "group affinity of {}: {:.1}%",
                    target.name,
                    affinity * 100.0
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn target(name: &str, p50_ms: u64, rps: f64) -> TargetReport {
        let mut stats = Stats::new(&["exchange"]);
        for _ in 0..10 {
            stats.metrics[0].1.record(Duration::from_millis(p50_ms));
        }
        stats.ok = 10;
        stats.elapsed = Duration::from_secs_f64(10.0 / rps);
        TargetReport::new(name, "127.0.0.1:1", &stats)
    }

    #[test]
    fn ratio_is_target_over_baseline() {
        let ratio = Ratio::of(&target("epp", 2, 50.0), &target("noop", 1, 100.0)).expect("ratio");
        assert!((ratio.p50 - 2.0).abs() < 0.01 && (ratio.p99 - 2.0).abs() < 0.01);
        assert!((ratio.throughput - 0.5).abs() < 0.01);
        assert_eq!(ratio.metric, "exchange");
    }

    #[test]
    fn text_has_one_row_per_metric_and_the_ratio() {
        let epp = target("epp", 2, 50.0);
        let noop = target("noop", 1, 100.0);
        let ratio = Ratio::of(&epp, &noop);
        let report = Report {
            tool: "epp-bench",
            version: "0",
            command_line: vec![],
            mode: "direct",
            config: BTreeMap::new(),
            machine: Machine::detect(),
            started_unix_s: 0,
            workload: WorkloadInfo {
                distinct_requests: 1,
                body_bytes_min: 1,
                body_bytes_max: 1,
            },
            targets: vec![epp, noop],
            ratio,
        };
        let text = report.text();
        assert!(text.contains("epp") && text.contains("2.00ms"), "{text}");
        assert!(
            text.contains("ratio epp/noop (exchange): p50 2.00x"),
            "{text}"
        );
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["targets"][0]["latency"]["exchange"]["p50_us"], 2000);
        assert!(json["machine"]["nproc"].as_u64().expect("nproc") >= 1);
    }
}
