//! The llm-d-inference-sim style backend: a per-token prefill cost plus a constant decode step.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BatchShape, duration_from_secs};

/// One step lasts `base_ms + prefill_per_token_ms · Σnᵢ + decode_step_ms` (the decode step
/// only when the batch decodes), whatever the batch size or context: the load-blind timing of
/// llm-d-inference-sim, useful to isolate routing from the engine's batching physics.
///
/// In an experiment file (all fields required, milliseconds, finite and ≥ 0):
/// `{ base_ms: 0.5, prefill_per_token_ms: 0.05, decode_step_ms: 10 }`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Fields")]
pub struct ConstantStepTime {
    /// Fixed cost of every step, ms.
    pub base_ms: f64,
    /// Cost of each prompt (or recomputed) token, ms.
    pub prefill_per_token_ms: f64,
    /// Cost of a step that decodes, ms (independent of how many sequences decode).
    pub decode_step_ms: f64,
}

/// The unchecked file form of [`ConstantStepTime`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    base_ms: f64,
    prefill_per_token_ms: f64,
    decode_step_ms: f64,
}

impl TryFrom<Fields> for ConstantStepTime {
    type Error = String;

    fn try_from(f: Fields) -> Result<Self, String> {
        for (name, value) in [
            ("base_ms", f.base_ms),
            ("prefill_per_token_ms", f.prefill_per_token_ms),
            ("decode_step_ms", f.decode_step_ms),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("{name} must be a finite number ≥ 0, got {value}"));
            }
        }
        Ok(Self {
            base_ms: f.base_ms,
            prefill_per_token_ms: f.prefill_per_token_ms,
            decode_step_ms: f.decode_step_ms,
        })
    }
}

impl ConstantStepTime {
    /// Duration of one step.
    pub fn step(&self, batch: &BatchShape) -> Duration {
        let decode = if batch.decodes > 0 {
            self.decode_step_ms
        } else {
            0.0
        };
        let ms = self.base_ms + self.prefill_per_token_ms * batch.prefill_tokens as f64 + decode;
        duration_from_secs(ms / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ConstantStepTime {
        ConstantStepTime {
            base_ms: 1.0,
            prefill_per_token_ms: 0.05,
            decode_step_ms: 10.0,
        }
    }

    #[test]
    fn prefill_costs_per_token_and_decode_is_constant() {
        let mut prefill = BatchShape::default();
        prefill.add_prefill(1000, 0);
        assert_eq!(model().step(&prefill), Duration::from_millis(51));
        let mut decodes = BatchShape::default();
        for _ in 0..100 {
            decodes.add_decode(4096);
        }
        assert_eq!(model().step(&decodes), Duration::from_millis(11));
        decodes.add_prefill(200, 0);
        assert_eq!(model().step(&decodes), Duration::from_millis(21));
        assert_eq!(
            model().step(&BatchShape::default()),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn deserialises_and_rejects_bad_values() {
        let json = r#"{"base_ms": 1, "prefill_per_token_ms": 0.05, "decode_step_ms": 10}"#;
        let parsed: ConstantStepTime = serde_json::from_str(json).expect("valid file");
        assert_eq!(parsed, model());
        let negative = r#"{"base_ms": 1, "prefill_per_token_ms": -1, "decode_step_ms": 10}"#;
        let err = serde_json::from_str::<ConstantStepTime>(negative).expect_err("negative");
        assert!(err.to_string().contains("prefill_per_token_ms"), "{err}");
        let unknown = r#"{"base_ms": 1, "prefill_per_token_ms": 0, "decode_step_ms": 1, "x": 1}"#;
        assert!(serde_json::from_str::<ConstantStepTime>(unknown).is_err());
    }
}
