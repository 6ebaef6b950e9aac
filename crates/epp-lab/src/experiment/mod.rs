//! The experiment file (cluster, workload, signals, policies, seeds) and the built-in
//! presets. See `presets/quick.yaml` for a commented example.
//!
//! The file is decoded into raw types (`raw.rs`, unknown fields are errors) and then
//! validated into the types below (`resolve.rs`); every error names the field path.

mod duration;
pub mod presets;
mod raw;
mod resolve;

#[cfg(test)]
mod tests;

use std::path::Path;

use epp_engine::ModelProfile;

use crate::workload::classes::WorkloadClass;
use crate::workload::{Workload, WorkloadError, WorkloadSpec};

/// A validated experiment.
#[derive(Clone, Debug)]
pub struct Experiment {
    pub name: String,
    pub description: Option<String>,
    pub cluster: ClusterSpec,
    /// The model the requests ask for.
    pub model_name: String,
    /// Never `builtin`: a built-in workload is replaced by its preset's sections. Empty
    /// (default) when the experiment has `classes`.
    pub workload: WorkloadSpec,
    /// InferenceObjectives (name → priority) the classes name.
    pub objectives: Vec<ObjectiveSpec>,
    /// A multi-class workload (`workloads:`); empty when `workload` is used.
    pub classes: Vec<WorkloadClass>,
    pub signals: Signals,
    /// KV-event delivery for every policy that does not set its own.
    pub kv_events: KvEventsSpec,
    pub policies: Vec<Policy>,
    pub seeds: Vec<u64>,
}

/// An InferenceObjective as the lab's EPP knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectiveSpec {
    pub name: String,
    /// Higher is served first; negative is sheddable.
    pub priority: i32,
}

/// The simulated pods, all alike.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub pods: usize,
    pub profile: ModelProfile,
    /// Overrides the KV capacity per pod the profile gives or the engine computes.
    pub kv_capacity_tokens: Option<u64>,
    /// Engine KV block size, tokens (default 16, vLLM's).
    pub block_size: usize,
    /// vLLM's token budget per step (default 8192).
    pub max_num_batched_tokens: usize,
    /// vLLM's running-sequence cap (default 1024, vLLM V1's for H100-class servers).
    pub max_num_seqs: usize,
    pub max_model_len: Option<usize>,
    pub step_time: StepTimeSpec,
    pub overheads: Overheads,
}

/// How a step's duration is computed.
#[derive(Clone, Debug, PartialEq)]
pub enum StepTimeSpec {
    /// The additive roofline of sim-model.md §1.4 (the default).
    Roofline,
    Linear {
        base_ms: f64,
        per_prefill_token_us: f64,
        per_decode_seq_us: f64,
        per_context_token_ns: f64,
    },
    /// A per-token prefill cost plus a constant decode step (llm-d-inference-sim style).
    Constant(epp_engine::ConstantStepTime),
    /// Interpolated measured step times.
    Table(epp_engine::StepTable),
}

/// Per-request serving overheads outside the engine steps (BLIS's α terms), seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Overheads {
    /// Before the request reaches the engine queue (default 15.6 ms).
    pub frontend_s: f64,
    /// Per input token, before scheduling (default 46 µs).
    pub per_token_s: f64,
    /// After the last token (default 0.78 ms).
    pub end_s: f64,
}

/// What the scheduler sees, and how late.
#[derive(Clone, Debug, PartialEq)]
pub struct Signals {
    /// How often pod metrics are scraped (default 50 ms).
    pub scrape_interval_s: f64,
    /// Metrics older than this count as stale (default 2 s, `--metrics-staleness-threshold`).
    pub metrics_staleness_s: f64,
}

/// How KV-cache event batches travel from each engine to a precise prefix index (used only
/// by policies with a `precise-prefix-cache-scorer`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KvEventsSpec {
    /// From the end of the engine step that produced a batch to its arrival (default 5 ms).
    pub delay_s: f64,
    /// Up to this much more, uniformly drawn per batch (default 0); a pod's batches still
    /// arrive in order, as over one ZMQ connection.
    pub jitter_s: f64,
    /// Probability that a batch is lost (default 0); its sequence number is still used, so
    /// the index sees a gap.
    pub drop_ratio: f64,
}

