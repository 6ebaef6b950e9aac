//! Request generation (inference-perf `shared_prefix`, random/synthetic, multi-turn, load
//! stages, SGLang's all-at-once) and trace replay (Mooncake, the EPP's request log).
//!
//! Generation matches the tools (sim-model.md §2.1): prompts come from a seeded RNG, the
//! same seed gives the same requests, and prompt ids and text agree token for token.

mod arrivals;
pub mod classes;
mod random;
mod shared_prefix;
pub mod spec;
pub(crate) mod tokens;
mod trace;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use rand::Rng;
use rand::rngs::SmallRng;

pub use spec::{
    DataSpec, DataType, Distribution, Length, LoadSpec, LoadType, SharedPrefixSpec, StageSpec,
    TraceFormat, TraceSpec, WorkloadSpec,
};
pub use tokens::{Prompt, VOCAB, output_token, render};

use crate::results::StageInfo;

/// When a request is sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrival {
    /// At this time, seconds since the start of the run.
    At(f64),
    /// Closed-loop multi-turn: this long after the previous round of the same session
    /// completes.
    AfterPrevious { think_s: f64 },
}

/// One request to send.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    pub arrival: Arrival,
    /// The load stage it belongs to (0-based; traces have one stage).
    pub stage: u32,
    pub prompt: Arc<Prompt>,
    pub output_tokens: u32,
    pub group: Option<u32>,
    pub session: Option<u32>,
    pub round: Option<u32>,
    /// Key of this request's output tokens (see [`output_token`]).
    pub output_key: u64,
    /// Its workload class and flow, in a multi-class workload (`workloads:`).
    pub flow: Option<FlowTag>,
}

/// Which class of a multi-class workload a request belongs to, and which of the class's
/// flows (fairness ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTag {
    /// Index into [`Workload::classes`].
    pub class: u32,
    /// 0-based, below the class's `flows`.
    pub flow: u32,
}

/// A generated workload, ready to run.
#[derive(Clone, Debug)]
pub struct Workload {
    /// A short description (`shared_prefix 150x5 6000/1200/1000`, `mooncake trace.jsonl`).
    pub name: String,
    /// Sorted by `At` time; an `AfterPrevious` round comes after its session's previous round.
    pub requests: Vec<RequestSpec>,
    pub stages: Vec<StageInfo>,
    /// At most this many requests in flight (later arrivals wait for a slot).
    pub max_concurrency: Option<usize>,
    /// The classes of a multi-class workload (empty for a single `workload:`).
    pub classes: Vec<classes::ClassInfo>,
}

/// Why a workload could not be generated. Each message names the field or trace line.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("workload.{field}: {message}")]
    Spec { field: String, message: String },
    /// A field named by its full path (a class of `workloads:`).
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error("cannot read trace {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} line {line}: {field}: {message}")]
    TraceLine {
        path: String,
        line: usize,
        field: String,
        message: String,
    },
}

impl Workload {
    /// Generates the requests of `spec` for one seed. Trace paths are relative to `base_dir`.
    pub fn generate(
        spec: &WorkloadSpec,
        seed: u64,
        base_dir: &Path,
    ) -> Result<Workload, WorkloadError> {
        check_exactly_one(spec)?;
        if let Some(trace) = &spec.trace {
            return trace::load(trace, base_dir);
        }
        let (Some(data), Some(load)) = (&spec.data, &spec.load) else {
            return Err(spec_error("data", "`data` and `load` go together"));
        };
        match data.kind {
            DataType::SharedPrefix => {
                let sp = data.shared_prefix.clone().unwrap_or_default();
                shared_prefix::generate(&sp, load, seed)
            }
            DataType::Random | DataType::Synthetic | DataType::Mock => {
                random::generate(data, load, seed)
            }
        }
    }
}

/// inference-perf fields the lab accepts only as null (its config dumps print them all):
/// anything else would silently change the load, so it is refused by name.
fn unsupported_inference_perf_fields(
    data: &DataSpec,
    load: &LoadSpec,
) -> Result<(), WorkloadError> {
    let set = |value: &Option<serde_json::Value>| value.as_ref().is_some_and(|v| !v.is_null());
    let refuse = |field: &str, why: &str| Err(spec_error(field, why));
    if set(&data.path) {
        return refuse(
            "data.path",
            "datasets are not read; replay a trace with workload.trace",
        );
    }
    if set(&data.trace) || set(&load.trace) {
        return refuse(
            "trace",
            "give the trace as workload.trace (mooncake or epp-request-log)",
        );
    }
    if set(&load.sweep) {
        return refuse("load.sweep", "sweeps are not generated; list the stages");
    }
    for (i, stage) in load.stages.iter().enumerate() {
        if set(&stage.concurrency_level) || set(&stage.num_requests) {
            return refuse(
                &format!("load.stages[{i}]"),
                "concurrency_level and num_requests stages are not supported; use rate and duration (and load.max_concurrency)",
            );
        }
    }
    Ok(())
}

