//! Go duration syntax: `time.ParseDuration` parsing and `Duration.String()` formatting.

use std::time::Duration;

/// Why a Go duration string was rejected; wording follows Go's `time` package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not of the form `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`.
    #[error("time: invalid duration {0:?}")]
    Invalid(String),
    /// A number without a unit (only a lone `0` may omit it).
    #[error("time: missing unit in duration {0:?} (units: ns, us, µs, ms, s, m, h)")]
    MissingUnit(String),
    /// A unit outside ns, us, µs, ms, s, m, h.
    #[error("time: unknown unit {unit:?} in duration {text:?} (units: ns, us, µs, ms, s, m, h)")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole duration text.
        text: String,
    },
    /// The value does not fit a signed 64-bit nanosecond count (about ±292 years).
    #[error("time: duration {0:?} is out of range (at most about 292 years)")]
    Overflow(String),
    /// A negative duration where only non-negative ones make sense.
    #[error("negative duration {0:?} is not allowed")]
    Negative(String),
}

/// Go's bound on the magnitude of a duration: 2^63 nanoseconds.
const LIMIT: u64 = 1 << 63;

/// Unit suffixes in nanoseconds; micro accepts `us`, U+00B5 and U+03BC like Go.
const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses Go duration text (`300ms`, `-1.5h`, `2h45m`) into signed nanoseconds.
pub fn parse_go_duration_nanos(text: &str) -> Result<i64, DurationError> {
    let overflow = || DurationError::Overflow(text.to_owned());
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(DurationError::Invalid(text.to_owned()));
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (value, tail) = component(rest, text)?;
        total = total
            .checked_add(value)
            .filter(|t| *t <= LIMIT)
            .ok_or_else(overflow)?;
        rest = tail;
    }
    if negative {
        0_i64.checked_sub_unsigned(total).ok_or_else(overflow)
    } else {
        i64::try_from(total).map_err(|_| overflow())
    }
}

/// Parses Go duration text into a non-negative [`Duration`]; negative values are an error.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let nanos = parse_go_duration_nanos(text)?;
    let nanos = u64::try_from(nanos).map_err(|_| DurationError::Negative(text.to_owned()))?;
    Ok(Duration::from_nanos(nanos))
}

/// Parses one `number unit` component; returns its nanoseconds and the unparsed tail.
fn component<'a>(s: &'a str, text: &str) -> Result<(u64, &'a str), DurationError> {
    let overflow = || DurationError::Overflow(text.to_owned());
    let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
    let whole = leading_int(&s[..int_len]).ok_or_else(overflow)?;
    let mut rest = &s[int_len..];
    let (mut fraction, mut scale, mut frac_len) = (0, 1.0, 0);
    if let Some(after_dot) = rest.strip_prefix('.') {
        frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        (fraction, scale) = leading_fraction(&after_dot[..frac_len]);
        rest = &after_dot[frac_len..];
    }
    // Go rejects components without any digit, e.g. ".s" or "-.s" (and "h" alone).
    if int_len == 0 && frac_len == 0 {
        return Err(DurationError::Invalid(text.to_owned()));
    }
    let unit_len = rest
        .bytes()
        .take_while(|c| *c != b'.' && !c.is_ascii_digit())
        .count();
    if unit_len == 0 {
        return Err(DurationError::MissingUnit(text.to_owned()));
    }
    let (unit_text, tail) = rest.split_at(unit_len);
    let unit = UNITS
        .iter()
        .find(|(name, _)| *name == unit_text)
        .map(|(_, nanos)| *nanos)
        .ok_or_else(|| DurationError::UnknownUnit {
            unit: unit_text.to_owned(),
            text: text.to_owned(),
        })?;
    if whole > LIMIT / unit {
        return Err(overflow());
    }
    let mut value = whole * unit;
    if fraction > 0 {
        // Same float arithmetic as Go so fractional results agree to the nanosecond.
        value += (fraction as f64 * (unit as f64 / scale)) as u64;
        if value > LIMIT {
            return Err(overflow());
        }
    }
    Ok((value, tail))
}

