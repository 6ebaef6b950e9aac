//! The experiment file as decoded, before validation. Every struct denies unknown fields,
//! so a typo is an error naming it.

use serde::Deserialize;

use crate::workload::WorkloadSpec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub cluster: RawCluster,
    #[serde(default)]
    pub model_name: Option<String>,
    /// One workload; or `workloads:`, several classes (not both).
    #[serde(default)]
    pub workload: Option<WorkloadSpec>,
    #[serde(default)]
    pub workloads: Option<Vec<RawClass>>,
    /// InferenceObjectives the classes name.
    #[serde(default)]
    pub objectives: Option<Vec<RawObjective>>,
    #[serde(default)]
    pub signals: RawSignals,
    #[serde(default)]
    pub kv_events: Option<RawKvEvents>,
    pub policies: Vec<RawPolicy>,
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// A built-in profile name, or leave it out and give `model`, `gpu` and `tp`.
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub model: Option<RawModel>,
    #[serde(default)]
    pub gpu: Option<RawGpu>,
    #[serde(default)]
    pub tp: Option<u32>,
    pub pods: usize,
    #[serde(default)]
    pub kv_capacity_tokens: Option<u64>,
    #[serde(default)]
    pub block_size: Option<usize>,
    #[serde(default)]
    pub max_num_batched_tokens: Option<usize>,
    #[serde(default)]
    pub max_num_seqs: Option<usize>,
    #[serde(default)]
    pub max_model_len: Option<usize>,
    #[serde(default)]
    pub step_time: Option<RawStepTime>,
    #[serde(default)]
    pub overheads: Option<RawOverheads>,
}

/// A model's shape, for a cluster without a named profile.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub layers: u32,
    pub hidden: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub ffn: u32,
    /// Total weights, GB (1e9 bytes).
    pub weight_gb: f64,
    #[serde(default = "two")]
    pub kv_bytes_per_element: u32,
    /// Vocabulary size (embedding and LM-head size); default 128,256 (Llama 3).
    #[serde(default = "default_vocab")]
    pub vocab: u32,
    /// Whether the LM head shares the embedding's weights.
    #[serde(default)]
    pub tied_embeddings: bool,
}

fn two() -> u32 {
    2
}

/// A GPU by name (`h100-sxm`) or by its datasheet numbers.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawGpu {
    Named(String),
    Spec(RawGpuSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGpuSpec {
    pub name: String,
    pub peak_tflops: f64,
    pub hbm_tb_s: f64,
    pub memory_gb: f64,
    #[serde(default = "mfu_default")]
    pub mfu_prefill: f64,
}

fn mfu_default() -> f64 {
    0.45
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawStepTime {
    Roofline,
    Linear(RawLinear),
    /// llm-d-inference-sim style: `{base_ms, prefill_per_token_ms, decode_step_ms}`.
    Constant(epp_engine::ConstantStepTime),
    /// Measured samples: `{prefill: [[tokens, ms]...], decode: {batch, context, ms}}`.
    Table(epp_engine::StepTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLinear {
    pub base_ms: f64,
    pub per_prefill_token_us: f64,
    pub per_decode_seq_us: f64,
    #[serde(default)]
    pub per_context_token_ns: f64,
}

/// BLIS's α terms; each defaults to BLIS's Qwen3-32B value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverheads {
    #[serde(default)]
    pub frontend_ms: Option<f64>,
    #[serde(default)]
    pub per_token_us: Option<f64>,
    #[serde(default)]
    pub end_ms: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignals {
    #[serde(default)]
    pub scrape_interval: Option<RawDuration>,
    #[serde(default)]
    pub metrics_staleness: Option<RawDuration>,
    /// Older spelling of `kv_events.delay` (still accepted; not both).
    #[serde(default)]
    pub kv_event_delay: Option<RawDuration>,
}

/// `kv_events:` at experiment level or in a policy entry; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKvEvents {
    #[serde(default)]
    pub delay: Option<RawDuration>,
    #[serde(default)]
    pub jitter: Option<RawDuration>,
    #[serde(default)]
    pub drop_ratio: Option<f64>,
}

/// Seconds, or a Go duration string (`50ms`, `2s`, `1m30s`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawDuration {
    Seconds(f64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub name: String,
    /// Inline `EndpointPickerConfig` text.
    #[serde(default)]
    pub config: Option<String>,
    /// A config file, relative to the experiment file's directory.
    #[serde(default)]
    pub config_file: Option<String>,
    /// Overrides the experiment's `kv_events:` fields for this policy.
    #[serde(default)]
    pub kv_events: Option<RawKvEvents>,
    /// Multi-class workloads: send only these classes (by name) to this policy, e.g. an
    /// unloaded baseline of one class.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
}

fn default_vocab() -> u32 {
    128_256
}

/// An InferenceObjective: requests that name it get its priority.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObjective {
    pub name: String,
    #[serde(default)]
    pub priority: i32,
}

/// One class of `workloads:`: its objective and flows, and inference-perf's `data:` and
/// `load:` (or `inference_perf:` / `builtin:`, as in `workload:`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClass {
    pub name: String,
    #[serde(default)]
    pub objective: Option<String>,
    /// Fairness ids; requests are assigned round robin (default 1).
    #[serde(default)]
    pub flows: Option<u32>,
    /// Weighted random assignment instead: one weight per flow.
    #[serde(default)]
    pub flow_weights: Option<Vec<f64>>,
    #[serde(default)]
    pub builtin: Option<String>,
    #[serde(default)]
    pub inference_perf: Option<String>,
    #[serde(default)]
    pub data: Option<crate::workload::DataSpec>,
    #[serde(default)]
    pub load: Option<crate::workload::LoadSpec>,
}
