//! Scheduling: plugin traits, profiles, the scheduler and the in-tree plugins.
//!
//! Invariants:
//! - Plugins do no I/O and never block; they see endpoints and the request, never
//!   protocol types.
//! - A scorer writes one score in [0, 1] per candidate into a slice the scheduler owns;
//!   the scheduler clamps, replaces non-finite scores with 0, and applies weights.
//! - The candidate list and score buffers belong to the scheduler; plugins allocate
//!   nothing per candidate on the hot path.
//! - Changes to scoring come with a benchmark (`benches/scheduling.rs`).

mod cycle_state;
pub mod observer;
pub mod plugins;
mod profile;
pub mod registry;
mod scheduler;

use std::sync::Arc;

use rand::RngCore;

use crate::datastore::Endpoint;
use crate::request::RequestHeaders;

pub use cycle_state::CycleState;
pub use observer::{CycleObserver, DecisionTrace, ExtensionPoint, NoObserver};
pub use profile::{Named, SchedulingProfile, WeightedScorer};
pub use scheduler::{ProfileRun, Scheduler, SchedulingError, SchedulingResult};

/// A candidate endpoint for one scheduling cycle, borrowed from the datastore snapshot.
pub type Candidate<'s> = &'s Arc<Endpoint>;

/// The request as plugins see it.
#[derive(Debug, Clone, Copy)]
pub struct SchedulingRequest<'a> {
    /// `x-request-id` (received or generated).
    pub request_id: &'a str,
    /// The model after rewrite: what the model server will run.
    pub target_model: &'a str,
    /// Text for prefix matching; `None` when the request has no prompt.
    pub prompt: Option<&'a str>,
    pub headers: &'a RequestHeaders,
    /// Metrics updated at or after this instant of the process clock
    /// ([`crate::datastore::clock::now`]) are fresh: the cycle's start minus
    /// `--metrics-staleness-threshold`. See [`SchedulingRequest::has_fresh_metrics`].
    pub metrics_fresh_since: std::time::Duration,
}

impl SchedulingRequest<'_> {
    /// Whether `endpoint`'s scraped metrics are recent enough to compare with others'.
    ///
    /// The stale-metrics rule of the load scorers: when some candidates have fresh
    /// metrics, a candidate whose metrics are stale or were never scraped scores a
    /// neutral 0.5 (it is neither chased for looking idle nor shunned); when no candidate
    /// is fresh, every candidate is scored from its last known values, as v1.0.1 does.
    pub fn has_fresh_metrics(&self, endpoint: &Endpoint) -> bool {
        endpoint
            .metrics_updated_at()
            .is_some_and(|at| at >= self.metrics_fresh_since)
    }
}

/// The score a load scorer gives a candidate whose metrics are stale (see
/// [`SchedulingRequest::has_fresh_metrics`]).
pub const NEUTRAL_SCORE: f64 = 0.5;

/// Keeps some candidates. May reorder them.
pub trait Filter: Send + Sync {
    fn filter(&self, request: &SchedulingRequest<'_>, candidates: &mut Vec<Candidate<'_>>);
}

/// Scores candidates: `scores[i]` (pre-set to 0) gets the score of `candidates[i]`, in [0, 1].
pub trait Scorer: Send + Sync {
    fn score(
        &self,
        request: &SchedulingRequest<'_>,
        state: &mut CycleState,
        candidates: &[Candidate<'_>],
        scores: &mut [f64],
    );
}

/// Chooses endpoints by their total weighted score.
pub trait Picker: Send + Sync {
    /// Pushes indices into `candidates`, best first, at most the picker's configured count.
    /// `candidates` is never empty.
    fn pick(
        &self,
        candidates: &[Candidate<'_>],
        scores: &[f64],
        rng: &mut dyn RngCore,
        picked: &mut Vec<usize>,
    );
}

/// Decides which profiles run, and which result is primary.
pub trait ProfileHandler: Send + Sync {
    /// Indices of `profiles` to run next, given the runs so far; empty ends the cycle.
    fn pick_profiles(&self, profiles: &[SchedulingProfile], runs: &[ProfileRun]) -> Vec<usize>;

    /// Turns the runs into the result; a failed primary run is an error.
    fn process_results(&self, runs: Vec<ProfileRun>) -> Result<SchedulingResult, SchedulingError>;

    /// Checks that this handler can work with these profiles (at config load).
    fn validate_profiles(&self, profiles: &[SchedulingProfile]) -> Result<(), String>;
}

/// Runs after a successful pick, before the request is forwarded (e.g. the prefix indexer).
pub trait PreRequest: Send + Sync {
    fn pre_request(
        &self,
        request: &SchedulingRequest<'_>,
        result: &SchedulingResult,
        state: &CycleState,
    );
}

/// What the response told us, for plugins that learn from responses.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInfo<'a> {
    pub request_id: &'a str,
    /// The endpoint that served the request (the primary pick).
    pub endpoint: &'a Endpoint,
    /// Prompt tokens reported by the server's `usage`, if any.
    pub prompt_tokens: Option<u64>,
    /// Completion tokens reported by the server's `usage`, if any.
    pub completion_tokens: Option<u64>,
}

/// Runs when a response completes.
pub trait PostResponse: Send + Sync {
    fn post_response(&self, response: &ResponseInfo<'_>);
}
