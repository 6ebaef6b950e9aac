//! Fake metrics: values `/metrics` reports instead of the engine's, as llm-d-inference-sim's
//! `--fake-metrics` flag (`{"running-requests":N,"waiting-requests":N,"kv-cache-usage":F,
//! "loras":[{"running":"a,b","waiting":"","timestamp":T}]}`).
//!
//! Unlike llm-d-inference-sim, every field is optional: an absent field leaves that metric
//! reporting the engine's real value. The engine keeps serving requests either way.

use serde::{Deserialize, Serialize};

/// An override of some `/metrics` values. Parse it with [`FakeMetrics::from_json`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FakeMetrics {
    /// Reported `vllm:num_requests_running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_requests: Option<u64>,
    /// Reported `vllm:num_requests_waiting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_requests: Option<u64>,
    /// Reported KV-cache usage, a fraction in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_usage: Option<f64>,
    /// Reported `vllm:lora_requests_info` series, one per entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loras: Option<Vec<FakeLora>>,
}

/// One fake `vllm:lora_requests_info` series.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeLora {
    /// Comma-separated running adapters (the `running_lora_adapters` label).
    #[serde(default)]
    pub running: String,
    /// Comma-separated waiting adapters (the `waiting_lora_adapters` label).
    #[serde(default)]
    pub waiting: String,
    /// The series value: a Unix time in seconds. The EPP picks the largest.
    #[serde(default)]
    pub timestamp: f64,
}

impl FakeMetrics {
    /// Parses the JSON form; the error says what is wrong in one line.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let fake: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        match fake.kv_cache_usage {
            Some(usage) if !(0.0..=1.0).contains(&usage) => {
                Err(format!("kv-cache-usage must be in [0, 1], got {usage}"))
            }
            _ => Ok(fake),
        }
    }
}
