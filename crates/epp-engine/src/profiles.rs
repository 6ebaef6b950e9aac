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
