//! Floats as Go prints them, for output that must match the Go EPP byte for byte (zap's
//! console timestamps, Prometheus text exposition).

use std::fmt::Write as _;

/// Appends `value` as Go's `strconv.FormatFloat(value, 'g', -1, 64)` (and `fmt.Sprint`):
/// the shortest digits that round-trip, in exponent form when the decimal exponent is
/// below -4 or at least 6 (`1e+06`, `1.048576e+06`, `1e-05`), plain otherwise (`524288`,
/// `0.0001`); `NaN`, `+Inf`, `-Inf`.
pub fn write_go_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    // Rust's `{:e}` and `{}` give the same shortest round-trip digits as Go.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        let _ = write!(out, "{value}");
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "{mantissa}e{sign}{:02}", exponent.unsigned_abs());
    }
}
