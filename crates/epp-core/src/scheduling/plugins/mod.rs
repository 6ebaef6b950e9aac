//! In-tree plugins, one per file. Each file holds the type, its parameters, the formula
//! (in the doc comment, with the upstream behaviour it mirrors) and a test table.

/// Declares each listed module (a file of this directory with a `TYPE` and a `factory`) and
/// registers it, so a new plugin is its file plus one line in the list below.
macro_rules! in_tree_plugins {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every in-tree plugin type, in registry order (see `registry::IN_TREE`).
        pub(crate) const IN_TREE: &[(&str, crate::scheduling::registry::Factory)] =
            &[$(($module::TYPE, $module::factory)),*];
    };
}

// v1.0.1's plugins, then this EPP's additions.
in_tree_plugins! {
    queue_scorer,
    kv_cache_utilization_scorer,
    lora_affinity_scorer,
    prefix_cache_scorer,
    max_score_picker,
    random_picker,
    weighted_random_picker,
    single_profile_handler,
    header_based_testing_filter,
    inflight_load_scorer,
    precise_prefix_cache_scorer,
}

#[cfg(test)]
mod contract;
#[cfg(test)]
pub(crate) mod testing;

use serde::Deserialize;

use crate::scheduling::registry::{PluginContext, PluginError};

/// Parameters shared by the pickers (v1.0.1 `pickerParameters`).
#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PickerParameters {
    /// How many endpoints to return, best first; the rest are fallbacks. `<= 0` means 1.
    max_num_of_endpoints: i64,
}

impl Default for PickerParameters {
    fn default() -> Self {
        PickerParameters {
            max_num_of_endpoints: 1,
        }
    }
}

/// Decodes `maxNumOfEndpoints`, falling back to 1 (with a warning) as v1.0.1 does for `<= 0`.
fn max_num_of_endpoints(ctx: &mut PluginContext<'_>) -> Result<usize, PluginError> {
    let params: PickerParameters = ctx.parameters()?;
    if params.max_num_of_endpoints <= 0 {
        ctx.warn(format!(
            "maxNumOfEndpoints {} is not positive; using 1",
            params.max_num_of_endpoints
        ));
        return Ok(1);
    }
    Ok(usize::try_from(params.max_num_of_endpoints).unwrap_or(usize::MAX))
}
