//! `inflight-load-scorer` (this EPP's addition): prefers endpoints with fewer requests
//! in flight from this EPP, counted from the pick to the end of the stream.

use std::sync::Arc;

use crate::scheduling::plugins::queue_scorer::min_max_inverse;
use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{Candidate, CycleState, SchedulingRequest, Scorer};

pub const TYPE: &str = "inflight-load-scorer";

/// Min-max normalised in-flight count, like `queue-scorer` but over the counter the
/// director raises at pick time: `(max - f) / (max - min)`, 1.0 when all are equal.
///
/// Why: scraped metrics lag by up to one scrape interval, so every request of a burst
/// sees the same queue depths and the Go EPP sends the whole burst to one endpoint. The
/// in-flight counter moves with each pick, so a burst spreads. No parameters.
#[derive(Debug, Default)]
pub struct InFlightLoadScorer;

pub fn factory(_: &mut PluginContext<'_>) -> Result<PluginRoles, PluginError> {
    Ok(PluginRoles::scorer(Arc::new(InFlightLoadScorer)))
}

impl Scorer for InFlightLoadScorer {
    fn score(
        &self,
        _: &SchedulingRequest<'_>,
        _: &mut CycleState,
        candidates: &[Candidate<'_>],
        scores: &mut [f64],
    ) {
        min_max_inverse(candidates, scores, |e| u64::from(e.in_flight()), |_| true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::fixtures::TestEndpoint;
    use crate::scheduling::plugins::testing::scores;

    #[test]
    fn follows_in_flight_counts() {
        let endpoints: Vec<_> = (1..=3)
            .map(|i| TestEndpoint::new(&format!("10.0.0.{i}:8000")).build())
            .collect();
        assert_eq!(
            scores(&InFlightLoadScorer, &endpoints, "m"),
            [1.0, 1.0, 1.0]
        );
        let _a = endpoints[0].start_request();
        let _b = endpoints[0].start_request();
        let _c = endpoints[1].start_request();
        assert_eq!(
            scores(&InFlightLoadScorer, &endpoints, "m"),
            [0.0, 0.5, 1.0]
        );
        drop((_a, _b));
        assert_eq!(
            scores(&InFlightLoadScorer, &endpoints, "m"),
            [1.0, 0.0, 1.0]
        );
    }
}
