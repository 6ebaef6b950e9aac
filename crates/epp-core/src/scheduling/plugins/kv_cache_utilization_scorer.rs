//! `kv-cache-utilization-scorer`: prefers endpoints with free KV cache.

use std::sync::Arc;

use crate::datastore::LoadSignal;
use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{
    Candidate, CycleState, NEUTRAL_SCORE, SchedulingRequest, Scorer, SignalComparison,
};

pub const TYPE: &str = "kv-cache-utilization-scorer";

/// `score = 1 - kv_cache_usage`, as v1.0.1 `KVCacheUtilizationScorer` (the scheduler
/// clamps a usage above 1 to a score of 0). Candidates whose KV usage is stale or unknown
/// score 0.5 under the stale-metrics rule ([`SignalComparison`] on
/// [`LoadSignal::KvUsage`]). The formula is absolute, so a lone fresh endpoint scores by
/// its own usage: above 0.5 only when less than half full. No parameters.
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
        let compared = SignalComparison::new(request, candidates, LoadSignal::KvUsage);
        for (score, endpoint) in scores.iter_mut().zip(candidates) {
            *score = if compared.compares(endpoint) {
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
    use crate::scheduling::plugins::testing::{Age, aged, scores, scores_fresh_since};

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

    #[test]
    fn stale_metrics_table() {
        use Age::{Fresh, Never, Stale};
        // (what, (age, KV usage) per endpoint, expected scores)
        type Case = (&'static str, Vec<(Age, f64)>, Vec<f64>);
        let cases: Vec<Case> = vec![
            (
                "a lone fresh full endpoint scores below unknown ones",
                vec![(Stale, 0.0), (Fresh, 0.95), (Never, 0.0)],
                vec![0.5, 0.05, 0.5],
            ),
            (
                "a lone fresh empty one above",
                vec![(Stale, 0.9), (Fresh, 0.1)],
                vec![0.5, 0.9],
            ),
            (
                "none fresh: last known values, never-scraped neutral",
                vec![(Stale, 0.25), (Never, 0.0)],
                vec![0.75, 0.5],
            ),
        ];
        for (what, ages, expected) in cases {
            let endpoints = ages
                .iter()
                .enumerate()
                .map(|(i, &(age, kv))| {
                    let e = TestEndpoint::new(&format!("10.0.0.{}:8000", i + 1));
                    (age, e.queue(1).kv(kv))
                })
                .collect();
            let (endpoints, fresh_since) = aged(endpoints);
            let got = scores_fresh_since(&KvCacheUtilizationScorer, &endpoints, "m", fresh_since);
            for (g, e) in got.iter().zip(&expected) {
                assert!((g - e).abs() < 1e-12, "{what}: {got:?}");
            }
        }
    }
}
