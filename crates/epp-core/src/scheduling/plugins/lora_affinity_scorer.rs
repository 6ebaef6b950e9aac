//! `lora-affinity-scorer`: prefers endpoints that already have the request's adapter.

use std::sync::Arc;

use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{Candidate, CycleState, SchedulingRequest, Scorer};

pub const TYPE: &str = "lora-affinity-scorer";

/// v1.0.1 `LoraAffinityScorer`, for the target model `t`:
/// `1.0` if `t` is active; else `0.8` if `|active| + |waiting| < max_lora` (room to load
/// it); else `0.6` if `t` is waiting; else `0`. No parameters.
#[derive(Debug, Default)]
pub struct LoraAffinityScorer;

pub fn factory(_: &mut PluginContext<'_>) -> Result<PluginRoles, PluginError> {
    Ok(PluginRoles::scorer(Arc::new(LoraAffinityScorer)))
}

impl Scorer for LoraAffinityScorer {
    fn score(
        &self,
        request: &SchedulingRequest<'_>,
        _: &mut CycleState,
        candidates: &[Candidate<'_>],
        scores: &mut [f64],
    ) {
        let target = request.target_model;
        for (score, endpoint) in scores.iter_mut().zip(candidates) {
            let lora = endpoint.lora();
            let loaded = lora.active.len() + lora.waiting.len();
            *score = if lora.is_active(target) {
                1.0
            } else if loaded < lora.max_active as usize {
                0.8
            } else if lora.is_waiting(target) {
                0.6
            } else {
                0.0
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
        let e = |active: &[&str], waiting: &[&str], max: u32| {
            TestEndpoint::new("10.0.0.1:8000")
                .lora(active, waiting, max)
                .build()
        };
        let cases = [
            (e(&["t", "x"], &[], 2), 1.0),
            (e(&["x"], &[], 2), 0.8),
            (e(&["x"], &["t"], 2), 0.6),
            (e(&["x"], &["y"], 2), 0.0),
            (e(&[], &[], 0), 0.0),
            (e(&["x"], &["t"], 3), 0.8),
        ];
        for (i, (endpoint, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                scores(&LoraAffinityScorer, &[endpoint], "t"),
                [expected],
                "case {i}"
            );
        }
    }
}
