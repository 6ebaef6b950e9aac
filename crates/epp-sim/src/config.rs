//! Parameters of one simulated server, their defaults and their validation.
//!
//! Defaults model Llama-3.1-8B on one H100-SXM with vLLM V1 (see `shared/reference/sim-model.md`
//! §1.2–1.4): the engine limits are vLLM's online-serving defaults and the step-time
//! coefficients reproduce the reference's decode steps (7.0 / 9.3 / 16.9 / 47 ms at batch
//! 1 / 16 / 64 / 256 with 2k context) and about 24k prefill tokens/s.

use std::time::Duration;

use epp_flags::spelled_enum;

use crate::fake::FakeMetrics;
use crate::kv_events::KvEventsConfig;

/// Largest `max_model_len` used when none is configured (tokens).
pub const DEFAULT_MAX_MODEL_LEN: usize = 32_768;

/// Longest embedding vector `--embedding-dim` may ask for (the largest common embedding
/// models have 4096), which bounds a response with the input-count limit.
pub const MAX_EMBEDDING_DIM: usize = 8192;

spelled_enum!(
    /// How a request's output length is chosen (`--output-length`).
    #[derive(Default)]
    OutputLength {
        /// Exactly the request's `max_tokens` (as with `ignore_eos`); finish reason `length`.
        #[default]
        MaxTokens = "max-tokens",
        /// Uniform in `1..=max_tokens`, drawn from a generator seeded by `--seed` and the
        /// request's content, so the same request gets the same length; finish reason `stop`
        /// when shorter.
        Random = "random",
    }
);

/// Which gauge names carry the KV-cache usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvUsageMetric {
    /// `vllm:kv_cache_usage_perc` only (vLLM ≥ 0.10).
    KvCacheOnly,
    /// Also the older `vllm:gpu_cache_usage_perc`, which the v1.0.1 EPP reads by default.
    #[default]
    BothNames,
}

/// The additive step-time model (`epp_engine`'s linear backend): one engine step lasts
/// `base + prefill_tokens·per_prefill_token + decodes·per_decode_seq
///  + decode_context_tokens·per_context_token`, multiplied by the server's `time_scale`.
pub type StepTimeModel = epp_engine::LinearStepTime;

/// Everything that shapes one simulated vLLM server. Build it with `Default` and field
/// updates, or from command-line flags with [`crate::SimArgs::parse`].
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// The base model name (`--model`); requests for it run without an adapter.
    pub model: String,
    /// Servable LoRA adapter names (`--lora-modules`).
    pub lora_modules: Vec<String>,
    /// Adapters that can be active (have running requests) at once (`--max-loras`, ≥ 1).
    pub max_loras: usize,
    /// Running sequences at most (`--max-num-seqs`, ≥ 1). Default 1024.
    pub max_num_seqs: usize,
    /// Token budget of one step (`--max-num-batched-tokens`, ≥ 1). Default 8192.
    pub max_num_batched_tokens: usize,
    /// Tokens per KV block (`--block-size`, ≥ 1). Default 16.
    pub block_size: usize,
    /// KV blocks on the "GPU" (`--num-gpu-blocks`, ≥ 1). Default 6250 (100,000 tokens).
    pub num_gpu_blocks: usize,
    /// Longest prompt + output accepted (tokens); `None` means
    /// `min(32768, num_gpu_blocks × block_size)`.
    pub max_model_len: Option<usize>,
    /// Output tokens when a request gives no `max_tokens`. Default 16 (vLLM's completions default).
    pub default_max_tokens: usize,
    /// Cap on a request's `max_tokens` (larger values are clamped). Default 4096.
    pub max_output_tokens: usize,
    /// How output lengths are chosen.
    pub output_length: OutputLength,
    /// Length of the vectors `/v1/embeddings` returns (`--embedding-dim`, 1..=
    /// [`MAX_EMBEDDING_DIM`]); a request's `dimensions` may ask for fewer. Default 1024.
    pub embedding_dim: usize,
    /// Seed of everything random (output lengths and filler words).
    pub seed: u64,
    /// Step-time coefficients.
    pub step_time: StepTimeModel,
    /// Multiplier on every modelled duration: 0.1 runs ten times faster than real time (> 0).
    pub time_scale: f64,
    /// Which KV-usage gauge names `/metrics` exposes.
    pub kv_usage_metric: KvUsageMetric,
    /// Metrics reported instead of the real ones, as llm-d-inference-sim's `--fake-metrics`;
    /// `None` reports the engine's own state.
    pub fake_metrics: Option<FakeMetrics>,
    /// KV-cache event publishing over ZMQ (`--kv-events-*`); off by default.
    pub kv_events: KvEventsConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            model: "meta-llama/Llama-3.1-8B-Instruct".to_owned(),
            lora_modules: Vec::new(),
            max_loras: 1,
            max_num_seqs: 1024,
            max_num_batched_tokens: 8192,
            block_size: 16,
            num_gpu_blocks: 6250,
            max_model_len: None,
            default_max_tokens: 16,
            max_output_tokens: 4096,
            output_length: OutputLength::MaxTokens,
            embedding_dim: 1024,
            seed: 0,
            step_time: StepTimeModel::default(),
            time_scale: 1.0,
            kv_usage_metric: KvUsageMetric::BothNames,
            fake_metrics: None,
            kv_events: KvEventsConfig::default(),
        }
    }
}

