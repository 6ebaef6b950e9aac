//! `kv-cache-utilization-scorer`: prefers endpoints with free KV cache.

use std::sync::Arc;

use crate::scheduling::plugins::queue_scorer::comparable;
use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{Candidate, CycleState, NEUTRAL_SCORE, SchedulingRequest, Scorer};

pub const TYPE: &str = "kv-cache-utilization-scorer";

/// `score = 1 - kv_cache_usage`, as v1.0.1 `KVCacheUtilizationScorer` (the scheduler
/// clamps a usage above 1 to a score of 0). Candidates with stale metrics score 0.5
/// unless none is fresh (the stale-metrics rule,
/// [`SchedulingRequest::has_fresh_metrics`]). No parameters.
#[derive(Debug, Default)]
pub struct KvCacheUtilizationScorer;

pub fn factory(_: &mut PluginContext<'_>) -> Result<PluginRoles, PluginError> {
    Ok(PluginRoles::scorer(Arc::new(KvCacheUtilizationScorer)))
}

impl Scorer for KvCacheUtilizationScorer {
    fn score(
        &self,
        request: &SchedulingRequest<'_>,
        _: &mut CycleState,
        candidates: &[Candidate<'_>],
        scores: &mut [f64],
    ) {
        let compared = comparable(request, candidates);
        for (score, endpoint) in scores.iter_mut().zip(candidates) {
            *score = if compared(endpoint) {
                1.0 - endpoint.kv_cache_usage()
            } else {
                NEUTRAL_SCORE
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::fixtures::TestEndpoint;
    use crate::scheduling::plugins::testing::scores;

    #[test]
    fn formula_table() {
        let endpoints: Vec<_> = [0.0, 0.25, 1.0, 0.8]
            .iter()
            .enumerate()
            .map(|(i, kv)| {
                TestEndpoint::new(&format!("10.0.0.{}:8000", i + 1))
                    .kv(*kv)
                    .build()
            })
            .collect();
        let got = scores(&KvCacheUtilizationScorer, &endpoints, "m");
        let expected = [1.0, 0.75, 0.0, 0.2];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-12, "{got:?}");
        }
    }
}
