//! Small statistics used by every report file: means, percentiles, confidence intervals and
//! Jain's fairness index.
//!
//! Percentiles use linear interpolation between closest ranks (NumPy's default `linear`
//! method, which inference-perf uses through `np.percentile`), so our numbers and
//! inference-perf's agree on the same samples.

/// Arithmetic mean; `None` for an empty set.
pub(crate) fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(values.iter().sum::<f64>() / values.len() as f64)
}

/// The `p`-th percentile (0–100) of `sorted` (ascending), linear interpolation.
pub(crate) fn percentile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let h = last as f64 * (p / 100.0).clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(last);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// Sorts a copy of `values` (NaN-free by construction: all inputs are differences of finite
/// times) for [`percentile_sorted`].
pub(crate) fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Percentile of the multiset where `value` occurs `weight` times, without expanding it:
/// linear interpolation over the expanded ranks. `pairs` must be sorted by value.
pub(crate) fn weighted_percentile(pairs: &[(f64, u64)], p: f64) -> Option<f64> {
    let total: u64 = pairs.iter().map(|&(_, w)| w).sum();
    let last = total.checked_sub(1)?;
    let h = last as f64 * (p / 100.0).clamp(0.0, 1.0);
    let lo = h.floor() as u64;
    let at = |rank: u64| {
        let mut seen = 0;
        for &(v, w) in pairs {
            seen += w;
            if rank < seen {
                return v;
            }
        }
        pairs.last().map_or(0.0, |&(v, _)| v)
    };
    let (a, b) = (at(lo), at((lo + 1).min(last)));
    Some(a + (h - lo as f64) * (b - a))
}

/// Two-sided 95% Student-t quantile t(0.975, dof).
fn t975(dof: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match dof {
        0 => f64::INFINITY,
        1..=30 => TABLE[dof - 1],
        _ => {
            // Cornish–Fisher expansion around the normal quantile; within 1e-3 past 30 dof.
            let z = 1.959_964_f64;
            let d = dof as f64;
            z + (z.powi(3) + z) / (4.0 * d)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
    }
}

/// Half-width of the 95% confidence interval of the mean (Student t, n−1 dof); 0 for one
/// value, `None` for none.
pub(crate) fn ci95(values: &[f64]) -> Option<f64> {
    let m = mean(values)?;
    let n = values.len();
    if n < 2 {
        return Some(0.0);
    }
    let var = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some(t975(n - 1) * (var / n as f64).sqrt())
}

/// Jain's fairness index (Σx)²/(n·Σx²): 1 when every pod got the same share, 1/n when one
/// pod got everything. `None` when there is nothing to share.
pub(crate) fn jain(counts: &[f64]) -> Option<f64> {
    let sum: f64 = counts.iter().sum();
    let sq: f64 = counts.iter().map(|x| x * x).sum();
    if counts.is_empty() || sq == 0.0 {
        return None;
    }
    Some(sum * sum / (counts.len() as f64 * sq))
}