impl SimConfig {
    /// The engine's limits and step-time model.
    pub fn engine_config(&self) -> epp_engine::EngineConfig {
        epp_engine::EngineConfig {
            max_num_seqs: self.max_num_seqs,
            max_num_batched_tokens: self.max_num_batched_tokens,
            block_size: self.block_size,
            num_gpu_blocks: self.num_gpu_blocks,
            max_loras: self.max_loras,
            step_time: epp_engine::StepTime::Linear(self.step_time.clone()),
            emit_cache_events: self.kv_events.enabled(),
        }
    }

    /// KV capacity in tokens.
    pub fn kv_capacity_tokens(&self) -> usize {
        self.num_gpu_blocks.saturating_mul(self.block_size)
    }

    /// The effective maximum context length in tokens.
    pub fn effective_max_model_len(&self) -> usize {
        self.max_model_len
            .unwrap_or_else(|| DEFAULT_MAX_MODEL_LEN.min(self.kv_capacity_tokens()))
    }

    /// Scales a modelled duration by `time_scale`.
    pub fn scaled(&self, duration: Duration) -> Duration {
        duration.mul_f64(self.time_scale)
    }

    /// Checks the limits that the engine relies on; the error names the flag and the fix.
    pub fn validate(&self) -> Result<(), String> {
        self.kv_events.validate()?;
        let positive = [
            ("max-loras", self.max_loras),
            ("max-num-seqs", self.max_num_seqs),
            ("max-num-batched-tokens", self.max_num_batched_tokens),
            ("block-size", self.block_size),
            ("num-gpu-blocks", self.num_gpu_blocks),
            ("default-max-tokens", self.default_max_tokens),
            ("max-output-tokens", self.max_output_tokens),
            ("embedding-dim", self.embedding_dim),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("--{flag} must be at least 1"));
        }
        if self.embedding_dim > MAX_EMBEDDING_DIM {
            return Err(format!(
                "--embedding-dim must be at most {MAX_EMBEDDING_DIM}, got {}",
                self.embedding_dim
            ));
        }
        if self.model.is_empty() {
            return Err("--model must not be empty".to_owned());
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(format!("--time-scale must be > 0, got {}", self.time_scale));
        }
        let capacity = self.kv_capacity_tokens();
        match self.max_model_len {
            Some(0) => Err("--max-model-len must be at least 1".to_owned()),
            Some(len) if len > capacity => Err(format!(
                "--max-model-len {len} exceeds the KV capacity of {capacity} tokens \
                 (num-gpu-blocks × block-size); lower it or add blocks"
            )),
            _ => self.validate_names(),
        }
    }

    fn validate_names(&self) -> Result<(), String> {
        match self
            .lora_modules
            .iter()
            .find(|n| n.is_empty() || **n == self.model)
        {
            Some(name) => Err(format!(
                "--lora-modules: adapter name {name:?} is empty or equals the base model"
            )),
            None => Ok(()),
        }
    }
}
