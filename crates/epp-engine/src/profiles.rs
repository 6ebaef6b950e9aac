//! Model architectures, GPUs and the named profiles of sim-model.md §1.4.
//!
//! KV capacity, when no measured value is published, is
//! `(memory · gpu_memory_utilization − weights/TP − activation reserve) / κ_per_GPU`
//! (sim-model.md §1.3). The activation reserve defaults to 4 GiB per GPU: it is what the two
//! measured llm-d capacities imply (Qwen3-32B TP2: 307,328 tokens ⇒ 4.2 GB; Llama-3.1-70B TP4:
//! 461,376 tokens ⇒ 4.5 GB, with 80 GiB H100s at utilisation 0.9), and it covers activations,
//! CUDA graphs and the non-torch memory vLLM's profiling run finds.

use serde::Serialize;

use crate::step_time::{Roofline, RooflineCoefficients};

/// GiB in bytes: GPU memory is sold in GiB ("80 GB" H100 = 80 GiB).
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Default per-GPU activation reserve (see the module doc).
pub const DEFAULT_ACTIVATION_RESERVE_BYTES: f64 = 4.0 * GIB;

/// vLLM's default `gpu_memory_utilization`.
pub const DEFAULT_GPU_MEMORY_UTILIZATION: f64 = 0.9;

/// A dense transformer's shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelArch {
    pub layers: u32,
    pub hidden: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub ffn: u32,
    /// Vocabulary size (embedding and LM-head rows).
    pub vocab: u32,
    /// Whether the LM head shares the embedding matrix.
    pub tied_embeddings: bool,
    /// Total weight bytes (all GPUs together), as the table of §1.4 gives it; used for memory.
    pub weight_bytes: f64,
    /// Bytes per KV element (2 for bf16).
    pub kv_bytes_per_element: u32,
}

impl ModelArch {
    /// Query width, heads · head_dim (q).
    pub fn q_dim(&self) -> f64 {
        f64::from(self.heads) * f64::from(self.head_dim)
    }

    /// K (or V) width, kv_heads · head_dim (k_v).
    pub fn kv_dim(&self) -> f64 {
        f64::from(self.kv_heads) * f64::from(self.head_dim)
    }

    /// Parameters of the linear layers of one transformer layer: QKV, O and the gated MLP.
    pub fn layer_linear_params(&self) -> f64 {
        let d = f64::from(self.hidden);
        d * (2.0 * self.q_dim() + 2.0 * self.kv_dim()) + 3.0 * d * f64::from(self.ffn)
    }

    /// Parameters of all transformer layers (no embeddings): Φ = 2 × this / TP.
    pub fn layers_params(&self) -> f64 {
        f64::from(self.layers) * self.layer_linear_params()
    }

    /// Parameters from the architecture: layers plus embedding (and untied LM head). Norms and
    /// biases are left out (< 0.1%).
    pub fn params(&self) -> f64 {
        let embed = f64::from(self.vocab) * f64::from(self.hidden);
        let heads = if self.tied_embeddings { 1.0 } else { 2.0 };
        self.layers_params() + heads * embed
    }

    /// Weight bytes the architecture implies at `bytes_per_param` (2 for bf16); a check on
    /// [`ModelArch::weight_bytes`].
    pub fn computed_weight_bytes(&self, bytes_per_param: f64) -> f64 {
        self.params() * bytes_per_param
    }
}

/// One GPU's datasheet numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelProfile {
    pub name: String,
    pub arch: ModelArch,
    pub gpu: Gpu,
    pub tp: u32,
    /// Measured KV capacity per pod in tokens, when published (see the method of the same
    /// name for the effective capacity).
    pub kv_capacity_tokens: Option<u64>,
    /// vLLM `gpu_memory_utilization` for the capacity formula.
    pub gpu_memory_utilization: f64,
    /// Per-GPU memory held back for activations, CUDA graphs and the like.
    pub activation_reserve_bytes: f64,
}

impl ModelProfile {
    /// KV bytes of one token on one GPU: κ = 2·L·n_kv·head_dim·bytes / TP.
    pub fn kv_bytes_per_token_per_gpu(&self) -> f64 {
        let a = &self.arch;
        2.0 * f64::from(a.layers) * a.kv_dim() * f64::from(a.kv_bytes_per_element)
            / f64::from(self.tp.max(1))
    }

    /// Weight bytes held by one GPU.
    pub fn weight_bytes_per_gpu(&self) -> f64 {
        self.arch.weight_bytes / f64::from(self.tp.max(1))
    }

