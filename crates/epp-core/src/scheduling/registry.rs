//! The plugin registry: each plugin type's name and factory, written once.
//!
//! Adding a plugin: a new file in `plugins/` with a `TYPE` constant and a `factory`
//! function, and its module name in the `in_tree_plugins!` list of `plugins/mod.rs`.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::datastore::EndpointObserver;
use crate::scheduling::plugins;
use crate::scheduling::{Filter, Picker, PreRequest, ProfileHandler, Scorer};

/// Builds a plugin from its instance name and parameters.
pub type Factory = fn(&mut PluginContext<'_>) -> Result<PluginRoles, PluginError>;

/// Every in-tree plugin type of v1.0.1, plus this EPP's additions: the list in
/// `plugins/mod.rs`.
pub const IN_TREE: &[(&str, Factory)] = plugins::IN_TREE;

/// The factory of `type_name`, with the type name as a `'static` string.
pub fn lookup(type_name: &str) -> Option<(&'static str, Factory)> {
    IN_TREE.iter().copied().find(|(name, _)| *name == type_name)
}

/// All registered type names, in registry order.
pub fn known_types() -> Vec<&'static str> {
    IN_TREE.iter().map(|(name, _)| *name).collect()
}

/// Why a plugin could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("parameters: {message}")]
    InvalidParameters { message: String },
}

/// What a factory gets: the instance name, its raw parameters, and a place for warnings.
pub struct PluginContext<'a> {
    pub name: &'a Arc<str>,
    parameters: Option<&'a serde_json::Value>,
    warnings: Vec<String>,
}

impl<'a> PluginContext<'a> {
    pub fn new(name: &'a Arc<str>, parameters: Option<&'a serde_json::Value>) -> Self {
        PluginContext {
            name,
            parameters,
            warnings: Vec::new(),
        }
    }

    /// Decodes the parameters into `T` (absent or `null` parameters give `T::default()`).
    ///
    /// Unknown keys are accepted, as v1.0.1's lenient `json.Unmarshal` does, but each one
    /// becomes a warning so a typo does not go unnoticed. Wrong types are errors naming
    /// the field.
    pub fn parameters<T: DeserializeOwned + Default>(&mut self) -> Result<T, PluginError> {
        let Some(value) = self.parameters.filter(|v| !v.is_null()) else {
            return Ok(T::default());
        };
        let mut unknown = Vec::new();
        let decoded = serde_ignored::deserialize(value, |path| unknown.push(path.to_string()))
            .map_err(|e: serde_json::Error| PluginError::InvalidParameters {
                message: e.to_string(),
            })?;
        for key in unknown {
            self.warn(format!("unknown parameter '{key}' is ignored"));
        }
        Ok(decoded)
    }

    /// Records a warning about this plugin's configuration.
    pub fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

/// The roles one plugin instance plays. A plugin may play several (the prefix scorer is
/// a scorer, a pre-request hook and an endpoint observer).
#[derive(Default, Clone)]
pub struct PluginRoles {
    pub filter: Option<Arc<dyn Filter>>,
    pub scorer: Option<Arc<dyn Scorer>>,
    pub picker: Option<Arc<dyn Picker>>,
    pub profile_handler: Option<Arc<dyn ProfileHandler>>,
    pub pre_request: Option<Arc<dyn PreRequest>>,
    pub endpoint_observer: Option<Arc<dyn EndpointObserver>>,
    /// The prefix index a plugin keeps, for the index size metrics.
    pub prefix_index: Option<Arc<crate::prefix::PrefixIndex>>,
    /// The KV-event subscription a precise prefix scorer needs the wiring to run.
    pub kv_events:
        Option<crate::scheduling::plugins::precise_prefix_cache_scorer::KvEventsSubscription>,
    /// Where a plugin that scores by tokens wants them from.
    pub tokenizer: Option<crate::tokens::TokenizerSpec>,
}

impl std::fmt::Debug for PluginRoles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PluginRoles({})", self.describe())
    }
}

impl PluginRoles {
    pub fn filter(plugin: Arc<dyn Filter>) -> Self {
        PluginRoles {
            filter: Some(plugin),
            ..Default::default()
        }
    }

    pub fn scorer(plugin: Arc<dyn Scorer>) -> Self {
        PluginRoles {
            scorer: Some(plugin),
            ..Default::default()
        }
    }

    pub fn picker(plugin: Arc<dyn Picker>) -> Self {
        PluginRoles {
            picker: Some(plugin),
            ..Default::default()
        }
    }

    pub fn profile_handler(plugin: Arc<dyn ProfileHandler>) -> Self {
        PluginRoles {
            profile_handler: Some(plugin),
            ..Default::default()
        }
    }

    /// The scheduling roles this plugin has, for messages (`scorer, pre-request`).
    pub fn describe(&self) -> String {
        let roles = [
            (self.filter.is_some(), "filter"),
            (self.scorer.is_some(), "scorer"),
            (self.picker.is_some(), "picker"),
            (self.profile_handler.is_some(), "profile handler"),
            (self.pre_request.is_some(), "pre-request"),
        ];
        let names: Vec<&str> = roles
            .iter()
            .filter(|(has, _)| *has)
            .map(|(_, n)| *n)
            .collect();
        names.join(", ")
    }

    /// True for plugins a profile can hold: filters, scorers, pickers.
    pub fn is_profile_plugin(&self) -> bool {
        self.filter.is_some() || self.scorer.is_some() || self.picker.is_some()
    }
}
