//! Defaulting, validation and construction of the scheduler from a decoded config,
//! as v1.0.1's loader (`configloader.go`, `defaults.go`) but deterministic and without
//! order-dependent crashes.

use std::sync::Arc;

use crate::config::ConfigError;
use crate::config::raw::{RawConfig, RawProfile, RawProfilePlugin};
use crate::scheduling::Named;
use crate::scheduling::plugins::{max_score_picker, single_profile_handler};
use crate::scheduling::registry::{self, PluginContext, PluginRoles};
use crate::scheduling::{Filter, Picker, Scheduler, SchedulingProfile, WeightedScorer};

/// One instantiated plugin of the config.
#[derive(Clone)]
pub struct PluginInstance {
    pub name: Arc<str>,
    pub type_name: &'static str,
    pub roles: PluginRoles,
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} ({})",
            self.type_name,
            self.name,
            self.roles.describe()
        )
    }
}

/// The config after defaulting: the plugins, the scheduler built from them, the
/// effective config (for printing) and warnings about settings that do nothing useful.
pub struct Resolved {
    pub plugins: Vec<PluginInstance>,
    pub scheduler: Scheduler,
    pub effective: RawConfig,
    pub warnings: Vec<String>,
}

/// Runs every phase: names, instantiation, defaults, validation, construction.
pub fn resolve(mut raw: RawConfig) -> Result<Resolved, ConfigError> {
    let mut warnings = Vec::new();
    default_plugin_names(&mut raw);
    let mut plugins = instantiate(&raw, &mut warnings)?;
    add_default_profile(&mut raw, &plugins);
    add_default_handler(&mut raw, &mut plugins)?;
    let picker = ensure_picker(&mut raw, &mut plugins)?;
    default_weights_and_pickers(&mut raw, &plugins, &picker);
    validate_profiles(&raw, &plugins)?;
    let profiles = build_profiles(&raw, &plugins, &mut warnings)?;
    let scheduler = build_scheduler(profiles, &plugins)?;
    Ok(Resolved {
        plugins,
        scheduler,
        effective: raw,
        warnings,
    })
}

/// Phase 1: an unnamed plugin is named after its type.
fn default_plugin_names(raw: &mut RawConfig) {
    for plugin in &mut raw.plugins {
        if plugin.name.is_empty() {
            plugin.name = plugin.type_name.clone();
        }
    }
}

/// Instantiates plugins in file order.
fn instantiate(
    raw: &RawConfig,
    warnings: &mut Vec<String>,
) -> Result<Vec<PluginInstance>, ConfigError> {
    let mut instances: Vec<PluginInstance> = Vec::with_capacity(raw.plugins.len());
    for (i, spec) in raw.plugins.iter().enumerate() {
        if spec.type_name.is_empty() {
            return Err(field(
                format!("plugins[{i}].type"),
                format!("plugin definition for '{}' is missing a type", spec.name),
            ));
        }
        if let Some(first) = instances.iter().position(|p| *p.name == *spec.name) {
            return Err(field(
                format!("plugins[{i}].name"),
                format!(
                    "plugin name '{}' used more than once (also plugins[{first}]); names must be unique",
                    spec.name
                ),
            ));
        }
        let Some((type_name, factory)) = registry::lookup(&spec.type_name) else {
            return Err(field(
                format!("plugins[{i}].type"),
                format!(
                    "plugin type '{}' is not found in registry (known: {})",
                    spec.type_name,
                    registry::known_types().join(", ")
                ),
            ));
        };
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let mut ctx = PluginContext::new(&name, spec.parameters.as_ref());
        let roles = factory(&mut ctx).map_err(|e| {
            field(
                format!("plugins[{i}].parameters"),
                format!("failed to instantiate the plugin type '{type_name}' named '{name}': {e}"),
            )
        })?;
        warnings.extend(
            ctx.take_warnings()
                .into_iter()
                .map(|w| format!("plugins[{i}] ('{name}'): {w}")),
        );
        instances.push(PluginInstance {
            name,
            type_name,
            roles,
        });
    }
    Ok(instances)
}

