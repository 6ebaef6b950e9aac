//! Environment settings: the [`Env`] lookup and the `SD_*` saturation thresholds.

use std::collections::HashMap;

pub use epp_core::director::SaturationThresholds;

use crate::cli::Options;
use epp_core::config::{
    valid_kv_cache_util_threshold, valid_metrics_staleness_threshold, valid_queue_depth_threshold,
};
use epp_flags::duration::parse_go_duration;
use epp_flags::goflag::{Show, parse_bool};

/// Environment variable lookup, a trait so tests can inject values.
pub trait Env {
    /// The variable's value, or `None` when unset.
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment (non-UTF-8 values are converted lossily).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var_os(key).map(|v| v.to_string_lossy().into_owned())
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

impl Options {
    /// Reads the `SD_*` thresholds and the datalayer switch; bad values fall back with a warning.
    pub(super) fn load_env(&mut self, env: &dyn Env) {
        let d = SaturationThresholds::default();
        let w = &mut self.warnings;
        self.saturation = SaturationThresholds {
            queue_depth: env_value(
                env,
                w,
                "SD_QUEUE_DEPTH_THRESHOLD",
                d.queue_depth,
                "an integer > 0",
                |s| s.parse().ok().filter(|v| valid_queue_depth_threshold(*v)),
            ),
            kv_cache_util: env_value(
                env,
                w,
                "SD_KV_CACHE_UTIL_THRESHOLD",
                d.kv_cache_util,
                "a number between 0 and 1 (exclusive)",
                |s| s.parse().ok().filter(|v| valid_kv_cache_util_threshold(*v)),
            ),
            metrics_staleness: env_value(
                env,
                w,
                "SD_METRICS_STALENESS_THRESHOLD",
                d.metrics_staleness,
                "a Go duration > 0 such as 200ms",
                |s| {
                    parse_go_duration(s)
                        .ok()
                        .filter(|v| valid_metrics_staleness_threshold(*v))
                },
            ),
        };
        self.enable_experimental_datalayer_v2 = env_value(
            env,
            w,
            "ENABLE_EXPERIMENTAL_DATALAYER_V2",
            false,
            "true or false",
            |s| parse_bool(s).ok(),
        );
    }
}

/// Reads `key` with `parse`: unset gives `default`; unusable gives `default` and a warning.
fn env_value<T: Show>(
    env: &dyn Env,
    warnings: &mut Vec<String>,
    key: &str,
    default: T,
    allowed: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> T {
    let Some(raw) = env.var(key) else {
        return default;
    };
    parse(&raw).unwrap_or_else(|| {
        let shown = default.show();
        warnings.push(format!(
            "ignoring environment variable {key}={raw:?}: expected {allowed}; using the default {shown}"
        ));
        default
    })
}