/// Value of a run of ASCII digits, or `None` when it exceeds 2^63.
fn leading_int(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0_u64, |acc, c| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .filter(|v| *v <= LIMIT)
    })
}

/// Value and scale (10^digits used) of fraction digits; digits beyond 2^63 precision are dropped.
fn leading_fraction(digits: &str) -> (u64, f64) {
    let (mut value, mut scale) = (0_u64, 1.0_f64);
    for c in digits.bytes() {
        let next = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .filter(|v| *v <= LIMIT);
        match next {
            Some(v) => {
                value = v;
                scale *= 10.0;
            }
            None => break,
        }
    }
    (value, scale)
}

/// Formats like Go's `Duration.String()`: `0s`, `1.5µs`, `50ms`, `2s`, `1m30s`, `1h0m0s`.
pub fn format_go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        let (precision, unit) = match nanos {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "\u{b5}s"),
            _ => (6, "ms"),
        };
        return format!("{}{unit}", with_fraction(nanos, precision));
    }
    let seconds = with_fraction(nanos % 60_000_000_000, 9);
    let minutes = nanos / 60_000_000_000;
    match (minutes / 60, minutes % 60) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `value / 10^precision` with the fraction's trailing zeros (and a bare `.`) omitted.
fn with_fraction(value: u128, precision: u32) -> String {
    let scale = 10_u128.pow(precision);
    let (whole, fraction) = (value / scale, value % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = precision as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let good = [
            ("0", 0),
            ("-0", 0),
            ("+0s", 0),
            ("300ms", 300_000_000),
            ("1.5h", 5_400_000_000_000),
            ("-1.5h", -5_400_000_000_000),
            ("2h45m", 9_900_000_000_000),
            ("1m30s", 90_000_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("10µs", 10_000),
            ("10μs", 10_000),
            ("10us", 10_000),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("1.0000000001s", 1_000_000_000),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("2562047h47m16.854775807s", i64::MAX),
        ];
        for (text, want) in good {
            assert_eq!(parse_go_duration_nanos(text), Ok(want), "{text}");
        }
        use DurationError as E;
        let bad = [
            ("", E::Invalid("".into())),
            ("-", E::Invalid("-".into())),
            ("s", E::Invalid("s".into())),
            (".s", E::Invalid(".s".into())),
            ("1", E::MissingUnit("1".into())),
            ("1h2", E::MissingUnit("1h2".into())),
            (
                "3d",
                E::UnknownUnit {
                    unit: "d".into(),
                    text: "3d".into(),
                },
            ),
            (
                "1s ",
                E::UnknownUnit {
                    unit: "s ".into(),
                    text: "1s ".into(),
                },
            ),
            (
                "9223372036854775808ns",
                E::Overflow("9223372036854775808ns".into()),
            ),
            ("3000000h", E::Overflow("3000000h".into())),
        ];
        for (text, want) in bad {
            assert_eq!(parse_go_duration_nanos(text), Err(want), "{text}");
        }
        assert_eq!(parse_go_duration("-1s"), Err(E::Negative("-1s".into())));
        assert_eq!(parse_go_duration("1m"), Ok(Duration::from_secs(60)));
    }

    #[test]
    fn go_duration_strings() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1_100), "1.1µs"),
            (Duration::from_millis(50), "50ms"),
            (Duration::from_micros(2_500), "2.5ms"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_nanos(3_723_004_005_006), "1h2m3.004005006s"),
            (
                Duration::from_nanos(i64::MAX as u64),
                "2562047h47m16.854775807s",
            ),
        ];
        for (duration, want) in cases {
            assert_eq!(format_go_duration(duration), want);
            if let Ok(nanos) = parse_go_duration_nanos(want) {
                assert_eq!(nanos as u128, duration.as_nanos(), "{want} round trip");
            }
        }
    }
}
