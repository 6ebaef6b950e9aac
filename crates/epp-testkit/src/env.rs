//! Settings a bench reads from its environment.

use std::str::FromStr;

/// The environment variable `name` parsed as a `T`, or `default` when it is unset or
/// does not parse.
pub fn knob<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
