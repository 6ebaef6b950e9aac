//! The table backend: step times interpolated from measured samples (Dynamo mocker style).
//!
//! File form (JSON shown; YAML alike), times in milliseconds:
//!
//! ```text
//! {
//!   "prefill": [[128, 20.5], [1024, 90.0], [8192, 700.0]],
//!   "decode": {
//!     "batch":   [1, 16, 64, 256],
//!     "context": [512, 2048, 8192],
//!     "ms": [[14.9, 15.0, 15.5],
//!            [15.6, 17.4, 24.0],
//!            [18.0, 24.9, 50.0],
//!            [27.0, 55.0, 160.0]]
//!   }
//! }
//! ```
//!
//! * `prefill`: `[new tokens, ms]` pairs, strictly increasing in tokens: the step time of a
//!   prefill-only step computing that many new tokens (cached context is not a dimension).
//! * `decode`: a grid; `ms[i][j]` is the time of a decode-only step with `batch[i]` decoding
//!   sequences of mean context `context[j]`. Both axes strictly increasing.
//!
//! Between samples the time is piecewise-linear (bilinear on the grid); beyond the first or
//! last sample the end segment is extended (one sample: constant), and the result is clamped
//! at zero. A mixed step pays `prefill(Σnᵢ) + decode(|decodes|, mean ℓ)`: both tables'
//! fixed costs, an overestimate that a table measured on mixed steps avoids.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BatchShape, duration_from_secs};

/// Measured step times, interpolated (see the module doc for the format).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Fields")]
pub struct StepTable {
    prefill: Vec<[f64; 2]>,
    decode: DecodeGrid,
}

/// Decode step times on a (batch, mean context) grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeGrid {
    /// Decoding sequences, strictly increasing.
    pub batch: Vec<f64>,
    /// Mean context tokens, strictly increasing.
    pub context: Vec<f64>,
    /// `ms[i][j]`: step time at `batch[i]`, `context[j]`.
    pub ms: Vec<Vec<f64>>,
}

/// The unchecked file form of [`StepTable`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    prefill: Vec<[f64; 2]>,
    decode: DecodeGrid,
}

impl TryFrom<Fields> for StepTable {
    type Error = String;

    fn try_from(f: Fields) -> Result<Self, String> {
        Self::new(f.prefill, f.decode)
    }
}

impl StepTable {
    /// Checks the samples: non-empty, axes strictly increasing, times finite and ≥ 0, grid
    /// rows matching the axes. The error names the offending field.
    pub fn new(prefill: Vec<[f64; 2]>, decode: DecodeGrid) -> Result<Self, String> {
        let tokens: Vec<f64> = prefill.iter().map(|p| p[0]).collect();
        check_axis("prefill (new tokens)", &tokens)?;
        check_times("prefill (ms)", prefill.iter().map(|p| p[1]))?;
        check_axis("decode.batch", &decode.batch)?;
        check_axis("decode.context", &decode.context)?;
        if decode.ms.len() != decode.batch.len() {
            return Err(format!(
                "decode.ms has {} rows but decode.batch has {} entries",
                decode.ms.len(),
                decode.batch.len()
            ));
        }
        for (i, row) in decode.ms.iter().enumerate() {
            if row.len() != decode.context.len() {
                return Err(format!(
                    "decode.ms[{i}] has {} entries but decode.context has {}",
                    row.len(),
                    decode.context.len()
                ));
            }
            check_times(&format!("decode.ms[{i}]"), row.iter().copied())?;
        }
        Ok(Self { prefill, decode })
    }

    /// Duration of one step.
    pub fn step(&self, batch: &BatchShape) -> Duration {
        let mut ms = 0.0;
        if batch.prefill_tokens > 0 {
            let p = &self.prefill;
            let (lo, hi, w) = segment(p.len(), |i| p[i][0], batch.prefill_tokens as f64);
            ms += lerp(p[lo][1], p[hi][1], w);
        }
        if batch.decodes > 0 {
            let mean_context = batch.decode_context as f64 / batch.decodes as f64;
            ms += self.decode_ms(batch.decodes as f64, mean_context);
        }
        duration_from_secs(ms.max(0.0) / 1e3)
    }

    /// Bilinear interpolation on the decode grid.
    fn decode_ms(&self, batch: f64, context: f64) -> f64 {
        let g = &self.decode;
        let (b0, b1, wb) = segment(g.batch.len(), |i| g.batch[i], batch);
        let (c0, c1, wc) = segment(g.context.len(), |i| g.context[i], context);
        let row = |b: usize| lerp(g.ms[b][c0], g.ms[b][c1], wc);
        lerp(row(b0), row(b1), wb)
    }
}

