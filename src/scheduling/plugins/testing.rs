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
        headers,
        metrics_fresh_since: std::time::Duration::ZERO,
    }
}

pub(crate) fn candidates(endpoints: &[Arc<Endpoint>]) -> Vec<Candidate<'_>> {
    endpoints.iter().collect()
}

/// Runs `scorer` over `endpoints` for `model` and returns the raw scores.
pub(crate) fn scores(scorer: &dyn Scorer, endpoints: &[Arc<Endpoint>], model: &str) -> Vec<f64> {
    let headers = RequestHeaders::new();
    let req = request(&headers, model);
    let mut out = vec![0.0; endpoints.len()];
    scorer.score(
        &req,
        &mut CycleState::new(),
        &candidates(endpoints),
        &mut out,
    );
    out
}
