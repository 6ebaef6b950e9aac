//! Arrival times from load stages, as inference-perf sends them: stages run back to back;
//! Poisson gaps are exponential, constant gaps are `1 / rate`; a stage sends whatever the
//! arrival process yields within its duration.

use rand::Rng;
use rand::rngs::SmallRng;

use super::WorkloadError;
use super::spec::{LoadSpec, LoadType};
use crate::results::StageInfo;

/// One arrival: when, and in which stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arrival {
    pub time_s: f64,
    pub stage: u32,
}

/// Every arrival of the load, in time order, and the stages as offered. A stage with an
/// infinite rate sends `pass_size` requests at its start (`None`: an error naming it).
pub fn generate(
    load: &LoadSpec,
    pass_size: Option<usize>,
    rng: &mut SmallRng,
) -> Result<(Vec<Arrival>, Vec<StageInfo>), WorkloadError> {
    validate(load)?;
    let mut arrivals = Vec::new();
    let mut stages = Vec::with_capacity(load.stages.len());
    let mut start = 0.0;
    for (i, spec) in load.stages.iter().enumerate() {
        let stage = i as u32;
        if spec.rate.is_infinite() {
            let count = pass_size.ok_or_else(|| WorkloadError::Spec {
                field: format!("load.stages[{i}].rate"),
                message: "an infinite rate needs a data set of known size \
                          (shared_prefix, or a total_count)"
                    .into(),
            })?;
            arrivals.extend((0..count).map(|_| Arrival {
                time_s: start,
                stage,
            }));
        } else {
            let end = start + spec.duration;
            let mut push = |time_s| arrivals.push(Arrival { time_s, stage });
            match load.kind {
                LoadType::Constant => constant(start, end, spec.rate, &mut push),
                LoadType::Poisson => poisson(start, end, spec.rate, rng, &mut push),
            }
        }
        stages.push(StageInfo {
            index: stage,
            rate: spec.rate.is_finite().then_some(spec.rate),
            start_s: start,
            duration_s: spec.duration,
            warmup: stage < load.warmup_stages,
        });
        start += spec.duration;
    }
    Ok((arrivals, stages))
}

/// Requests one seed of a generated workload may hold (each costs its record and, while in
/// flight, its engine state): 10 million.
pub const MAX_REQUESTS: usize = 10_000_000;

pub(super) fn validate(load: &LoadSpec) -> Result<(), WorkloadError> {
    let bad = |field: String, message: &str| {
        Err(WorkloadError::Spec {
            field,
            message: message.into(),
        })
    };
    if load.stages.is_empty() {
        return bad("load.stages".into(), "at least one stage is needed");
    }
    for (i, stage) in load.stages.iter().enumerate() {
        if stage.rate.is_nan() || stage.rate <= 0.0 {
            return bad(
                format!("load.stages[{i}].rate"),
                "must be a positive number",
            );
        }
        if !stage.duration.is_finite() || stage.duration < 0.0 {
            return bad(format!("load.stages[{i}].duration"), "must be seconds >= 0");
        }
        if stage.rate.is_finite() && stage.duration == 0.0 {
            return bad(format!("load.stages[{i}].duration"), "must be positive");
        }
    }
    let expected: f64 = load
        .stages
        .iter()
        .filter(|s| s.rate.is_finite())
        .map(|s| s.rate * s.duration)
        .sum();
    if expected > MAX_REQUESTS as f64 {
        return bad(
            "load.stages".into(),
            &format!(
                "about {expected:.0} requests; the lab runs at most {MAX_REQUESTS} per seed \
                 (lower the rates or durations)"
            ),
        );
    }
    if load.warmup_stages as usize >= load.stages.len() {
        return bad(
            "load.warmup_stages".into(),
            "must leave at least one measured stage",
        );
    }
    if load.max_concurrency == Some(0) {
        return bad("load.max_concurrency".into(), "must be at least 1");
    }
    Ok(())
}

/// `floor(rate × duration)` arrivals at `start + k / rate`.
fn constant(start: f64, end: f64, rate: f64, push: &mut impl FnMut(f64)) {
    let count = ((end - start) * rate + 1e-9).floor() as u64;
    for k in 0..count {
        push(start + k as f64 / rate);
    }
}

/// Exponential gaps from the stage start until the stage end.
fn poisson(start: f64, end: f64, rate: f64, rng: &mut SmallRng, push: &mut impl FnMut(f64)) {
    let mut t = start;
    loop {
        // 1 − u is in (0, 1], so the log is finite.
        let u: f64 = rng.random();
        t += -(1.0 - u).ln() / rate;
        if t >= end {
            return;
        }
        push(t);
    }
}
