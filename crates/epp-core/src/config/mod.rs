//! `EndpointPickerConfig`: decoding, defaulting, validation, and the default config.

mod flow_control;
mod raw;
mod resolve;

use std::path::Path;
use std::sync::Arc;

use crate::datastore::EndpointObserver;
use crate::scheduling::Scheduler;

pub use flow_control::{
    DEFAULT_DEADLINE_HEADER, DetectorSpec, FlowControlSettings, parse_deadline_ms,
};
pub use raw::{
    API_VERSION, KIND, RawConfig, RawFlowControl, RawPlugin, RawProfile, RawProfilePlugin,
    RawSaturationDetector,
};
pub use resolve::PluginInstance;

/// The upstream default: queue, KV-cache and prefix-cache scorers in profile `default`.
pub const DEFAULT_CONFIG: &str = include_str!("../../../../plugins-config/default-plugins.yaml");

/// Why a config was rejected. Each message names the field and says what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not valid YAML/JSON, or an unknown or duplicate field.
    #[error("the configuration is invalid - {message}")]
    Decode { message: String },
    /// A field with a bad value.
    #[error("{path}: {message}")]
    Field { path: String, message: String },
    #[error("cannot read config file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A loaded, validated config, ready to schedule.
pub struct EndpointPickerConfig {
    pub plugins: Vec<PluginInstance>,
    pub scheduler: Arc<Scheduler>,
    /// The config with every default applied, as it would be written by hand.
    pub effective: RawConfig,
    /// Settings that are accepted but do nothing useful (log them).
    pub warnings: Vec<String>,
    /// The `saturationDetector` section, validated; `None` fields keep the flag/env values.
    pub saturation: SaturationOverrides,
    /// The detector flow control asks (`saturationDetector.type`).
    pub detector: DetectorSpec,
    /// The `flowControl` section; `None`: requests are never held.
    pub flow_control: Option<FlowControlSettings>,
}

/// Shedding thresholds set in the config file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SaturationOverrides {
    pub queue_depth: Option<u64>,
    pub kv_cache_util: Option<f64>,
    pub metrics_staleness: Option<std::time::Duration>,
}

impl SaturationOverrides {
    /// `base` with the configured thresholds on top.
    pub fn apply(
        &self,
        base: crate::director::SaturationThresholds,
    ) -> crate::director::SaturationThresholds {
        crate::director::SaturationThresholds {
            queue_depth: self.queue_depth.unwrap_or(base.queue_depth),
            kv_cache_util: self.kv_cache_util.unwrap_or(base.kv_cache_util),
            metrics_staleness: self.metrics_staleness.unwrap_or(base.metrics_staleness),
        }
    }
}

/// A queue-depth threshold counts waiting requests: at least 1. The one check of the config
/// file's `queueDepthThreshold` and of `SD_QUEUE_DEPTH_THRESHOLD` (each words its own message).
pub fn valid_queue_depth_threshold(depth: u64) -> bool {
    depth >= 1
}

/// A KV-cache threshold is a usage fraction strictly between 0 and 1 (`kvCacheUtilThreshold`,
/// `SD_KV_CACHE_UTIL_THRESHOLD`).
pub fn valid_kv_cache_util_threshold(fraction: f64) -> bool {
    fraction > 0.0 && fraction < 1.0
}

/// A staleness threshold is a positive age (`metricsStalenessThreshold`,
/// `SD_METRICS_STALENESS_THRESHOLD`).
pub fn valid_metrics_staleness_threshold(age: std::time::Duration) -> bool {
    !age.is_zero()
}