    /// KV capacity of the formula of §1.3, in tokens per pod (0 if the model does not fit).
    pub fn formula_kv_capacity_tokens(&self) -> u64 {
        let free = self.gpu.memory_bytes * self.gpu_memory_utilization
            - self.weight_bytes_per_gpu()
            - self.activation_reserve_bytes;
        let tokens = (free / self.kv_bytes_per_token_per_gpu()).floor();
        // Saturating float-to-int: negative and NaN become 0.
        tokens as u64
    }

    /// KV capacity in tokens per pod: the measured value if published, else the formula.
    pub fn kv_capacity_tokens(&self) -> u64 {
        self.kv_capacity_tokens
            .unwrap_or_else(|| self.formula_kv_capacity_tokens())
    }

    /// The roofline step model of this deployment with the default coefficients for its GPU.
    pub fn roofline(&self) -> Roofline {
        Roofline::new(self.clone(), RooflineCoefficients::for_gpu(&self.gpu))
    }
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
///
/// `r1-distill-qwen-7b` runs on one H100-SXM: Kthena does not publish its GPU.
pub fn by_name(name: &str) -> Option<ModelProfile> {
    let (arch, gpu, tp, measured) = match name {
        "qwen3-32b-h100-tp2" => (qwen3_32b(), "h100-sxm", 2, Some(307_328)),
        "llama-3.1-8b-h100-tp1" => (llama_8b(), "h100-sxm", 1, None),
        "qwen3-8b-h100-tp1" => (qwen3_8b(), "h100-sxm", 1, None),
        "llama-3.1-70b-h100-tp4" => (llama_70b(), "h100-sxm", 4, Some(461_376)),
        "r1-distill-qwen-7b" => (r1_distill_qwen_7b(), "h100-sxm", 1, None),
        "llama-3.1-8b-a100-tp1" => (llama_8b(), "a100-sxm", 1, None),
        _ => return None,
    };
    Some(ModelProfile {
        name: name.to_string(),
        arch,
        gpu: gpu_by_name(gpu)?,
        tp,
        kv_capacity_tokens: measured,
        gpu_memory_utilization: DEFAULT_GPU_MEMORY_UTILIZATION,
        activation_reserve_bytes: DEFAULT_ACTIVATION_RESERVE_BYTES,
    })
}

/// A GPU by name (`h100-sxm`, `a100-sxm`, `h200`): datasheet numbers via BLIS, mfu of §1.4.
pub fn gpu_by_name(name: &str) -> Option<Gpu> {
    let (tflops, tb_per_s, gib, mfu) = match name {
        "h100-sxm" => (989.5, 3.35, 80.0, 0.45),
        "a100-sxm" => (312.0, 2.039, 80.0, 0.38),
        "h200" => (989.5, 4.8, 141.0, 0.45),
        _ => return None,
    };
    Some(Gpu {
        name: name.to_string(),
        peak_flops: tflops * 1e12,
        hbm_bytes_per_s: tb_per_s * 1e12,
        memory_bytes: gib * GIB,
        mfu_prefill: mfu,
    })
}

/// Builds a bf16 architecture; `weight_gb` is the total weight in GB (10⁹ bytes).
fn bf16(
    (layers, hidden, heads, kv_heads): (u32, u32, u32, u32),
    ffn: u32,
    vocab: u32,
    tied_embeddings: bool,
    weight_gb: f64,
) -> ModelArch {
    ModelArch {
        layers,
        hidden,
        heads,
        kv_heads,
        head_dim: 128,
        ffn,
        vocab,
        tied_embeddings,
        weight_bytes: weight_gb * 1e9,
        kv_bytes_per_element: 2,
    }
}

// Weights: the table's M_w/GPU × TP (32.8 GB × 2, 16.1, 16.4, 35 × 4, 15.2).

fn qwen3_32b() -> ModelArch {
    bf16((64, 5120, 64, 8), 25_600, 151_936, false, 65.6)
}

fn llama_8b() -> ModelArch {
    bf16((32, 4096, 32, 8), 14_336, 128_256, false, 16.1)
}

fn qwen3_8b() -> ModelArch {
    bf16((36, 4096, 32, 8), 12_288, 151_936, false, 16.4)
}

fn llama_70b() -> ModelArch {
    bf16((80, 8192, 64, 8), 28_672, 128_256, false, 140.0)
}

fn r1_distill_qwen_7b() -> ModelArch {
    bf16((28, 3584, 28, 4), 18_944, 152_064, false, 15.2)
}
