//! Engine presets: which metric of each model server (vLLM, SGLang, TensorRT-LLM) feeds which endpoint field.

use std::fmt;
use std::str::FromStr;

use crate::metric_spec::MetricSpec;

/// A model-server engine with a built-in metric mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Engine {
    /// vLLM (the default, as in v1.0.1).
    #[default]
    Vllm,
    /// SGLang (started with `--enable-metrics`).
    Sglang,
    /// TensorRT-LLM's own OpenAI server, `trtllm-serve`.
    TrtllmServe,
    /// TensorRT-LLM behind the Triton Inference Server (`tensorrtllm_backend`).
    TritonTensorrtLlm,
}

/// An `--engine-type` value that names no known engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown engine type {name:?}: expected one of {}",
    Engine::names(", ")
)]
pub struct UnknownEngine {
    /// The rejected text.
    pub name: String,
}

impl Engine {
    /// Every engine, in the order the help text lists them.
    pub const ALL: [Engine; 4] = [
        Engine::Vllm,
        Engine::Sglang,
        Engine::TrtllmServe,
        Engine::TritonTensorrtLlm,
    ];

    /// Every engine's name in [`Engine::ALL`] order, separated by `, ` and by `last` before the
    /// final one (`", "` for a list, `" or "` for prose).
    pub fn names(last: &str) -> String {
        let names: Vec<&str> = Engine::ALL.iter().map(|e| e.as_str()).collect();
        match names.split_last() {
            Some((final_name, rest)) => format!("{}{last}{final_name}", rest.join(", ")),
            None => String::new(),
        }
    }

    /// Reads the exact lower-case name (`vllm`, `sglang`, `trtllm-serve`, `triton-tensorrt-llm`).
    ///
    /// Exact match only, as upstream compares engine names literally.
    pub fn parse(name: &str) -> Option<Engine> {
        Engine::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The name used by `--engine-type` and the engine-type pod label.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Vllm => "vllm",
            Engine::Sglang => "sglang",
            Engine::TrtllmServe => "trtllm-serve",
            Engine::TritonTensorrtLlm => "triton-tensorrt-llm",
        }
    }

    /// The HTTP path of the engine's Prometheus page.
    pub fn default_metrics_path(self) -> &'static str {
        match self {
            // trtllm-serve mounts its Prometheus app under /prometheus.
            Engine::TrtllmServe => "/prometheus/metrics",
            Engine::Vllm | Engine::Sglang | Engine::TritonTensorrtLlm => "/metrics",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Engine {
    type Err = UnknownEngine;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Engine::parse(s).ok_or_else(|| UnknownEngine { name: s.into() })
    }
}

/// One endpoint field a mapping can fill; names the field in logs and in
/// [`FieldSet`](crate::extract::FieldSet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricField {
    /// Requests waiting in the server's queue ([`MetricMapping::queued`]).
    Queue,
    /// Requests running on the server ([`MetricMapping::running`]).
    Running,
    /// KV-cache usage fraction ([`MetricMapping::kv_usage`]).
    KvUsage,
    /// LoRA adapter sets ([`MetricMapping::lora`]).
    Lora,
    /// Cache geometry from info-metric labels ([`MetricMapping::cache_info`]).
    CacheInfo,
    /// Tokens per cache block, as a gauge value ([`MetricMapping::cache_block_size`]).
    CacheBlockSize,
    /// Blocks in the cache, as a gauge value ([`MetricMapping::cache_num_blocks`]).
    CacheNumBlocks,
}

impl MetricField {
    /// Every field, in mapping order.
    pub const ALL: [MetricField; 7] = [
        MetricField::Queue,
        MetricField::Running,
        MetricField::KvUsage,
        MetricField::Lora,
        MetricField::CacheInfo,
        MetricField::CacheBlockSize,
        MetricField::CacheNumBlocks,
    ];

    /// Short stable name for logs (`queue`, `running`, `kv_usage`, `lora`, `cache_info`,
    /// `cache_block_size`, `cache_num_blocks`).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricField::Queue => "queue",
            MetricField::Running => "running",
            MetricField::KvUsage => "kv_usage",
            MetricField::Lora => "lora",
            MetricField::CacheInfo => "cache_info",
            MetricField::CacheBlockSize => "cache_block_size",
            MetricField::CacheNumBlocks => "cache_num_blocks",
        }
    }
}