fn saturation_overrides(
    raw: Option<&RawSaturationDetector>,
) -> Result<SaturationOverrides, ConfigError> {
    let Some(raw) = raw else {
        return Ok(SaturationOverrides::default());
    };
    let field = |name: &str, message: String| ConfigError::Field {
        path: format!("saturationDetector.{name}"),
        message,
    };
    if let Some(kv) = raw
        .kv_cache_util_threshold
        .filter(|kv| !valid_kv_cache_util_threshold(*kv))
    {
        return Err(field(
            "kvCacheUtilThreshold",
            format!("must be between 0 and 1 (exclusive), got {kv}"),
        ));
    }
    if raw
        .queue_depth_threshold
        .is_some_and(|depth| !valid_queue_depth_threshold(depth))
    {
        return Err(field("queueDepthThreshold", "must be at least 1".into()));
    }
    let staleness = match raw.metrics_staleness_threshold.as_deref() {
        None => None,
        Some(text) => match epp_flags::duration::parse_go_duration(text) {
            Ok(d) if valid_metrics_staleness_threshold(d) => Some(d),
            Ok(_) => {
                return Err(field(
                    "metricsStalenessThreshold",
                    "must be greater than 0".into(),
                ));
            }
            Err(e) => {
                return Err(field(
                    "metricsStalenessThreshold",
                    format!("{e} (Go duration, e.g. 200ms)"),
                ));
            }
        },
    };
    Ok(SaturationOverrides {
        queue_depth: raw.queue_depth_threshold,
        kv_cache_util: raw.kv_cache_util_threshold,
        metrics_staleness: staleness,
    })
}

impl std::fmt::Debug for EndpointPickerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointPickerConfig")
            .field("plugins", &self.plugins)
            .field("scheduler", &self.scheduler)
            .finish_non_exhaustive()
    }
}

impl EndpointPickerConfig {
    /// Decodes and resolves config text (YAML or JSON).
    pub fn from_text(text: &str) -> Result<Self, ConfigError> {
        let raw = raw::decode(text)?;
        let saturation = saturation_overrides(raw.saturation_detector.as_ref())?;
        let detector = flow_control::detector(raw.saturation_detector.as_ref())?;
        let flow_control = flow_control::flow_control(raw.flow_control.as_ref())?;
        let resolved = resolve::resolve(raw)?;
        Ok(EndpointPickerConfig {
            saturation,
            detector,
            flow_control,
            plugins: resolved.plugins,
            scheduler: Arc::new(resolved.scheduler),
            effective: resolved.effective,
            warnings: resolved.warnings,
        })
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_text(&text)
    }

    /// The plugins that keep per-endpoint state and must hear about departed endpoints.
    pub fn endpoint_observers(&self) -> Vec<Arc<dyn EndpointObserver>> {
        self.plugins
            .iter()
            .filter_map(|p| p.roles.endpoint_observer.clone())
            .collect()
    }

    /// The prefix indexes of the configured prefix-cache scorers, for the size metrics.
    pub fn prefix_indexes(&self) -> Vec<Arc<crate::prefix::PrefixIndex>> {
        self.plugins
            .iter()
            .filter_map(|p| p.roles.prefix_index.clone())
            .collect()
    }

    /// The KV-event subscriptions of the configured precise prefix scorers.
    pub fn kv_event_subscriptions(
        &self,
    ) -> Vec<crate::scheduling::plugins::precise_prefix_cache_scorer::KvEventsSubscription> {
        self.plugins
            .iter()
            .filter_map(|p| p.roles.kv_events.clone())
            .collect()
    }

    /// Where the scheduler's token-keyed plugins want tokens from: the first one's choice
    /// (one request is tokenized once). `None` when no plugin needs tokens.
    pub fn tokenizer(&self) -> Option<crate::tokens::TokenizerSpec> {
        self.plugins.iter().find_map(|p| p.roles.tokenizer.clone())
    }

    /// A human-readable summary of the resolved profiles, for `--validate-config`.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for profile in self.scheduler.profiles() {
            let _ = writeln!(out, "profile '{}':", profile.name);
            for filter in &profile.filters {
                let _ = writeln!(out, "  filter  {} ({})", filter.name, filter.type_name);
            }
            for scorer in &profile.scorers {
                let _ = writeln!(
                    out,
                    "  scorer  {} ({}) weight {}",
                    scorer.scorer.name, scorer.scorer.type_name, scorer.weight
                );
            }
            let _ = writeln!(
                out,
                "  picker  {} ({})",
                profile.picker.name, profile.picker.type_name
            );
        }
        let handler = self.scheduler.profile_handler();
        let _ = writeln!(
            out,
            "profile handler: {} ({})",
            handler.name, handler.type_name
        );
        let hooks: Vec<&str> = self
            .scheduler
            .pre_request_plugins()
            .iter()
            .map(|p| &*p.name)
            .collect();
        if !hooks.is_empty() {
            let _ = writeln!(out, "pre-request: {}", hooks.join(", "));
        }
        out
    }
}

#[cfg(test)]
mod tests;
