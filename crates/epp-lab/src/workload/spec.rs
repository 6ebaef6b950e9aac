//! The `workload:` section of an experiment file, as decoded.
//!
//! `data:` and `load:` use inference-perf's key names (`inference_perf/config.py`), so a
//! `data:`/`load:` pair copied from an inference-perf config drives the lab unchanged.
//! Fields inference-perf has but the lab does not need (workers, TCP connections) are
//! accepted and ignored; our extensions are marked "Extension" below.

use serde::{Deserialize, Serialize};

/// Where the requests come from: exactly one of `builtin`, `data` + `load`, or `trace`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Extension: the workload of a built-in preset (`builtin: llmd-73pct`). The experiment
    /// loader replaces it by that preset's `data`/`load`, so generation never sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    /// Extension: an inference-perf config file (relative to the experiment file) whose
    /// `data:` and `load:` sections are used as they are; its other sections (`api`,
    /// `server`, `tokenizer`, `report`, `storage`, …) are ignored. The loader replaces it by
    /// the two sections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_perf: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadSpec>,
    /// Extension: replay a trace file instead of generating requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceSpec>,
}

/// inference-perf's `data:` section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    #[serde(rename = "type")]
    pub kind: DataType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_prefix: Option<SharedPrefixSpec>,
    /// Prompt lengths for `random`/`synthetic`/`mock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_distribution: Option<Distribution>,
    /// Output lengths for `random`/`synthetic`/`mock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_distribution: Option<Distribution>,
    /// inference-perf's dataset file and trace: accepted when null (as its config dumps
    /// print them); a dataset is not read, a trace goes in `workload.trace`.
    #[serde(default, skip_serializing)]
    pub path: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub trace: Option<serde_json::Value>,
}

/// inference-perf's data generators the lab implements. `mock` is generated like `random`
/// with inference-perf's default distributions.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    SharedPrefix,
    Random,
    Synthetic,
    Mock,
}

/// A length distribution (inference-perf `Distribution`): normal with `mean` and `std_dev`,
/// rounded and clamped to `[min, max]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Distribution {
    pub min: u32,
    pub max: u32,
    pub mean: f64,
    pub std_dev: f64,
    /// How many distinct prompts to generate (cycled); `None` draws a new one per request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_count: Option<u64>,
}

impl Default for Distribution {
    fn default() -> Self {
        Distribution {
            min: 10,
            max: 1024,
            mean: 512.0,
            std_dev: 200.0,
            total_count: None,
        }
    }
}

/// A length: a fixed number of tokens or a distribution (inference-perf accepts both).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Length {
    Fixed(u32),
    Dist(Distribution),
}

/// inference-perf's `shared_prefix` generator.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SharedPrefixSpec {
    #[serde(alias = "num_unique_system_prompts")]
    pub num_groups: u32,
    #[serde(alias = "num_users_per_system_prompt")]
    pub num_prompts_per_group: u32,
    pub system_prompt_len: Length,
    pub question_len: Length,
    pub output_len: Length,
    /// Overrides `question_len` when set (older inference-perf spelling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question_distribution: Option<Distribution>,
    /// Overrides `output_len` when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_distribution: Option<Distribution>,
    /// Each prompt is a user session whose context grows by the previous answer and the
    /// question each round.
    pub enable_multi_turn_chat: bool,
    /// Accepted and ignored: the experiment's `seeds` drive generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Default for SharedPrefixSpec {
    fn default() -> Self {
        SharedPrefixSpec {
            num_groups: 10,
            num_prompts_per_group: 10,
            system_prompt_len: Length::Fixed(100),
            question_len: Length::Fixed(50),
            output_len: Length::Fixed(50),
            question_distribution: None,
            output_distribution: None,
            enable_multi_turn_chat: false,
            seed: None,
        }
    }
}

/// inference-perf's `load:` section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    #[serde(rename = "type", default)]
    pub kind: LoadType,
    pub stages: Vec<StageSpec>,
    /// Extension: the first N stages are warm-up (reported, left out of `overall`).
    #[serde(default)]
    pub warmup_stages: u32,
    /// Extension: at most this many requests in flight; later arrivals wait for a slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
    /// inference-perf client settings, accepted and ignored (the lab has no workers).
    #[serde(default, skip_serializing)]
    pub interval: Option<f64>,
    #[serde(default, skip_serializing)]
    pub num_workers: Option<u64>,
    #[serde(default, skip_serializing)]
    pub worker_max_concurrency: Option<u64>,
    #[serde(default, skip_serializing)]
    pub worker_max_tcp_connections: Option<u64>,
    /// Accepted and ignored: the lab's requests never time out or trip a breaker.
    #[serde(default, skip_serializing)]
    pub request_timeout: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub circuit_breakers: Option<serde_json::Value>,
    /// Accepted when null: a sweep or a load trace is not generated here.
    #[serde(default, skip_serializing)]
    pub sweep: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub trace: Option<serde_json::Value>,
}

/// How arrivals are spaced within a stage.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LoadType {
    /// Evenly spaced, `1 / rate` apart.
    #[default]
    Constant,
    /// Exponential gaps with mean `1 / rate`.
    Poisson,
}

/// One load stage. `rate: .inf` (extension) sends one pass over the data set at the stage
/// start (SGLang's `--request-rate inf`); its `duration` may then be left out.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    #[serde(serialize_with = "rate_out")]
    pub rate: f64,
    #[serde(default)]
    pub duration: f64,
    /// inference-perf's concurrency and request-count stages: accepted when null.
    #[serde(default, skip_serializing)]
    pub concurrency_level: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub num_requests: Option<serde_json::Value>,
}

/// Extension: a trace to replay.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TraceSpec {
    pub format: TraceFormat,
    /// Relative to the experiment file's directory.
    pub path: String,
    /// Mooncake only: tokens per hash id (512 in the public traces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u32>,
    /// Divides every arrival time (2.0 replays twice as fast).
    #[serde(default = "one")]
    pub speedup: f64,
    /// At most this many requests in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
    /// Replay only the first N lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<usize>,
}

/// JSON has no infinity: an infinite rate is written as `"inf"`.
fn rate_out<S: serde::Serializer>(rate: &f64, s: S) -> Result<S::Ok, S::Error> {
    if rate.is_infinite() {
        s.serialize_str("inf")
    } else {
        s.serialize_f64(*rate)
    }
}

fn one() -> f64 {
    1.0
}

/// Trace formats (sim-model.md §2.2).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TraceFormat {
    /// Mooncake JSONL: `timestamp` (ms), `input_length`, `output_length`, `hash_ids`.
    Mooncake,
    /// This EPP's request log (JSON lines).
    EppRequestLog,
}