impl fmt::Display for MetricField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which series feed each endpoint field. `None` disables a field (it is neither
/// scraped nor reported missing), like an empty `--*-metric` flag upstream.
///
/// Fields are public so the CLI can lay explicit flags over a preset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricMapping {
    /// Queued requests, a count (`--total-queued-requests-metric`).
    pub queued: Option<MetricSpec>,
    /// Running requests, a count ([v1.5] `--total-running-requests-metric`).
    pub running: Option<MetricSpec>,
    /// KV-cache usage, a fraction 0.0 to 1.0 (`--kv-cache-usage-percentage-metric`).
    pub kv_usage: Option<MetricSpec>,
    /// LoRA info metric: labels `running_lora_adapters`, `waiting_lora_adapters`,
    /// `max_lora`; its value is a Unix timestamp in seconds (`--lora-info-metric`).
    pub lora: Option<MetricSpec>,
    /// Cache info metric whose labels carry the cache geometry (vLLM, SGLang;
    /// [v1.5] `--cache-info-metric`).
    pub cache_info: Option<MetricSpec>,
    /// Label of [`cache_info`](Self::cache_info) holding tokens per block.
    pub cache_block_size_label: String,
    /// Label of [`cache_info`](Self::cache_info) holding the number of blocks.
    pub cache_num_blocks_label: String,
    /// Gauge whose value is tokens per block (TensorRT-LLM, which has no info metric).
    pub cache_block_size: Option<MetricSpec>,
    /// Gauge whose value is the number of blocks (TensorRT-LLM).
    pub cache_num_blocks: Option<MetricSpec>,
}

/// A spec without required labels.
fn spec(name: &str) -> Option<MetricSpec> {
    spec_with(name, &[])
}

/// A spec requiring the given labels (values unquoted, as the flag syntax writes them).
fn spec_with(name: &str, labels: &[(&str, &str)]) -> Option<MetricSpec> {
    Some(MetricSpec {
        name: name.into(),
        labels: labels
            .iter()
            .map(|&(label, value)| (label.into(), value.into()))
            .collect(),
    })
}

impl MetricMapping {
    /// The built-in mapping of an engine (reference §5.3; [v1.5] factories).
    pub fn preset(engine: Engine) -> MetricMapping {
        let none = MetricMapping {
            queued: None,
            running: None,
            kv_usage: None,
            lora: None,
            cache_info: None,
            cache_block_size_label: String::new(),
            cache_num_blocks_label: String::new(),
            cache_block_size: None,
            cache_num_blocks: None,
        };
        match engine {
            Engine::Vllm => MetricMapping {
                queued: spec("vllm:num_requests_waiting"),
                running: spec("vllm:num_requests_running"),
                // v1.0.1's default; newer vLLM only exposes vllm:kv_cache_usage_perc, which
                // extraction falls back to (see `extract`).
                kv_usage: spec("vllm:gpu_cache_usage_perc"),
                lora: spec("vllm:lora_requests_info"),
                cache_info: spec("vllm:cache_config_info"),
                cache_block_size_label: "block_size".into(),
                cache_num_blocks_label: "num_gpu_blocks".into(),
                ..none
            },
            Engine::Sglang => MetricMapping {
                queued: spec("sglang:num_queue_reqs"),
                running: spec("sglang:num_running_reqs"),
                kv_usage: spec("sglang:token_usage"),
                cache_info: spec("sglang:cache_config_info"),
                cache_block_size_label: "page_size".into(),
                cache_num_blocks_label: "num_pages".into(),
                ..none
            },
            Engine::TrtllmServe => MetricMapping {
                queued: spec("trtllm_num_requests_waiting"),
                running: spec("trtllm_num_requests_running"),
                kv_usage: spec("trtllm_kv_cache_utilization"),
                cache_block_size: spec("trtllm_kv_cache_tokens_per_block"),
                cache_num_blocks: spec("trtllm_kv_cache_max_blocks"),
                ..none
            },
            Engine::TritonTensorrtLlm => {
                let request = "nv_trt_llm_request_metrics";
                let block = "nv_trt_llm_kv_cache_block_metrics";
                MetricMapping {
                    queued: spec_with(request, &[("request_type", "waiting")]),
                    running: spec_with(request, &[("request_type", "scheduled")]),
                    kv_usage: spec_with(block, &[("kv_cache_block_type", "fraction")]),
                    cache_block_size: spec_with(block, &[("kv_cache_block_type", "tokens_per")]),
                    cache_num_blocks: spec_with(block, &[("kv_cache_block_type", "max")]),
                    ..none
                }
            }
        }
    }

    /// The spec configured for `field`, if any.
    pub fn spec(&self, field: MetricField) -> Option<&MetricSpec> {
        match field {
            MetricField::Queue => self.queued.as_ref(),
            MetricField::Running => self.running.as_ref(),
            MetricField::KvUsage => self.kv_usage.as_ref(),
            MetricField::Lora => self.lora.as_ref(),
            MetricField::CacheInfo => self.cache_info.as_ref(),
            MetricField::CacheBlockSize => self.cache_block_size.as_ref(),
            MetricField::CacheNumBlocks => self.cache_num_blocks.as_ref(),
        }
    }