/// The segment of a sorted axis of `len ≥ 1` points to interpolate `x` on: indices and the
/// weight of the upper one (outside the range the weight leaves [0, 1]: extrapolation).
fn segment(len: usize, at: impl Fn(usize) -> f64, x: f64) -> (usize, usize, f64) {
    if len < 2 {
        return (0, 0, 0.0);
    }
    // First index whose point is above x, kept within 1..len-1.
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if at(mid) <= x {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let upper = lo.clamp(1, len - 1);
    let (x0, x1) = (at(upper - 1), at(upper));
    (upper - 1, upper, (x - x0) / (x1 - x0))
}

fn lerp(y0: f64, y1: f64, w: f64) -> f64 {
    y0 + w * (y1 - y0)
}

fn check_axis(name: &str, axis: &[f64]) -> Result<(), String> {
    if axis.is_empty() {
        return Err(format!("{name} needs at least one sample"));
    }
    if let Some(bad) = axis.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
        return Err(format!("{name} must be finite numbers ≥ 0, got {bad}"));
    }
    if axis.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("{name} must be strictly increasing"));
    }
    Ok(())
}

fn check_times(name: &str, mut times: impl Iterator<Item = f64>) -> Result<(), String> {
    match times.find(|v| !(v.is_finite() && *v >= 0.0)) {
        Some(bad) => Err(format!("{name} must be finite times ≥ 0, got {bad}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{
        "prefill": [[128, 20.0], [1024, 90.0], [8192, 700.0]],
        "decode": {"batch": [1, 16], "context": [512, 2048],
                   "ms": [[10.0, 12.0], [14.0, 20.0]]}
    }"#;

    fn table() -> StepTable {
        serde_json::from_str(FILE).expect("valid table")
    }

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1e3
    }

    fn prefill(n: usize) -> BatchShape {
        let mut b = BatchShape::default();
        b.add_prefill(n, 0);
        b
    }

    fn decodes(n: usize, context: usize) -> BatchShape {
        let mut b = BatchShape::default();
        (0..n).for_each(|_| b.add_decode(context));
        b
    }

    #[test]
    fn prefill_interpolates_and_extends_end_segments() {
        let t = table();
        assert!((ms(t.step(&prefill(1024))) - 90.0).abs() < 1e-6);
        assert!((ms(t.step(&prefill(576))) - 55.0).abs() < 1e-6);
        // Beyond the last sample the 1024–8192 slope continues.
        let slope = 610.0 / 7168.0;
        assert!((ms(t.step(&prefill(9192))) - (700.0 + 1000.0 * slope)).abs() < 1e-6);
        // Below the first sample, clamped at zero rather than negative.
        assert!(ms(t.step(&prefill(1))) >= 0.0);
    }

    #[test]
    fn decode_is_bilinear_and_mixed_steps_add() {
        let t = table();
        assert!((ms(t.step(&decodes(1, 512))) - 10.0).abs() < 1e-6);
        // Batch 8 of 1..16, context 1280 midway of 512..2048.
        let exact = {
            let row = |a: f64, b: f64| a + 0.5 * (b - a);
            let w = 7.0 / 15.0;
            row(10.0, 12.0) + w * (row(14.0, 20.0) - row(10.0, 12.0))
        };
        assert!((ms(t.step(&decodes(8, 1280))) - exact).abs() < 1e-6);
        let mut mixed = decodes(16, 2048);
        mixed.add_prefill(1024, 0);
        assert!((ms(t.step(&mixed)) - 110.0).abs() < 1e-6);
        assert_eq!(t.step(&BatchShape::default()), Duration::ZERO);
    }

    #[test]
    fn rejects_bad_tables_naming_the_field() {
        let unsorted = FILE.replace("[1024, 90.0]", "[64, 90.0]");
        let err = serde_json::from_str::<StepTable>(&unsorted).expect_err("unsorted");
        assert!(err.to_string().contains("prefill (new tokens)"), "{err}");
        let short_row = FILE.replace("[14.0, 20.0]", "[14.0]");
        let err = serde_json::from_str::<StepTable>(&short_row).expect_err("short row");
        assert!(err.to_string().contains("decode.ms[1]"), "{err}");
        let negative = FILE.replace("[10.0, 12.0]", "[-1.0, 12.0]");
        let err = serde_json::from_str::<StepTable>(&negative).expect_err("negative time");
        assert!(err.to_string().contains("decode.ms[0]"), "{err}");
    }
}
