//! Scheduling: plugin traits, profiles, the scheduler and the in-tree plugins.
//!
//! Invariants:
//! - Plugins do no I/O and never block; they see endpoints and the request, never
//!   protocol types.
//! - A scorer writes one score in [0, 1] per candidate into a slice the scheduler owns;
//!   the scheduler clamps, replaces non-finite scores with 0, and applies weights.
//! - The candidate list and score buffers belong to the scheduler; plugins allocate
//!   nothing per candidate on the hot path.
//! - Load scorers score a candidate whose load signal is stale or was never valid as
//!   unknown ([`NEUTRAL_SCORE`]), never as idle: see [`SignalComparison`].
//! - Changes to scoring come with a benchmark (`benches/scheduling.rs`).
//! - Plugins read time only as [`SchedulingRequest::metrics_fresh_since`] and randomness
//!   only from the generator the picker is handed, so a seeded director on a manual clock
//!   replays its decisions.
//!
//! # Add a scorer
//!
//! 1. Create `plugins/<name>.rs` (here `running_requests_scorer.rs`) with the type name,
//!    the factory and the [`Scorer`]:
//!
//! ```
//! use std::sync::Arc;
//!
//! use epp_core::datastore::LoadSignal;
//! use epp_core::scheduling::registry::{PluginContext, PluginError, PluginRoles};
//! use epp_core::scheduling::{
//!     Candidate, CycleState, NEUTRAL_SCORE, SchedulingRequest, Scorer, SignalComparison,
//! };
//!
//! pub const TYPE: &str = "running-requests-scorer";
//!
//! /// Prefers endpoints running fewer requests: `1 / (1 + running)`. No parameters.
//! #[derive(Debug)]
//! pub struct RunningRequestsScorer;
//!
//! pub fn factory(_: &mut PluginContext<'_>) -> Result<PluginRoles, PluginError> {
//!     Ok(PluginRoles::scorer(Arc::new(RunningRequestsScorer)))
//! }
//!
//! impl Scorer for RunningRequestsScorer {
//!     fn score(
//!         &self,
//!         request: &SchedulingRequest<'_>,
//!         _: &mut CycleState,
//!         candidates: &[Candidate<'_>],
//!         scores: &mut [f64],
//!     ) {
//!         // The stale-metrics rule: an unknown load scores neutral, never as idle.
//!         let compared = SignalComparison::new(request, candidates, LoadSignal::Running);
//!         for (score, endpoint) in scores.iter_mut().zip(candidates) {
//!             *score = if compared.compares(endpoint) {
//!                 1.0 / (1.0 + endpoint.running_requests() as f64)
//!             } else {
//!                 NEUTRAL_SCORE
//!             };
//!         }
//!     }
//! }
//! ```
//!
//! 2. Add one line, `running_requests_scorer,`, to the `in_tree_plugins!` list in
//!    `plugins/mod.rs`: it declares the module and registers the type in
//!    [`registry::IN_TREE`].
//!
//! Parameters, if any, are decoded with [`registry::PluginContext::parameters`]. The
//! registry-wide contract test (`plugins/contract.rs`) then holds the new type to the
//! rules above: it builds without parameters and scores finite values in [0, 1].

mod cycle_state;
pub mod observer;
pub mod plugins;
mod profile;
pub mod registry;
mod scheduler;

use std::sync::Arc;

use rand::RngCore;

use crate::datastore::{Endpoint, EndpointId, LoadSignal};
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
    /// The prompt's token ids, when fetched for a scorer that needs them.
    pub tokens: Option<&'a [u32]>,
    pub headers: &'a RequestHeaders,
    /// The cycle's start, on the datastore's clock ([`crate::time::Clock`]).
    pub now: std::time::Duration,
    /// Metrics updated at or after this reading of the datastore's clock
    /// ([`crate::time::Clock`]) are fresh: the cycle's start minus
    /// `--metrics-staleness-threshold`. Plugins read decision time from here, never from a
    /// clock of their own. See [`SignalComparison`].
    pub metrics_fresh_since: std::time::Duration,
}

