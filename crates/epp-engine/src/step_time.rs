//! How long one engine step lasts, from the shape of its batch.
//!
//! Backends: [`LinearStepTime`] (a fixed cost plus per-token costs; `epp-sim`'s default),
//! [`Roofline`] (sim-model.md §1.4, from a model architecture and a GPU),
//! [`ConstantStepTime`] (llm-d-inference-sim style: per-token prefill, constant decode) and
//! [`StepTable`] (piecewise-linear interpolation of measured samples, Dynamo mocker style).

mod constant;
mod roofline;
mod table;
#[cfg(test)]
mod tests;

pub use constant::ConstantStepTime;
pub use roofline::{Roofline, RooflineCoefficients};
pub use table::{DecodeGrid, StepTable};

use std::time::Duration;

/// The aggregate shape of one step's batch: enough for every backend, built without
/// allocating.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchShape {
    /// Sequences in the batch (B).
    pub seqs: usize,
    /// New prompt (or recomputed) tokens computed this step: Σ nᵢ over prefill chunks.
    pub prefill_tokens: usize,
    /// Attention work of the prefill chunks: Σ nᵢ·(cᵢ + nᵢ/2), with cᵢ the tokens already
    /// computed (cached or from earlier chunks) before the chunk.
    pub prefill_attention: f64,
    /// Decoding sequences (one token each).
    pub decodes: usize,
    /// Σ ℓⱼ: context tokens of the decoding sequences.
    pub decode_context: usize,
}

impl BatchShape {
    /// Adds a prefill chunk of `new` tokens on top of `computed` ones.
    pub fn add_prefill(&mut self, new: usize, computed: usize) {
        self.seqs += 1;
        self.prefill_tokens += new;
        self.prefill_attention += new as f64 * (computed as f64 + new as f64 / 2.0);
    }

    /// Adds a decode with `context` tokens of context.
    pub fn add_decode(&mut self, context: usize) {
        self.seqs += 1;
        self.decodes += 1;
        self.decode_context += context;
    }

    /// Tokens computed this step (N).
    pub fn tokens(&self) -> usize {
        self.prefill_tokens + self.decodes
    }
}

/// The step-time model of one engine.
#[derive(Clone, Debug, PartialEq)]
pub enum StepTime {
    Linear(LinearStepTime),
    Roofline(Roofline),
    Constant(ConstantStepTime),
    Table(StepTable),
}

impl StepTime {
    /// Duration of one step with this batch.
    pub fn step(&self, batch: &BatchShape) -> Duration {
        match self {
            StepTime::Linear(model) => model.step(batch),
            StepTime::Roofline(model) => model.step(batch),
            StepTime::Constant(model) => model.step(batch),
            StepTime::Table(model) => model.step(batch),
        }
    }
}

impl Default for StepTime {
    fn default() -> Self {
        StepTime::Linear(LinearStepTime::default())
    }
}

/// The additive linear model: one step lasts
/// `base + prefill_tokens·per_prefill_token + decodes·per_decode_seq
///  + decode_context_tokens·per_context_token`.
///
/// The defaults model Llama-3.1-8B on one H100-SXM (7.0 / 9.3 / 16.9 / 47 ms decode steps
/// at batch 1 / 16 / 64 / 256 with 2k context, about 24k prefill tokens/s).
#[derive(Clone, Debug, PartialEq)]
pub struct LinearStepTime {
    /// Fixed cost of every step (kernel launches, weights read once). Default 7 ms.
    pub base: Duration,
    /// Cost of each prompt (or recomputed) token computed in the step. Default 35 µs.
    pub per_prefill_token: Duration,
    /// Scheduling overhead of each decoding sequence. Default 5 µs (BLIS β_B ≈ 4.4 µs).
    pub per_decode_seq: Duration,
    /// KV read of each context token of a decoding sequence. Default 76 ns
    /// (1.95 × 131,072 B/token ÷ 3.35 TB/s for Llama-3.1-8B on H100).
    pub per_context_token: Duration,
}

impl Default for LinearStepTime {
    fn default() -> Self {
        Self {
            base: Duration::from_micros(7_000),
            per_prefill_token: Duration::from_micros(35),
            per_decode_seq: Duration::from_micros(5),
            per_context_token: Duration::from_nanos(76),
        }
    }
}

impl LinearStepTime {
    /// Duration of one step.
    pub fn step(&self, batch: &BatchShape) -> Duration {
        let factor = |d: Duration, n: usize| d.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
        self.base
            .saturating_add(factor(self.per_prefill_token, batch.prefill_tokens))
            .saturating_add(factor(self.per_decode_seq, batch.decodes))
            .saturating_add(factor(self.per_context_token, batch.decode_context))
    }
}

/// A step length in seconds as a [`Duration`]: negative and NaN become zero, huge values
/// saturate, so a step never panics whatever the coefficients.
fn duration_from_secs(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}
