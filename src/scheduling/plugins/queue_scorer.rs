//! `queue-scorer`: prefers endpoints with fewer waiting requests.

use std::sync::Arc;

use crate::datastore::Endpoint;
use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{Candidate, CycleState, NEUTRAL_SCORE, SchedulingRequest, Scorer};

pub const TYPE: &str = "queue-scorer";

/// Min-max normalised waiting queue, as v1.0.1 `QueueScorer.Score`:
/// `score = (max - q) / (max - min)` over the candidates, and `1.0` for all when
/// `max == min`. Candidates with stale metrics follow the stale-metrics rule
/// ([`SchedulingRequest::has_fresh_metrics`]): they score 0.5 and do not count in min and
/// max, unless no candidate is fresh. No parameters.
#[derive(Debug, Default)]
pub struct QueueScorer;

pub fn factory(_: &mut PluginContext<'_>) -> Result<PluginRoles, PluginError> {
    Ok(PluginRoles::scorer(Arc::new(QueueScorer)))
}

impl Scorer for QueueScorer {
    fn score(
        &self,
        request: &SchedulingRequest<'_>,
        _: &mut CycleState,
        candidates: &[Candidate<'_>],
        scores: &mut [f64],
    ) {
        let compared = comparable(request, candidates);
        min_max_inverse(
            candidates,
            scores,
            |e| e.waiting_queue_size(),
            |e| compared(e),
        );
    }
}

/// Which candidates a load scorer compares: those with fresh metrics, or all of them
/// when none is fresh (the stale-metrics rule).
pub(crate) fn comparable<'r>(
    request: &'r SchedulingRequest<'_>,
    candidates: &[Candidate<'_>],
) -> impl Fn(&Endpoint) -> bool + 'r {
    let any_fresh = candidates.iter().any(|e| request.has_fresh_metrics(e));
    move |e| !any_fresh || request.has_fresh_metrics(e)
}

/// Writes `(max - v) / (max - min)` of `value` into `scores`, with min and max taken over
/// the candidates `compared` accepts (1.0 when they are all equal); the others get
/// [`NEUTRAL_SCORE`]. Shared by the load scorers.
pub(crate) fn min_max_inverse(
    candidates: &[Candidate<'_>],
    scores: &mut [f64],
    value: impl Fn(&Endpoint) -> u64,
    compared: impl Fn(&Endpoint) -> bool,
) {
    let (mut min, mut max) = (u64::MAX, 0u64);
    for endpoint in candidates.iter().filter(|e| compared(e)) {
        let v = value(endpoint);
        min = min.min(v);
        max = max.max(v);
    }
    for (score, endpoint) in scores.iter_mut().zip(candidates) {
        *score = if !compared(endpoint) {
            NEUTRAL_SCORE
        } else if max == min {
            1.0
        } else {
            (max - value(endpoint).min(max)) as f64 / (max - min) as f64
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::fixtures::TestEndpoint;
    use crate::scheduling::plugins::testing::scores;

    #[test]
    fn formula_table() {
        let cases: [(&[u64], &[f64]); 4] = [
            (&[0, 5, 10], &[1.0, 0.5, 0.0]),
            (&[3, 3, 3], &[1.0, 1.0, 1.0]),
            (&[7], &[1.0]),
            (&[2, 0], &[0.0, 1.0]),
        ];
        for (queues, expected) in cases {
            let endpoints: Vec<_> = queues
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    TestEndpoint::new(&format!("10.0.0.{}:8000", i + 1))
                        .queue(*q)
                        .build()
                })
                .collect();
            assert_eq!(
                scores(&QueueScorer, &endpoints, "m"),
                expected,
                "queues {queues:?}"
            );
        }
    }
}
