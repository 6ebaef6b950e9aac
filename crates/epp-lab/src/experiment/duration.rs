//! Go duration strings (`50ms`, `1.5s`, `1m30s`), as the EPP's own flags take them.

/// Seconds in a Go duration string, or why it is not one.
pub fn parse_go_duration(text: &str) -> Result<f64, String> {
    let bad = || {
        format!("{text:?} is not a duration (examples: 50ms, 2s, 1m30s, or a number of seconds)")
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(0.0);
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..number_end].parse().map_err(|_| bad())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;

    #[test]
    fn parses_go_durations() {
        let table = [
            ("50ms", 0.05),
            ("2s", 2.0),
            ("1m30s", 90.0),
            ("1.5s", 1.5),
            ("10us", 1e-5),
            ("0", 0.0),
        ];
        for (text, want) in table {
            let got = parse_go_duration(text).expect(text);
            assert!((got - want).abs() < 1e-12, "{text}: {got}");
        }
        for bad in ["", "5", "ms", "5x", "-1s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad} should fail");
        }
    }
}
