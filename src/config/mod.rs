//! `EndpointPickerConfig`: decoding, defaulting, validation, and the default config.

mod raw;
mod resolve;

use std::path::Path;
use std::sync::Arc;

use crate::datastore::EndpointObserver;
use crate::scheduling::Scheduler;

pub use raw::{API_VERSION, KIND, RawConfig, RawPlugin, RawProfile, RawProfilePlugin};
pub use resolve::PluginInstance;

/// The upstream default: queue, KV-cache and prefix-cache scorers in profile `default`.
pub const DEFAULT_CONFIG: &str = include_str!("../../plugins-config/default-plugins.yaml");

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
        let resolved = resolve::resolve(raw::decode(text)?)?;
        Ok(EndpointPickerConfig {
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
