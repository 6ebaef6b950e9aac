//! What requests measured: errors by kind, per-metric histograms, destinations.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::histogram::LatencyHistogram;

/// Why a request failed; a bounded set, so the report stays small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection could not be made or broke.
    Connect,
    /// The stream ended with a gRPC status.
    Grpc(tonic::Code),
    /// The ext_proc server answered with an ImmediateResponse of this HTTP status.
    Immediate(u16),
    /// The HTTP server answered with this non-2xx status.
    Http(u16),
    Timeout,
    /// An open-loop start dropped because `max_in_flight` requests were running.
    Overload,
    /// An answer that breaks the protocol: what was wrong.
    Protocol(&'static str),
}

impl ErrorKind {
    pub fn label(&self) -> String {
        match self {
            ErrorKind::Connect => "connect".to_owned(),
            ErrorKind::Grpc(code) => format!("grpc:{code:?}"),
            ErrorKind::Immediate(status) => format!("immediate:{status}"),
            ErrorKind::Http(status) => format!("http:{status}"),
            ErrorKind::Timeout => "timeout".to_owned(),
            ErrorKind::Overload => "overload".to_owned(),
            ErrorKind::Protocol(what) => format!("protocol:{what}"),
        }
    }
}

/// What one successful request measured.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// One duration per metric of the [`Exchange`](crate::load::Exchange), in the same order, each measured from
    /// the request's (scheduled) start.
    pub timings: Vec<Duration>,
    /// Where the request went (the routing header, or the server that answered).
    pub destination: Option<String>,
    /// The request's shared-prefix group, if any.
    pub group: Option<usize>,
}

/// Everything a phase measured.
#[derive(Clone, Debug)]
pub struct Stats {
    pub metrics: Vec<(&'static str, LatencyHistogram)>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub destinations: BTreeMap<String, u64>,
    /// Destinations per shared-prefix group.
    pub group_destinations: BTreeMap<usize, BTreeMap<String, u64>>,
    /// From the first start to the last answer.
    pub elapsed: Duration,
}

impl Stats {
    pub fn new(metrics: &[&'static str]) -> Stats {
        Stats {
            metrics: metrics
                .iter()
                .map(|&name| (name, LatencyHistogram::new()))
                .collect(),
            ok: 0,
            errors: BTreeMap::new(),
            destinations: BTreeMap::new(),
            group_destinations: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The share of grouped requests that went to their group's most used destination
    /// (1.0: every group stuck to one endpoint); `None` without groups.
    pub fn group_affinity(&self) -> Option<f64> {
        let (top, all) = self
            .group_destinations
            .values()
            .map(|d| {
                (
                    d.values().max().copied().unwrap_or(0),
                    d.values().sum::<u64>(),
                )
            })
            .fold((0, 0), |(t, a), (top, all)| (t + top, a + all));
        (all > 0).then(|| top as f64 / all as f64)
    }

    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        match self.elapsed.as_secs_f64() {
            secs if secs > 0.0 => self.ok as f64 / secs,
            _ => 0.0,
        }
    }

    pub fn record(&mut self, outcome: Result<Sample, ErrorKind>) {
        match outcome {
            Ok(sample) => {
                self.ok += 1;
                for ((_, histogram), timing) in self.metrics.iter_mut().zip(&sample.timings) {
                    histogram.record(*timing);
                }
                if let Some(destination) = sample.destination {
                    if let Some(group) = sample.group {
                        let per_group = self.group_destinations.entry(group).or_default();
                        *per_group.entry(destination.clone()).or_default() += 1;
                    }
                    *self.destinations.entry(destination).or_default() += 1;
                }
            }
            Err(kind) => *self.errors.entry(kind.label()).or_default() += 1,
        }
    }

    /// Adds another phase of the same kind (rounds of one target).
    pub fn merge(&mut self, other: &Stats) {
        for ((_, mine), (_, theirs)) in self.metrics.iter_mut().zip(&other.metrics) {
            mine.merge(theirs);
        }
        self.ok += other.ok;
        for (label, count) in &other.errors {
            *self.errors.entry(label.clone()).or_default() += count;
        }
        for (destination, count) in &other.destinations {
            *self.destinations.entry(destination.clone()).or_default() += count;
        }
        for (group, theirs) in &other.group_destinations {
            let mine = self.group_destinations.entry(*group).or_default();
            for (destination, count) in theirs {
                *mine.entry(destination.clone()).or_default() += count;
            }
        }
        self.elapsed += other.elapsed;
    }
}
