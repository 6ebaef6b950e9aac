//! `queue-scorer`: prefers endpoints with fewer waiting requests.

use std::sync::Arc;

use crate::datastore::{Endpoint, LoadSignal};
use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{
    Candidate, CycleState, NEUTRAL_SCORE, SchedulingRequest, Scorer, SignalComparison,
};

pub const TYPE: &str = "queue-scorer";

/// Min-max normalised waiting queue, as v1.0.1 `QueueScorer.Score`:
/// `score = (max - q) / (max - min)` over the compared candidates, and `1.0` for all when
/// every candidate is compared and `max == min`. No parameters.
///
/// Candidates whose queue is stale or unknown follow the stale-metrics rule
/// ([`SignalComparison`] on [`LoadSignal::Queue`]): they score 0.5 and do not count in
/// min and max. Min-max needs two distinct compared queues to say anything: when the
/// compared queues are all equal (for example a lone fresh endpoint) while others are
/// unknown, a compared queue of 0 scores 1.0 (an idle server is at least as good as any
/// unknown one) and any other scores 0.5, so a lone fresh but busy endpoint never takes
/// all the traffic from endpoints whose load is unknown.
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
        let compared = SignalComparison::new(request, candidates, LoadSignal::Queue);
        min_max_inverse(
            candidates,
            scores,
            |e| e.waiting_queue_size(),
            |e| compared.compares(e),
        );
    }
}

/// Writes `(max - v) / (max - min)` of `value` into `scores`, with min and max taken over
/// the candidates `compared` accepts; the others get [`NEUTRAL_SCORE`]. When the compared
/// values are all equal there is no scale: each scores 1.0 if every candidate is compared
/// (v1.0.1), else 1.0 for a value of 0 and [`NEUTRAL_SCORE`] otherwise. Shared by the
/// load scorers.
pub(crate) fn min_max_inverse(
    candidates: &[Candidate<'_>],
    scores: &mut [f64],
    value: impl Fn(&Endpoint) -> u64,
    compared: impl Fn(&Endpoint) -> bool,
) {
    let (mut min, mut max, mut count) = (u64::MAX, 0u64, 0usize);
    for endpoint in candidates.iter().filter(|e| compared(e)) {
        let v = value(endpoint);
        min = min.min(v);
        max = max.max(v);
        count += 1;
    }
    let all_compared = count == candidates.len();
    for (score, endpoint) in scores.iter_mut().zip(candidates) {
        *score = if !compared(endpoint) {
            NEUTRAL_SCORE
        } else if max != min {
            (max - value(endpoint).min(max)) as f64 / (max - min) as f64
        } else if all_compared || max == 0 {
            1.0
        } else {
            NEUTRAL_SCORE
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::fixtures::TestEndpoint;
    use crate::scheduling::plugins::testing::{Age, aged, scores, scores_fresh_since};

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

    #[test]
    fn stale_metrics_table() {
        use Age::{Fresh, Never, Stale};
        // (what, (age, queue) per endpoint, expected scores)
        type Case = (&'static str, Vec<(Age, u64)>, Vec<f64>);
        let cases: Vec<Case> = vec![
            (
                "a lone fresh busy endpoint is not preferred over unknown ones",
                vec![(Stale, 0), (Stale, 0), (Fresh, 50)],
                vec![0.5, 0.5, 0.5],
            ),
            (
                "a lone fresh idle endpoint is",
                vec![(Stale, 9), (Fresh, 0), (Never, 0)],
                vec![0.5, 1.0, 0.5],
            ),
            (
                "fresh endpoints with equal busy queues: no ranking among them",
                vec![(Fresh, 7), (Fresh, 7), (Stale, 0)],
                vec![0.5, 0.5, 0.5],
            ),
            (
                "two distinct fresh queues are min-max scored",
                vec![(Fresh, 2), (Stale, 0), (Fresh, 10), (Fresh, 6)],
                vec![1.0, 0.5, 0.0, 0.5],
            ),
            (
                "all fresh and equal: 1.0 each, as v1.0.1",
                vec![(Fresh, 7), (Fresh, 7)],
                vec![1.0, 1.0],
            ),
            (
                "none fresh: last known values, never-scraped neutral",
                vec![(Stale, 4), (Stale, 0), (Never, 0)],
                vec![0.0, 1.0, 0.5],
            ),
            (
                "nothing known: all neutral",
                vec![(Never, 0), (Never, 0)],
                vec![0.5, 0.5],
            ),
        ];
        for (what, ages, expected) in cases {
            let endpoints = ages
                .iter()
                .enumerate()
                .map(|(i, &(age, q))| {
                    let e = TestEndpoint::new(&format!("10.0.0.{}:8000", i + 1));
                    (age, e.queue(q).kv(0.1))
                })
                .collect();
            let (endpoints, fresh_since) = aged(endpoints);
            assert_eq!(
                scores_fresh_since(&QueueScorer, &endpoints, "m", fresh_since),
                expected,
                "{what}"
            );
        }
    }
}