/// Checks a spec without generating it (the experiment loader calls this at load time).
pub fn validate(spec: &WorkloadSpec) -> Result<(), WorkloadError> {
    check_exactly_one(spec)?;
    if let Some(trace) = &spec.trace {
        return trace::check(trace);
    }
    let (Some(data), Some(load)) = (&spec.data, &spec.load) else {
        return Ok(());
    };
    arrivals::validate(load)?;
    unsupported_inference_perf_fields(data, load)?;
    let pass_known = match data.kind {
        DataType::SharedPrefix => {
            shared_prefix::check(&data.shared_prefix.clone().unwrap_or_default())?;
            true
        }
        DataType::Random | DataType::Synthetic | DataType::Mock => {
            let input = data.input_distribution.clone().unwrap_or_default();
            input.check("data.input_distribution")?;
            let output = data.output_distribution.clone().unwrap_or_default();
            output.check("data.output_distribution")?;
            input.total_count.is_some()
        }
    };
    if !pass_known && load.stages.iter().any(|s| s.rate.is_infinite()) {
        return Err(spec_error(
            "load.stages",
            "an infinite rate needs a data set of known size (shared_prefix, or a total_count)",
        ));
    }
    Ok(())
}

/// `builtin` must be resolved by the experiment loader; otherwise exactly one source.
pub(crate) fn check_exactly_one(spec: &WorkloadSpec) -> Result<(), WorkloadError> {
    if spec.builtin.is_some() {
        return Err(spec_error(
            "builtin",
            "resolve it with Experiment::from_yaml before generating",
        ));
    }
    match (&spec.data, &spec.load, &spec.trace) {
        (Some(_), Some(_), None) | (None, None, Some(_)) => Ok(()),
        (Some(_), None, None) => Err(spec_error("load", "`data` needs a `load` section")),
        (None, Some(_), None) => Err(spec_error("data", "`load` needs a `data` section")),
        (None, None, None) => Err(spec_error(
            "data",
            "give one of `builtin`, `data` + `load`, or `trace`",
        )),
        _ => Err(spec_error(
            "trace",
            "a trace brings its own arrivals and prompts; drop `data`/`load`",
        )),
    }
}

fn spec_error(field: &str, message: &str) -> WorkloadError {
    WorkloadError::Spec {
        field: field.into(),
        message: message.into(),
    }
}

// === sampling helpers ===

impl Distribution {
    /// A normal draw, rounded and clamped to `[min, max]`.
    pub(crate) fn sample(&self, rng: &mut SmallRng) -> u32 {
        let z = standard_normal(rng);
        let value = (self.mean + self.std_dev * z).round();
        value.clamp(f64::from(self.min), f64::from(self.max.max(self.min))) as u32
    }

    pub(crate) fn check(&self, field: &str) -> Result<(), WorkloadError> {
        if self.min > self.max {
            return Err(spec_error(field, "min is larger than max"));
        }
        if !self.mean.is_finite() || !self.std_dev.is_finite() || self.std_dev < 0.0 {
            return Err(spec_error(
                field,
                "mean and std_dev must be finite, std_dev >= 0",
            ));
        }
        Ok(())
    }
}

impl Length {
    pub(crate) fn sample(&self, rng: &mut SmallRng) -> u32 {
        match self {
            Length::Fixed(n) => *n,
            Length::Dist(d) => d.sample(rng),
        }
    }
}

/// Box–Muller; one draw per call keeps the stream simple to reason about.
fn standard_normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `len` random token ids.
fn random_tokens(rng: &mut SmallRng, len: u32, out: &mut Vec<u32>) {
    out.extend((0..len).map(|_| rng.random_range(0..VOCAB)));
}

/// Independent RNG streams of one seed (data, arrivals), so changing the load does not
/// change the prompts.
fn stream(seed: u64, purpose: u64) -> SmallRng {
    use rand::SeedableRng;
    SmallRng::seed_from_u64(tokens::mix(&[seed, purpose]))
}
