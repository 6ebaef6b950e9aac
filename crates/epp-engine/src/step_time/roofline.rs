//! The additive roofline step model of sim-model.md §1.4.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BatchShape, duration_from_secs};
use crate::profiles::{Gpu, ModelProfile};

/// The fitted coefficients of the roofline model (BLIS defaults, sim-model.md §1.4).
///
/// Deserialisable (every field optional) so an experiment file can override some of them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RooflineCoefficients {
    /// β_L: launch cost per layer, µs (BLIS β₅).
    pub per_layer_us: f64,
    /// β_0: per-step synchronisation, µs (BLIS β₇).
    pub per_step_us: f64,
    /// β_w: weight-read factor over the ideal M_w/W (BLIS β₃; 1.36 ≈ 74% of peak bandwidth).
    pub weights: f64,
    /// β_kv: KV read/write factor over the ideal κ·tokens/W (BLIS β₂ᵦ).
    pub kv: f64,
    /// β_tp: tensor-parallel all-reduce factor (BLIS β₄).
    pub tp: f64,
    /// β_B: scheduling overhead per sequence, µs (BLIS β₆).
    pub per_seq_us: f64,
    /// mfu_pf: prefill model FLOPs utilisation (0.45 on H100, 0.38 on A100).
    pub mfu_prefill: f64,
}

impl Default for RooflineCoefficients {
    /// The table's defaults with the H100 prefill MFU.
    fn default() -> Self {
        Self {
            per_layer_us: 32.1,
            per_step_us: 126.0,
            weights: 1.36,
            kv: 1.95,
            tp: 0.75,
            per_seq_us: 4.4,
            mfu_prefill: 0.45,
        }
    }
}

impl RooflineCoefficients {
    /// The defaults with this GPU's prefill MFU.
    pub fn for_gpu(gpu: &Gpu) -> Self {
        Self {
            mfu_prefill: gpu.mfu_prefill,
            ..Self::default()
        }
    }
}

/// The additive roofline model of sim-model.md §1.4, per GPU:
///
/// ```text
/// T = β_L·L + β_0 + β_w·M_w/W
///   + [Σ nᵢ·Φ + Σ 4·L·(q/TP)·nᵢ(cᵢ + nᵢ/2)] / (P·mfu_pf)
///   + β_kv·κ·(Σ ℓⱼ + |decodes|)/W
///   + β_tp·2·L·N·d·2 bytes·2(TP−1)/TP / W
///   + β_B·B
/// ```
///
/// with Φ = 2L(d(2q+2k_v) + 3d·d_ff)/TP and κ = 2·L·k_v·bytes/TP.
///
/// M_w in the weight-read term is the weights of the transformer layers on one GPU (the
/// parameters Φ counts), not the embedding and LM head: that is what the model columns of
/// §1.4 were computed with (B=1 decode 15.0 ms for Qwen3-32B TP2, 7.0 ms for Llama-3.1-8B;
/// the full 32.8 GB and 16.1 GB would give 15.7 and 7.9 ms). Memory uses the full weights.
///
/// All per-unit costs are folded into a few constants at construction, so a step is six
/// multiply-adds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Roofline {
    profile: ModelProfile,
    coefficients: RooflineCoefficients,
    terms: Terms,
}

/// The model folded into per-unit costs, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
struct Terms {
    /// β_L·L + β_0 + β_w·M_w/W.
    fixed: f64,
    /// Φ/(P·mfu) per new prefill token.
    per_prefill_token: f64,
    /// 4·L·(q/TP)/(P·mfu) per unit of Σ nᵢ(cᵢ + nᵢ/2).
    per_attention: f64,
    /// β_kv·κ/W per decode context token and per decode.
    per_kv_token: f64,
    /// β_tp·2·L·d·2·2(TP−1)/TP/W per computed token.
    per_tp_token: f64,
    /// β_B per sequence.
    per_seq: f64,
}

impl Roofline {
    /// Folds `profile` and `coefficients` into per-unit costs.
    pub fn new(profile: ModelProfile, coefficients: RooflineCoefficients) -> Self {
        let terms = Terms::new(&profile, &coefficients);
        Self {
            profile,
            coefficients,
            terms,
        }
    }

    /// The deployment this model describes.
    pub fn profile(&self) -> &ModelProfile {
        &self.profile
    }

    /// The coefficients in use.
    pub fn coefficients(&self) -> &RooflineCoefficients {
        &self.coefficients
    }

    /// Duration of one step.
    pub fn step(&self, batch: &BatchShape) -> Duration {
        let t = &self.terms;
        let secs = t.fixed
            + t.per_prefill_token * batch.prefill_tokens as f64
            + t.per_attention * batch.prefill_attention
            + t.per_kv_token * (batch.decode_context + batch.decodes) as f64
            + t.per_tp_token * batch.tokens() as f64
            + t.per_seq * batch.seqs as f64;
        duration_from_secs(secs)
    }
}

impl Terms {
    fn new(profile: &ModelProfile, c: &RooflineCoefficients) -> Self {
        const US: f64 = 1e-6;
        let arch = &profile.arch;
        let tp = f64::from(profile.tp.max(1));
        let layers = f64::from(arch.layers);
        let bandwidth = profile.gpu.hbm_bytes_per_s;
        let flops = profile.gpu.peak_flops * c.mfu_prefill;
        // Φ: two FLOPs per linear parameter per token, split over TP.
        let phi = 2.0 * arch.layers_params() / tp;
        // Weights streamed each step: the layers' share of the stored weights, on one GPU.
        let streamed = if arch.params() > 0.0 {
            profile.weight_bytes_per_gpu() * arch.layers_params() / arch.params()
        } else {
            0.0
        };
        let activation_bytes = 2.0; // bf16 activations in the all-reduce
        Self {
            fixed: c.per_layer_us * US * layers
                + c.per_step_us * US
                + c.weights * streamed / bandwidth,
            per_prefill_token: phi / flops,
            per_attention: 4.0 * layers * (arch.q_dim() / tp) / flops,
            per_kv_token: c.kv * profile.kv_bytes_per_token_per_gpu() / bandwidth,
            per_tp_token: c.tp
                * 2.0
                * layers
                * f64::from(arch.hidden)
                * activation_bytes
                * 2.0
                * (tp - 1.0)
                / tp
                / bandwidth,
            per_seq: c.per_seq_us * US,
        }
    }
}
