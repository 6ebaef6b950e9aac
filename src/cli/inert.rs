//! Settings accepted for compatibility with upstream that change nothing in this EPP: each one
//! given gets a startup warning saying so, rather than being ignored silently.

use crate::cli::env::Env;

/// Flags that parse but have no effect, with the reason.
const INERT_FLAGS: [(&str, &str); 2] = [
    ("enable-pprof", "this EPP has no Go pprof handlers"),
    ("zap-stacktrace-level", "log records carry no stacktraces"),
];

/// Environment variables that are read but have no effect, with the reason.
const INERT_ENV: [(&str, &str); 1] = [(
    "ENABLE_EXPERIMENTAL_DATALAYER_V2",
    "this EPP has a single datalayer",
)];

/// One note per inert flag given on the command line (`set`) or inert variable set in `env`.
pub(super) fn notes(set: &[&'static str], env: &dyn Env) -> Vec<String> {
    let flags = INERT_FLAGS
        .iter()
        .filter(|(flag, _)| set.contains(flag))
        .map(|(flag, why)| format!("flag --{flag} has no effect: {why}"));
    let vars = INERT_ENV
        .iter()
        .filter(|(key, _)| env.var(key).is_some())
        .map(|(key, why)| format!("environment variable {key} has no effect: {why}"));
    flags.chain(vars).collect()
}
