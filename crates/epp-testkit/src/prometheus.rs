//! Reading a Prometheus text page (the EPP's `/metrics`).

/// The value of the sample written exactly as `series` (name, and labels in the order the
/// page writes them).
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exact_series_only() {
        let page = "# TYPE a counter\na 3\na_total 4\nb{x=\"1\"} 0.5\n";
        assert_eq!(sample(page, "a"), Some(3.0));
        assert_eq!(sample(page, "b{x=\"1\"}"), Some(0.5));
        assert_eq!(sample(page, "b"), None);
    }
}
