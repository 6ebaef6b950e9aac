//! Shared helpers for plugin tests.

use std::sync::Arc;

use crate::datastore::Endpoint;
use crate::request::RequestHeaders;
use crate::scheduling::{Candidate, CycleState, SchedulingRequest, Scorer};

pub(crate) fn request<'a>(headers: &'a RequestHeaders, model: &'a str) -> SchedulingRequest<'a> {
    SchedulingRequest {
        request_id: "test-request",
        target_model: model,
        prompt: None,
        tokens: None,
        headers,
        now: std::time::Duration::ZERO,
        metrics_fresh_since: std::time::Duration::ZERO,
    }
}

pub(crate) fn candidates(endpoints: &[Arc<Endpoint>]) -> Vec<Candidate<'_>> {
    endpoints.iter().collect()
}

/// Runs `scorer` over `endpoints` for `model` and returns the raw scores.
pub(crate) fn scores(scorer: &dyn Scorer, endpoints: &[Arc<Endpoint>], model: &str) -> Vec<f64> {
    scores_fresh_since(scorer, endpoints, model, std::time::Duration::ZERO)
}

/// As [`scores`], with metrics stamped before `fresh_since` (on the endpoints' clock) stale.
pub(crate) fn scores_fresh_since(
    scorer: &dyn Scorer,
    endpoints: &[Arc<Endpoint>],
    model: &str,
    fresh_since: std::time::Duration,
) -> Vec<f64> {
    let headers = RequestHeaders::new();
    let mut req = request(&headers, model);
    req.metrics_fresh_since = fresh_since;
    let mut out = vec![0.0; endpoints.len()];
    scorer.score(
        &req,
        &mut CycleState::new(),
        &candidates(endpoints),
        &mut out,
    );
    out
}

/// How fresh a test endpoint's metrics are, for the stale-metrics rule.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Age {
    /// Scraped just now.
    Fresh,
    /// Scraped long before the staleness threshold.
    Stale,
    /// Never scraped.
    Never,
}

/// Builds endpoints of these ages on a manual clock (stale ones first, then the clock
/// moves 10 s, then the fresh ones) and returns them with the cycle's
/// `metrics_fresh_since` (threshold 2 s).
pub(crate) fn aged(
    endpoints: Vec<(Age, crate::datastore::fixtures::TestEndpoint)>,
) -> (Vec<Arc<Endpoint>>, std::time::Duration) {
    use crate::datastore::fixtures::TestEndpoint;
    use crate::time::{Clock, ManualClock};
    let clock = Arc::new(ManualClock::new());
    let build = |e: TestEndpoint| e.build_with_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let mut built: Vec<Option<Arc<Endpoint>>> = vec![None; endpoints.len()];
    for (slot, (age, e)) in built.iter_mut().zip(&endpoints) {
        match age {
            Age::Stale => *slot = Some(build(e.clone())),
            // The same address without any metrics.
            Age::Never => *slot = Some(build(TestEndpoint::new(&e.spec().address.to_string()))),
            Age::Fresh => {}
        }
    }
    clock.advance(std::time::Duration::from_secs(10));
    for (slot, (age, e)) in built.iter_mut().zip(&endpoints) {
        if let Age::Fresh = age {
            *slot = Some(build(e.clone()));
        }
    }
    let fresh_since = clock
        .now()
        .saturating_sub(std::time::Duration::from_secs(2));
    (built.into_iter().flatten().collect(), fresh_since)
}