/// Phase 2a: no profiles → profile `default` with every filter, scorer and picker, in file
/// order (v1.0.1 uses Go map order, which is random).
fn add_default_profile(raw: &mut RawConfig, plugins: &[PluginInstance]) {
    if !raw.scheduling_profiles.is_empty() {
        return;
    }
    let refs = plugins
        .iter()
        .filter(|p| p.roles.is_profile_plugin())
        .map(|p| RawProfilePlugin {
            plugin_ref: p.name.to_string(),
            weight: None,
        })
        .collect();
    raw.scheduling_profiles.push(RawProfile {
        name: "default".into(),
        plugins: refs,
    });
}

/// Phase 2b: one profile and no profile handler → add `single-profile-handler`.
fn add_default_handler(
    raw: &mut RawConfig,
    plugins: &mut Vec<PluginInstance>,
) -> Result<(), ConfigError> {
    let has_handler = plugins.iter().any(|p| p.roles.profile_handler.is_some());
    if raw.scheduling_profiles.len() == 1 && !has_handler {
        add_builtin(
            raw,
            plugins,
            single_profile_handler::TYPE,
            "there is one profile and no profile handler",
        )?;
    }
    Ok(())
}

/// Phase 2c: the picker for profiles that lack one: the first picker plugin in file
/// order, else a new `max-score-picker` (maxNumOfEndpoints 1).
fn ensure_picker(
    raw: &mut RawConfig,
    plugins: &mut Vec<PluginInstance>,
) -> Result<Arc<str>, ConfigError> {
    if let Some(picker) = plugins.iter().find(|p| p.roles.picker.is_some()) {
        return Ok(Arc::clone(&picker.name));
    }
    add_builtin(
        raw,
        plugins,
        max_score_picker::TYPE,
        "no picker is configured",
    )
}

/// Adds a parameterless in-tree plugin named after its type; returns its name. A
/// configured plugin of another type with that name would capture every reference to it.
fn add_builtin(
    raw: &mut RawConfig,
    plugins: &mut Vec<PluginInstance>,
    type_name: &'static str,
    reason: &str,
) -> Result<Arc<str>, ConfigError> {
    if let Some((i, taken)) = plugins
        .iter()
        .enumerate()
        .find(|(_, p)| *p.name == *type_name)
    {
        return Err(field(
            format!("plugins[{i}].name"),
            format!(
                "plugin name '{type_name}' (type {}) is also the name of the {type_name} plugin added because {reason}; rename it",
                taken.type_name
            ),
        ));
    }
    let name: Arc<str> = Arc::from(type_name);
    let roles = registry::lookup(type_name)
        .and_then(|(_, factory)| factory(&mut PluginContext::new(&name, None)).ok())
        .unwrap_or_default();
    plugins.push(PluginInstance {
        name: Arc::clone(&name),
        type_name,
        roles,
    });
    raw.plugins.push(crate::config::raw::RawPlugin {
        name: type_name.into(),
        type_name: type_name.into(),
        parameters: None,
    });
    Ok(name)
}

/// Phase 2d: scorers without a weight get 1 wherever they are listed (v1.0.1 stops at the
/// picker and then crashes on a later scorer); a profile without a picker gets one.
fn default_weights_and_pickers(raw: &mut RawConfig, plugins: &[PluginInstance], picker: &Arc<str>) {
    let find = |name: &str| plugins.iter().find(|p| *p.name == *name);
    for profile in &mut raw.scheduling_profiles {
        let mut has_picker = false;
        for entry in &mut profile.plugins {
            let Some(plugin) = find(&entry.plugin_ref) else {
                continue;
            };
            if plugin.roles.scorer.is_some() && entry.weight.is_none() {
                entry.weight = Some(1.0);
            }
            has_picker |= plugin.roles.picker.is_some();
        }
        if !has_picker {
            profile.plugins.push(RawProfilePlugin {
                plugin_ref: picker.to_string(),
                weight: None,
            });
        }
    }
}

