//! In-tree plugins, one per file. Each file holds the type, its parameters, the formula
//! (in the doc comment, with the upstream behaviour it mirrors) and a test table.

pub mod header_based_testing_filter;
pub mod inflight_load_scorer;
pub mod kv_cache_utilization_scorer;
pub mod lora_affinity_scorer;
pub mod max_score_picker;
pub mod prefix_cache_scorer;
pub mod queue_scorer;
pub mod random_picker;
pub mod single_profile_handler;
pub mod weighted_random_picker;

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