impl Default for KvEventsSpec {
    fn default() -> Self {
        KvEventsSpec {
            delay_s: 0.005,
            jitter_s: 0.0,
            drop_ratio: 0.0,
        }
    }
}

/// One scheduling policy under test.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub name: String,
    /// `EndpointPickerConfig` text (validated at load time).
    pub config_text: String,
    /// KV-event delivery: the experiment's, with this policy's `kv_events:` fields over it.
    pub kv_events: KvEventsSpec,
    /// Multi-class workloads: the classes (indexes) this policy gets; `None`: all.
    pub classes: Option<Vec<u32>>,
}

/// Why an experiment was rejected. Messages name the field path.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// Not valid YAML, a missing field or an unknown one.
    #[error("experiment file: {0}")]
    Decode(String),
    /// A field with a bad value.
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    /// A policy's `EndpointPickerConfig` does not load.
    #[error("policies[{index}] ({name}): {message}")]
    Policy {
        index: usize,
        name: String,
        message: String,
    },
    #[error("unknown preset {name:?} (known: {known})")]
    UnknownPreset { name: String, known: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Experiment {
    /// Decodes and validates an experiment file. Relative paths (policy configs, traces)
    /// are taken from `base_dir`.
    pub fn from_yaml(text: &str, base_dir: &Path) -> Result<Experiment, ExperimentError> {
        resolve::from_yaml(text, base_dir, &resolve::BUILT_IN)
    }

    /// A built-in preset (see [`presets::list`]).
    pub fn preset(name: &str) -> Result<Experiment, ExperimentError> {
        let text = presets::text(name).ok_or_else(|| unknown_preset(name))?;
        Experiment::from_yaml(text, Path::new("."))
    }

    /// A shorter run for CI: every finite load stage's duration times `factor` (rates,
    /// cluster and policies unchanged). Traces and all-at-once stages are left as they are.
    pub fn scaled(&self, factor: f64) -> Experiment {
        let mut out = self.clone();
        if !factor.is_finite() || factor <= 0.0 {
            return out;
        }
        let specs =
            std::iter::once(&mut out.workload).chain(out.classes.iter_mut().map(|c| &mut c.spec));
        for load in specs.filter_map(|spec| spec.load.as_mut()) {
            for stage in load.stages.iter_mut().filter(|s| s.rate.is_finite()) {
                stage.duration *= factor;
            }
        }
        out
    }

    /// The requests of one seed: the single workload, or every class merged.
    pub fn generate(&self, seed: u64) -> Result<Workload, WorkloadError> {
        if self.classes.is_empty() {
            Workload::generate(&self.workload, seed, Path::new("."))
        } else {
            crate::workload::classes::generate(&self.classes, seed)
        }
    }

    /// The requests of one seed that policy `policy` gets: all, or only its `classes`
    /// (the stages then offer the sum of those classes' rates).
    pub fn workload_for(&self, policy: usize, all: &Workload) -> Option<Workload> {
        let keep = self.policies.get(policy)?.classes.as_ref()?;
        let mut out = all.clone();
        out.requests
            .retain(|r| r.flow.is_some_and(|f| keep.contains(&f.class)));
        for stage in &mut out.stages {
            let rates = keep.iter().map(|&c| {
                let load = self.classes.get(c as usize)?.spec.load.as_ref()?;
                let rate = load.stages.get(stage.index as usize)?.rate;
                rate.is_finite().then_some(rate)
            });
            stage.rate = rates.sum();
        }
        Some(out)
    }

    /// The priority of requests naming `objective` (unknown or none: 0, as in the EPP).
    pub fn priority(&self, objective: Option<&str>) -> i32 {
        objective
            .and_then(|name| self.objectives.iter().find(|o| o.name == name))
            .map_or(0, |o| o.priority)
    }

    /// The experiment as resolved, for `summary.json`: every default applied, policies with
    /// their full config text.
    pub fn resolved_json(&self) -> serde_json::Value {
        resolve::to_json(self)
    }
}

fn unknown_preset(name: &str) -> ExperimentError {
    let known: Vec<&str> = presets::list().iter().map(|(n, _)| *n).collect();
    ExperimentError::UnknownPreset {
        name: name.to_string(),
        known: known.join(", "),
    }
}
