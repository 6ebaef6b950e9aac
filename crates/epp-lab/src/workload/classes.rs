//! Multi-class workloads (`workloads:`): several request classes, each with its own
//! inference-perf `data:`/`load:`, an InferenceObjective and a number of flows (fairness
//! ids), sent together over one run.
//!
//! Each class is generated from its own random stream of the run's seed, so adding a class
//! does not change the requests of the others. The merged workload is in arrival order;
//! the classes' stages run side by side (same count and durations), so stage `i` of the
//! merged workload offers the sum of the classes' stage-`i` rates.

use std::path::Path;

use rand::Rng;
use rand::rngs::SmallRng;

use super::tokens::mix;
use super::{Arrival, FlowTag, Workload, WorkloadError, WorkloadSpec};
use crate::results::StageInfo;

/// How a class's requests are spread over its flows.
#[derive(Clone, Debug, PartialEq)]
pub enum FlowAssignment {
    /// Request `i` of the class goes to flow `i mod flows`.
    RoundRobin { flows: u32 },
    /// Each request draws its flow with these relative weights (seeded).
    Weighted(Vec<f64>),
}

impl FlowAssignment {
    pub fn flows(&self) -> u32 {
        match self {
            FlowAssignment::RoundRobin { flows } => *flows,
            FlowAssignment::Weighted(weights) => weights.len() as u32,
        }
    }
}

/// One class of a multi-class workload, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadClass {
    pub name: String,
    /// The InferenceObjective its requests name (`None`: none, priority 0).
    pub objective: Option<String>,
    pub flows: FlowAssignment,
    /// Its `data:` and `load:` (never `builtin`, `inference_perf` or `trace` once resolved).
    pub spec: WorkloadSpec,
}

/// What the simulator and the reports need of a class.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClassInfo {
    pub name: String,
    pub objective: Option<String>,
    pub flows: u32,
}

/// The seed of class `index` ("class" in ASCII mixed in, so no class shares a stream with
/// a single workload of the same seed).
fn class_seed(seed: u64, index: usize) -> u64 {
    mix(&[seed, 0x0063_6c61_7373, index as u64])
}

/// Generates every class for one seed and merges them in arrival order.
pub fn generate(classes: &[WorkloadClass], seed: u64) -> Result<Workload, WorkloadError> {
    let mut parts = Vec::with_capacity(classes.len());
    for (index, class) in classes.iter().enumerate() {
        let part = Workload::generate(&class.spec, class_seed(seed, index), Path::new("."))
            .map_err(|e| prefix(e, index))?;
        parts.push(part);
    }
    let stages = merged_stages(&parts)?;
    // Groups and sessions are numbered per class; offset them so they stay distinct.
    let (mut group_base, mut session_base) = (0u32, 0u32);
    let mut keyed = Vec::new();
    for (index, (class, part)) in classes.iter().zip(parts).enumerate() {
        let mut rng: SmallRng =
            rand::SeedableRng::seed_from_u64(mix(&[class_seed(seed, index), 4]));
        let (mut groups, mut sessions) = (0u32, 0u32);
        let mut key = 0.0;
        for (i, mut request) in part.requests.into_iter().enumerate() {
            // A closed-loop round sorts with the request before it in its class.
            if let Arrival::At(t) = request.arrival {
                key = t;
            }
            groups = groups.max(request.group.map_or(0, |g| g + 1));
            sessions = sessions.max(request.session.map_or(0, |s| s + 1));
            request.group = request.group.map(|g| g + group_base);
            request.session = request.session.map(|s| s + session_base);
            request.flow = Some(FlowTag {
                class: index as u32,
                flow: assign(&class.flows, i, &mut rng),
            });
            keyed.push((key, request));
        }
        group_base += groups;
        session_base += sessions;
    }
    // Stable: equal times keep class order, then order within the class.
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
    Ok(Workload {
        name: format!("classes {}", names.join(" + ")),
        requests: keyed.into_iter().map(|(_, r)| r).collect(),
        stages,
        max_concurrency: None,
        classes: classes
            .iter()
            .map(|c| ClassInfo {
                name: c.name.clone(),
                objective: c.objective.clone(),
                flows: c.flows.flows(),
            })
            .collect(),
    })
}

fn assign(flows: &FlowAssignment, i: usize, rng: &mut SmallRng) -> u32 {
    match flows {
        FlowAssignment::RoundRobin { flows } => (i as u64 % u64::from((*flows).max(1))) as u32,
        FlowAssignment::Weighted(weights) => {
            let total: f64 = weights.iter().sum();
            let mut draw = rng.random::<f64>() * total;
            for (flow, w) in weights.iter().enumerate() {
                if draw < *w {
                    return flow as u32;
                }
                draw -= w;
            }
            weights.len().saturating_sub(1) as u32
        }
    }
}

/// Checks the classes without generating them (the experiment loader calls this): each
/// class's sections, and stages that can run side by side.
pub fn validate(classes: &[WorkloadClass]) -> Result<(), WorkloadError> {
    let Some(first) = classes.first() else {
        return Err(WorkloadError::Field {
            field: "workloads".into(),
            message: "give at least one class".into(),
        });
    };
    for (index, class) in classes.iter().enumerate() {
        if class.spec.trace.is_some() {
            return Err(WorkloadError::Field {
                field: format!("workloads[{index}].trace"),
                message: "a class takes data + load (or inference_perf), not a trace".into(),
            });
        }
        super::validate(&class.spec).map_err(|e| prefix(e, index))?;
        let load = class.spec.load.as_ref();
        if load.is_some_and(|l| l.max_concurrency.is_some()) {
            return Err(WorkloadError::Field {
                field: format!("workloads[{index}].load.max_concurrency"),
                message: "not supported in a class (the client cap is per experiment)".into(),
            });
        }
        let shape = |spec: &WorkloadSpec| {
            spec.load.as_ref().map(|l| {
                let durations: Vec<f64> = l.stages.iter().map(|s| s.duration).collect();
                (durations, l.warmup_stages)
            })
        };
        if index > 0 && shape(&class.spec) != shape(&first.spec) {
            return Err(stage_mismatch(index));
        }
    }
    Ok(())
}

fn stage_mismatch(index: usize) -> WorkloadError {
    WorkloadError::Field {
        field: format!("workloads[{index}].load.stages"),
        message: "every class needs the same number of stages with the same durations and \
                  warmup_stages as workloads[0]"
            .into(),
    }
}

/// The stages side by side: same count and durations in every class; rates add up.
fn merged_stages(parts: &[Workload]) -> Result<Vec<StageInfo>, WorkloadError> {
    let Some(first) = parts.first() else {
        return Err(WorkloadError::Field {
            field: "workloads".into(),
            message: "give at least one class".into(),
        });
    };
    let mut stages = first.stages.clone();
    for (index, part) in parts.iter().enumerate().skip(1) {
        let same =
            part.stages.len() == stages.len()
                && part.stages.iter().zip(&stages).all(|(a, b)| {
                    (a.duration_s - b.duration_s).abs() < 1e-9 && a.warmup == b.warmup
                });
        if !same {
            return Err(stage_mismatch(index));
        }
        for (stage, other) in stages.iter_mut().zip(&part.stages) {
            stage.rate = match (stage.rate, other.rate) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
    }
    Ok(stages)
}

/// Names the class in a generator error (`workloads[1].load.stages[0].rate`).
fn prefix(error: WorkloadError, index: usize) -> WorkloadError {
    match error {
        WorkloadError::Spec { field, message } => WorkloadError::Field {
            field: format!("workloads[{index}].{field}"),
            message,
        },
        other => other,
    }
}