    /// The configured fields and their specs, in [`MetricField::ALL`] order (for the
    /// "not scraping metric X" startup log).
    pub fn specs(&self) -> impl Iterator<Item = (MetricField, &MetricSpec)> {
        MetricField::ALL
            .into_iter()
            .filter_map(|field| self.spec(field).map(|spec| (field, spec)))
    }
}

impl Default for MetricMapping {
    /// The vLLM preset, v1.0.1's defaults.
    fn default() -> Self {
        MetricMapping::preset(Engine::Vllm)
    }
}

/// How `epp --help` prints a default.
impl epp_flags::goflag::Show for Engine {
    fn show(&self) -> String {
        self.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_names_round_trip() {
        for engine in Engine::ALL {
            assert_eq!(Engine::parse(engine.as_str()), Some(engine));
            assert_eq!(engine.as_str().parse::<Engine>(), Ok(engine));
            assert_eq!(engine.to_string(), engine.as_str());
        }
        for bad in ["", "VLLM", "vLLM", " vllm", "trtllm", "triton", "tgi"] {
            assert_eq!(Engine::parse(bad), None, "{bad:?}");
            let err = bad.parse::<Engine>().unwrap_err().to_string();
            assert!(
                err.contains("sglang") && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
        assert_eq!(Engine::default(), Engine::Vllm);
        assert_eq!(
            Engine::names(" or "),
            "vllm, sglang, trtllm-serve or triton-tensorrt-llm"
        );
        assert_eq!(
            "tgi".parse::<Engine>().unwrap_err().to_string(),
            "unknown engine type \"tgi\": expected one of vllm, sglang, trtllm-serve, triton-tensorrt-llm"
        );
    }

    #[test]
    fn metrics_paths() {
        let cases = [
            (Engine::Vllm, "/metrics"),
            (Engine::Sglang, "/metrics"),
            (Engine::TrtllmServe, "/prometheus/metrics"),
            (Engine::TritonTensorrtLlm, "/metrics"),
        ];
        for (engine, path) in cases {
            assert_eq!(engine.default_metrics_path(), path, "{engine}");
        }
    }

    #[test]
    fn presets_print_as_flag_values() {
        let show = |m: &MetricMapping| -> Vec<String> {
            m.specs().map(|(f, s)| format!("{f}={s}")).collect()
        };
        let cases: [(Engine, &[&str]); 4] = [
            (
                Engine::Vllm,
                &[
                    "queue=vllm:num_requests_waiting",
                    "running=vllm:num_requests_running",
                    "kv_usage=vllm:gpu_cache_usage_perc",
                    "lora=vllm:lora_requests_info",
                    "cache_info=vllm:cache_config_info",
                ],
            ),
            (
                Engine::Sglang,
                &[
                    "queue=sglang:num_queue_reqs",
                    "running=sglang:num_running_reqs",
                    "kv_usage=sglang:token_usage",
                    "cache_info=sglang:cache_config_info",
                ],
            ),
            (
                Engine::TrtllmServe,
                &[
                    "queue=trtllm_num_requests_waiting",
                    "running=trtllm_num_requests_running",
                    "kv_usage=trtllm_kv_cache_utilization",
                    "cache_block_size=trtllm_kv_cache_tokens_per_block",
                    "cache_num_blocks=trtllm_kv_cache_max_blocks",
                ],
            ),
            (
                Engine::TritonTensorrtLlm,
                &[
                    "queue=nv_trt_llm_request_metrics{request_type=waiting}",
                    "running=nv_trt_llm_request_metrics{request_type=scheduled}",
                    "kv_usage=nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}",
                    "cache_block_size=nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=tokens_per}",
                    "cache_num_blocks=nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=max}",
                ],
            ),
        ];
        for (engine, want) in cases {
            assert_eq!(show(&MetricMapping::preset(engine)), want, "{engine}");
        }
    }

    #[test]
    fn preset_specs_parse_back_and_cache_labels_are_set_with_cache_info() {
        for engine in Engine::ALL {
            let mapping = MetricMapping::preset(engine);
            for (field, spec) in mapping.specs() {
                let reparsed = MetricSpec::parse(&spec.to_string());
                assert_eq!(reparsed, Ok(Some(spec.clone())), "{engine} {field}");
            }
            let has_labels = !mapping.cache_block_size_label.is_empty()
                && !mapping.cache_num_blocks_label.is_empty();
            assert_eq!(mapping.cache_info.is_some(), has_labels, "{engine}");
        }
        let sglang = MetricMapping::preset(Engine::Sglang);
        assert_eq!(
            (
                sglang.cache_block_size_label.as_str(),
                sglang.cache_num_blocks_label.as_str()
            ),
            ("page_size", "num_pages")
        );
        assert_eq!(
            MetricMapping::default(),
            MetricMapping::preset(Engine::Vllm)
        );
    }
}
