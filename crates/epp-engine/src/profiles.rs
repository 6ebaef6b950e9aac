//! Model architectures, GPUs and the named profiles of sim-model.md §1.4.

/// A dense transformer's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelArch {
    pub layers: u32,
    pub hidden: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub ffn: u32,
    /// Total weight bytes (all GPUs together).
    pub weight_bytes: f64,
    /// Bytes per KV element (2 for bf16).
    pub kv_bytes_per_element: u32,
}

/// One GPU's datasheet numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Gpu {
    pub name: String,
    /// Peak dense FLOP/s.
    pub peak_flops: f64,
    /// HBM bandwidth, bytes/s.
    pub hbm_bytes_per_s: f64,
    /// Memory, bytes.
    pub memory_bytes: f64,
    /// Prefill model FLOPs utilisation.
    pub mfu_prefill: f64,
}

/// A named (model, GPU, tensor-parallel) deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelProfile {
    pub name: String,
    pub arch: ModelArch,
    pub gpu: Gpu,
    pub tp: u32,
    /// Measured KV capacity per pod in tokens, when published.
    pub kv_capacity_tokens: Option<u64>,
}

/// Names of the built-in profiles (sim-model.md §1.4), in table order.
pub const NAMES: &[&str] = &[
    "qwen3-32b-h100-tp2",
    "llama-3.1-8b-h100-tp1",
    "qwen3-8b-h100-tp1",
    "llama-3.1-70b-h100-tp4",
    "r1-distill-qwen-7b",
    "llama-3.1-8b-a100-tp1",
];

/// A built-in profile by name.
pub fn by_name(name: &str) -> Option<ModelProfile> {
    let _ = name;
    None
}

/// A GPU by name (`h100-sxm`, `a100-sxm`, `h200`).
pub fn gpu_by_name(name: &str) -> Option<Gpu> {
    let _ = name;
    None
}