impl SchedulingRequest<'_> {
    /// Whether any load signal of `endpoint` is fresh (its newest valid value is recent
    /// enough). The director reports a cycle without any such candidate as `stale_metrics`.
    pub fn has_fresh_metrics(&self, endpoint: &Endpoint) -> bool {
        endpoint
            .metrics_updated_at()
            .is_some_and(|at| at >= self.metrics_fresh_since)
    }

    /// Whether `endpoint`'s last valid value of `signal` is recent enough to compare with
    /// others'. A scrape that yields no valid value of a signal (absent from the page, NaN,
    /// negative or infinite) does not refresh it; see [`SignalComparison`].
    pub fn has_fresh_signal(&self, endpoint: &Endpoint, signal: LoadSignal) -> bool {
        endpoint
            .signal_updated_at(signal)
            .is_some_and(|at| at >= self.metrics_fresh_since)
    }
}

/// The score a load scorer gives a candidate whose load it does not know (see
/// [`SignalComparison`]).
pub const NEUTRAL_SCORE: f64 = 0.5;

/// The stale-metrics rule of the load scorers, for the one signal a scorer reads (the
/// queue scorer the queue, the KV scorer the KV usage):
///
/// - When some candidates have a fresh value of the signal, only those are compared; a
///   candidate whose value is stale or was never valid scores [`NEUTRAL_SCORE`]: it is
///   neither chased for looking idle nor shunned.
/// - When none is fresh, the candidates with a last valid value are compared on it (as
///   v1.0.1, which ignores staleness), and the never-scraped ones score neutral: their
///   load is unknown, not zero. When no candidate ever had a value, all are neutral.
///
/// How compared candidates score is the scorer's formula; a relative one must not let a
/// single compared value outrank the unknown ones (see `queue_scorer::min_max_inverse`).
#[derive(Debug, Clone, Copy)]
pub struct SignalComparison {
    signal: LoadSignal,
    fresh_since: std::time::Duration,
    any_fresh: bool,
}

impl SignalComparison {
    /// The comparison of `signal` over this cycle's candidates.
    pub fn new(
        request: &SchedulingRequest<'_>,
        candidates: &[Candidate<'_>],
        signal: LoadSignal,
    ) -> Self {
        SignalComparison {
            signal,
            fresh_since: request.metrics_fresh_since,
            any_fresh: candidates
                .iter()
                .any(|e| request.has_fresh_signal(e, signal)),
        }
    }

    /// Whether `endpoint`'s value of the signal is compared; if not, it scores
    /// [`NEUTRAL_SCORE`].
    pub fn compares(&self, endpoint: &Endpoint) -> bool {
        endpoint
            .signal_updated_at(self.signal)
            .is_some_and(|at| !self.any_fresh || at >= self.fresh_since)
    }
}

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

/// A cycle-state entry that knows how much of the request's prompt each endpoint already
/// caches. The plugin that matches prefixes stores it with
/// [`CycleState::insert_prefix_match`]; the director reads it through
/// [`CycleState::prefix_match`] for the prefix-match metrics, without knowing the plugin.
pub trait PrefixMatchReport: Send + Sync {
    /// `(matched, total)` prompt bytes for `endpoint`.
    fn matched_bytes(&self, endpoint: EndpointId) -> (u64, u64);

    /// The prompt tokens this plugin predicts `endpoint` has cached, and where to report what
    /// the server then said (`usage.prompt_tokens_details.cached_tokens`). `None` when the
    /// plugin makes no token-level prediction.
    fn cache_prediction(&self, _endpoint: EndpointId) -> Option<CachePrediction> {
        None
    }
}

/// A predicted prompt-cache hit, kept with the decision until the response's usage arrives.
#[derive(Debug, Clone)]
pub struct CachePrediction {
    pub predicted_tokens: u64,
    pub index: std::sync::Arc<crate::prefix::PreciseIndex>,
}

impl CachePrediction {
    /// The server reported `cached` of `prompt` tokens as cache hits.
    pub fn observe(&self, cached: u64, prompt: u64) {
        self.index
            .record_observed(self.predicted_tokens, cached, prompt);
    }
}