/// Profile names are non-empty and unique; every reference names a defined plugin.
fn validate_profiles(raw: &RawConfig, plugins: &[PluginInstance]) -> Result<(), ConfigError> {
    for (i, profile) in raw.scheduling_profiles.iter().enumerate() {
        if profile.name.is_empty() {
            return Err(field(
                format!("schedulingProfiles[{i}].name"),
                "SchedulingProfile must have a name".into(),
            ));
        }
        if raw.scheduling_profiles[..i]
            .iter()
            .any(|p| p.name == profile.name)
        {
            return Err(field(
                format!("schedulingProfiles[{i}].name"),
                format!(
                    "the name '{}' has been specified for more than one SchedulingProfile",
                    profile.name
                ),
            ));
        }
        for (j, entry) in profile.plugins.iter().enumerate() {
            let path = format!("schedulingProfiles[{i}].plugins[{j}].pluginRef");
            if entry.plugin_ref.is_empty() {
                return Err(field(
                    path,
                    format!(
                        "SchedulingProfile '{}' plugins must have a plugin reference",
                        profile.name
                    ),
                ));
            }
            let Some(plugin) = plugins.iter().find(|p| *p.name == *entry.plugin_ref) else {
                let defined: Vec<&str> = plugins.iter().map(|p| &*p.name).collect();
                return Err(field(
                    path,
                    format!(
                        "{} is a reference to an undefined Plugin (defined: {})",
                        entry.plugin_ref,
                        defined.join(", ")
                    ),
                ));
            };
            if !plugin.roles.is_profile_plugin() {
                return Err(field(
                    path,
                    format!(
                        "'{}' ({}) is a {}, not a filter, scorer or picker, so it cannot be part of a profile",
                        plugin.name,
                        plugin.type_name,
                        plugin.roles.describe()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Builds each profile (see [`build_profile`]).
fn build_profiles(
    raw: &RawConfig,
    plugins: &[PluginInstance],
    warnings: &mut Vec<String>,
) -> Result<Vec<SchedulingProfile>, ConfigError> {
    raw.scheduling_profiles
        .iter()
        .enumerate()
        .map(|(i, spec)| build_profile(i, spec, plugins, warnings))
        .collect()
}

/// Builds profile `i`: filters in listed order, weighted scorers, exactly one picker.
/// Each entry is looked at in every role its plugin plays.
fn build_profile(
    i: usize,
    spec: &RawProfile,
    plugins: &[PluginInstance],
    warnings: &mut Vec<String>,
) -> Result<SchedulingProfile, ConfigError> {
    let mut parts = ProfileParts::default();
    for (j, entry) in spec.plugins.iter().enumerate() {
        let path = format!("schedulingProfiles[{i}].plugins[{j}]");
        let Some(plugin) = plugins.iter().find(|p| *p.name == *entry.plugin_ref) else {
            continue;
        };
        if spec.plugins[..j]
            .iter()
            .any(|e| e.plugin_ref == entry.plugin_ref)
        {
            warnings.push(format!(
                "{path}: '{}' is listed more than once in profile '{}'",
                plugin.name, spec.name
            ));
        }
        if let Some(filter) = &plugin.roles.filter {
            parts.filters.push(named(plugin, Arc::clone(filter)));
        }
        parts.add_scorer(&path, &spec.name, entry, plugin, warnings)?;
        parts.set_picker(&path, plugin)?;
    }
    parts.finish(i, &spec.name, warnings)
}

/// A profile's plugins, gathered from its entries in order.
#[derive(Default)]
struct ProfileParts {
    filters: Vec<Named<dyn Filter>>,
    scorers: Vec<WeightedScorer>,
    picker: Option<Named<dyn Picker>>,
    /// Σ |weight| of the scorers so far, which must stay finite.
    weight_sum: f64,
}

impl ProfileParts {
    /// Adds `plugin` as a scorer with the entry's weight (1 when unset); a weight on a
    /// plugin that is not a scorer is ignored with a warning.
    fn add_scorer(
        &mut self,
        path: &str,
        profile: &str,
        entry: &RawProfilePlugin,
        plugin: &PluginInstance,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        let Some(scorer) = &plugin.roles.scorer else {
            if entry.weight.is_some() {
                warnings.push(format!(
                    "{path}.weight: '{}' is not a scorer; its weight is ignored",
                    plugin.name
                ));
            }
            return Ok(());
        };
        let weight = entry.weight.unwrap_or(1.0);
        check_weight(path, plugin, weight, warnings)?;
        self.weight_sum += weight.abs();
        check_weight_sum(path, profile, self.weight_sum)?;
        self.scorers.push(WeightedScorer {
            scorer: named(plugin, Arc::clone(scorer)),
            weight,
        });
        Ok(())
    }

    /// Makes `plugin` the picker if it is one; a second picker is an error.
    fn set_picker(&mut self, path: &str, plugin: &PluginInstance) -> Result<(), ConfigError> {
        let Some(picker) = &plugin.roles.picker else {
            return Ok(());
        };
        if let Some(existing) = &self.picker {
            return Err(field(
                format!("{path}.pluginRef"),
                format!(
                    "failed to set '{}' as picker, already have a registered picker plugin '{}'",
                    plugin.name, existing.name
                ),
            ));
        }
        self.picker = Some(named(plugin, Arc::clone(picker)));
        Ok(())
    }

    /// The profile, which must have a picker; one without scorers is warned about.
    fn finish(
        self,
        i: usize,
        name: &str,
        warnings: &mut Vec<String>,
    ) -> Result<SchedulingProfile, ConfigError> {
        let Some(picker) = self.picker else {
            return Err(field(
                format!("schedulingProfiles[{i}]"),
                format!("profile '{name}' has no picker"),
            ));
        };
        if self.scorers.is_empty() {
            warnings.push(format!(
                "schedulingProfiles[{i}]: profile '{name}' has no scorer, so every candidate scores 0 and '{}' picks among them at random",
                picker.name
            ));
        }
        Ok(SchedulingProfile {
            name: Arc::from(name),
            filters: self.filters,
            scorers: self.scorers,
            picker,
        })
    }
}

fn check_weight(
    path: &str,
    plugin: &PluginInstance,
    weight: f64,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    if !weight.is_finite() {
        return Err(field(
            format!("{path}.weight"),
            format!("weight of '{}' must be a finite number", plugin.name),
        ));
    }
    if weight == 0.0 {
        warnings.push(format!(
            "{path}.weight: scorer '{}' has weight 0 and does nothing",
            plugin.name
        ));
    } else if weight < 0.0 {
        warnings.push(format!("{path}.weight: scorer '{}' has a negative weight and pushes traffic away from high scores", plugin.name));
    }
    Ok(())
}

/// Scores are in [0, 1], so a profile's total is at most the sum of its weights' sizes;
/// past f64's range every total would be infinite and the picker could not tell
/// endpoints apart.
fn check_weight_sum(path: &str, profile: &str, weight_sum: f64) -> Result<(), ConfigError> {
    if weight_sum.is_finite() {
        return Ok(());
    }
    Err(field(
        format!("{path}.weight"),
        format!(
            "the scorer weights of profile '{profile}' add up to more than {:e}, so weighted scores overflow; use smaller weights",
            f64::MAX
        ),
    ))
}

/// Exactly one profile handler, which must accept the profiles; pre-request hooks are
/// every plugin that has one, in file order.
fn build_scheduler(
    profiles: Vec<SchedulingProfile>,
    plugins: &[PluginInstance],
) -> Result<Scheduler, ConfigError> {
    let handlers: Vec<&PluginInstance> = plugins
        .iter()
        .filter(|p| p.roles.profile_handler.is_some())
        .collect();
    let handler = match handlers.as_slice() {
        [] => {
            return Err(field(
                "plugins".into(),
                format!(
                    "no profile handler was specified; with {} scheduling profiles a profile handler plugin is required",
                    profiles.len()
                ),
            ));
        }
        [one] => *one,
        [first, second, ..] => {
            return Err(field(
                "plugins".into(),
                format!(
                    "only one profile handler is allowed. Both {} and {} are profile handlers",
                    first.name, second.name
                ),
            ));
        }
    };
    let Some(handler_role) = handler.roles.profile_handler.clone() else {
        return Err(field(
            "plugins".into(),
            "no profile handler was specified".into(),
        ));
    };
    handler_role
        .validate_profiles(&profiles)
        .map_err(|message| {
            field(
                "schedulingProfiles".into(),
                format!("profile handler '{}' {message}", handler.name),
            )
        })?;
    let pre_request = plugins
        .iter()
        .filter_map(|p| p.roles.pre_request.clone().map(|r| named(p, r)))
        .collect();
    Ok(Scheduler::new(
        profiles,
        named(handler, handler_role),
        pre_request,
    ))
}

fn named<T: ?Sized>(plugin: &PluginInstance, role: Arc<T>) -> Named<T> {
    Named {
        name: Arc::clone(&plugin.name),
        type_name: plugin.type_name,
        plugin: role,
    }
}

fn field(path: String, message: String) -> ConfigError {
    ConfigError::Field { path, message }
}
