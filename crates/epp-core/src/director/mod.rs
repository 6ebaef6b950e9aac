//! The director: admission, candidates, scheduling, in-flight accounting.
//!
//! It sees parsed requests and returns endpoints; it knows nothing of ext_proc messages,
//! and no plugin by name or type: it talks to plugins through the scheduler and the
//! cycle state. Time comes from the datastore's clock, randomness from the calling
//! thread's generator or, for replays, a seeded one ([`Director::with_seed`]).

mod admission;
mod randomness;
pub mod records;
mod subset;
mod timing;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::IndexedRandom;

use crate::datastore::{Datastore, Endpoint, EndpointSet, InFlightGuard};
use crate::request::RequestHeaders;
use crate::scheduling::{
    Candidate, CycleObserver, CycleState, DecisionTrace, NoObserver, Scheduler, SchedulingError,
    SchedulingRequest, SchedulingResult,
};
use crate::telemetry::metrics::EppMetrics;

use randomness::Randomness;
use records::{DecisionRecord, DecisionRecorder};

pub use admission::{SaturationThresholds, is_saturated};
pub use subset::{MAX_SUBSET_ENTRIES, filter_by_subset};

/// A request ready for routing.
#[derive(Debug, Clone, Copy)]
pub struct RoutingRequest<'a> {
    pub request_id: &'a str,
    /// The model the client asked for.
    pub model: &'a str,
    /// The model after the rewrite header: what the server will run.
    pub target_model: &'a str,
    /// Text for prefix matching; `None` for bodies without a prompt.
    pub prompt: Option<&'a str>,
    /// The prompt's token ids, when a scorer asked for them and they could be had in time
    /// (see [`crate::tokens`]).
    pub tokens: Option<&'a [u32]>,
    pub headers: &'a RequestHeaders,
    /// The InferenceObjective named by `x-gateway-inference-objective`.
    pub objective: Option<&'a str>,
    /// Endpoints the gateway allows (`ip` or `ip:port`); `None` when it sent no hint.
    pub subset: Option<&'a [String]>,
    /// Routed at headers time, before (and without) the body.
    pub at_headers: bool,
    /// How long the request waited in flow control, when it did: it was admitted there,
    /// so it is not shed here, and the wait goes into its decision record.
    pub queued: Option<Duration>,
}

impl<'a> RoutingRequest<'a> {
    /// A request for `model` (no rewrite) with `prompt`, no objective, no subset hint,
    /// routed with its body: the common case, for tests, benches and simulators.
    pub fn new(
        request_id: &'a str,
        model: &'a str,
        prompt: Option<&'a str>,
        headers: &'a RequestHeaders,
    ) -> Self {
        RoutingRequest {
            request_id,
            model,
            target_model: model,
            prompt,
            tokens: None,
            headers,
            objective: None,
            subset: None,
            at_headers: false,
            queued: None,
        }
    }
}

/// Why a pick is made the way it is (bounded: usable as a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickReason {
    /// The scheduling profiles chose.
    Scheduled,
    /// Scheduled, but no candidate had fresh metrics: the scorers saw last-known values
    /// (degraded routing; scrapes are failing or slow).
    StaleMetrics,
    /// Scheduled at headers time without the body (STREAMED or NONE body modes): by load
    /// alone, without the prompt (a fallback; prefix affinity is lost).
    HeadersOnly,
    /// A request without a body: a random endpoint, as v1.0.1.
    RandomBodyless,
}

impl PickReason {
    pub const ALL: [PickReason; 4] = [
        PickReason::Scheduled,
        PickReason::StaleMetrics,
        PickReason::HeadersOnly,
        PickReason::RandomBodyless,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PickReason::Scheduled => "scheduled",
            PickReason::StaleMetrics => "stale_metrics",
            PickReason::HeadersOnly => "headers_only",
            PickReason::RandomBodyless => "random_bodyless",
        }
    }
}

/// The endpoints chosen for one request. Holding it keeps the primary endpoint's
/// in-flight count raised; drop it when the stream ends.
#[derive(Debug)]
pub struct Decision {
    /// Primary first, then fallbacks.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// `ip:port[,ip:port...]`: the header and metadata value.
    pub destination: String,
    pub reason: PickReason,
    /// What a precise prefix scorer predicted the primary endpoint has cached.
    pub cache_prediction: Option<crate::scheduling::CachePrediction>,
    /// The profiles the cycle ran, in order, and which one chose the destination (empty
    /// for a random bodyless pick). Moved from the cycle's result, not copied.
    pub profile_runs: Vec<crate::scheduling::ProfileRun>,
    pub primary_run: usize,
    in_flight: InFlightGuard,
}

impl Decision {
    fn new(
        endpoints: Vec<Arc<Endpoint>>,
        reason: PickReason,
        prompt_tokens: u64,
    ) -> Option<Decision> {
        let primary = endpoints.first()?;
        let in_flight = primary.start_request_with_tokens(prompt_tokens);
        let destination = endpoints
            .iter()
            .map(|e| e.address_text())
            .collect::<Vec<_>>()
            .join(",");
        Some(Decision {
            endpoints,
            destination,
            reason,
            cache_prediction: None,
            profile_runs: Vec::new(),
            primary_run: 0,
            in_flight,
        })
    }

    /// The name of the profile that chose the destination, when profiles ran.
    pub fn primary_profile(&self) -> Option<&str> {
        self.profile_runs
            .get(self.primary_run)
            .map(|run| &*run.profile_name)
    }

    /// The endpoint the gateway will use first.
    pub fn primary(&self) -> &Arc<Endpoint> {
        self.in_flight.endpoint()
    }
}

/// The request's prompt tokens for in-flight accounting: the token ids when a token source
/// gave them, else about four bytes of prompt per token.
fn prompt_tokens(request: &RoutingRequest<'_>) -> u64 {
    match (request.tokens, request.prompt) {
        (Some(tokens), _) => tokens.len() as u64,
        (None, Some(prompt)) => prompt.len().div_ceil(4) as u64,
        (None, None) => 0,
    }
}

/// Why no endpoint was chosen. The ext_proc layer maps each to what the client gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    /// The pool has not been loaded yet. A gRPC error: the gateway's failure mode applies.
    #[error("InferencePool is not ready yet")]
    PoolNotSynced,
    /// A bodyless request and no endpoint at all. 500.
    #[error("no pods available in datastore")]
    NoEndpoints,
    /// No endpoint, or none in the gateway's subset. 503.
    #[error("failed to find candidate pods for serving the request")]
    NoCandidates,
    /// A sheddable request while the pool is saturated. 429.
    #[error("system saturated, sheddable request dropped")]
    Shed,
    /// The scheduler failed: filters removed every endpoint, or the profile handler
    /// rejected the runs. 429, as v1.0.1 answers every scheduler error.
    #[error("failed to find target pod: {0}")]
    Scheduling(SchedulingError),
    /// The scheduler returned an empty result. 500.
    #[error("results must be greater than zero")]
    EmptyResult,
}

/// The director's knobs, from flags and environment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirectorSettings {
    /// When sheddable requests are dropped.
    pub saturation: SaturationThresholds,
    /// Scraped metrics older than this are stale to the scorers
    /// (`--metrics-staleness-threshold`, 2s).
    pub metrics_staleness: std::time::Duration,
}

impl Default for DirectorSettings {
    fn default() -> Self {
        DirectorSettings {
            saturation: SaturationThresholds::default(),
            metrics_staleness: std::time::Duration::from_secs(2),
        }
    }
}

/// Routes requests over the datastore's endpoints with the configured scheduler.
pub struct Director {
    datastore: Arc<Datastore>,
    scheduler: Arc<Scheduler>,
    settings: DirectorSettings,
    records: Option<DecisionRecorder>,
    metrics: Option<Arc<EppMetrics>>,
    randomness: Randomness,
}

impl std::fmt::Debug for Director {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Director")
            .field("settings", &self.settings)
            .field("randomness", &self.randomness)
            .finish_non_exhaustive()
    }
}

impl Director {
    pub fn new(
        datastore: Arc<Datastore>,
        scheduler: Arc<Scheduler>,
        settings: DirectorSettings,
    ) -> Self {
        Director {
            datastore,
            scheduler,
            settings,
            records: None,
            metrics: None,
            randomness: Randomness::Thread,
        }
    }

    /// Draws every random choice (the pickers' and the bodyless pick) from one generator
    /// seeded with `seed`, so the same requests over the same pool and clock get the same
    /// decisions.
    ///
    /// Without a seed each worker thread draws from its own thread-local generator, so the
    /// request path takes no lock. A seeded director shares one generator behind a mutex:
    /// that mode is for tests and simulation, not traffic. (Passing a generator into
    /// [`Director::route`] instead would put a parameter on every caller for a need only
    /// tests and simulators have.)
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.randomness = Randomness::seeded(seed);
        self
    }

    pub fn datastore(&self) -> &Arc<Datastore> {
        &self.datastore
    }

    /// Sends a decision record for every request from now on.
    pub fn with_records(mut self, recorder: DecisionRecorder) -> Self {
        self.records = Some(recorder);
        self
    }

    /// Records scheduling latency, plugin timings, prefix matches and picks from now on.
    pub fn with_metrics(mut self, metrics: Arc<EppMetrics>) -> Self {
        metrics.declare_pick_reasons(&PickReason::ALL.map(PickReason::as_str));
        self.metrics = Some(metrics);
        self
    }

    /// Admits, schedules and reserves an endpoint for a request with a body
    /// (v1.0.1 `Director.HandleRequest`), recording the decision when records are on.
    pub fn route(&self, request: &RoutingRequest<'_>) -> Result<Decision, PickError> {
        let Some(recorder) = &self.records else {
            return self.route_observed(request, &self.datastore.snapshot(), &mut NoObserver);
        };
        let started = Instant::now();
        let snapshot = self.datastore.snapshot();
        let mut trace = DecisionTrace::default();
        let result = self.route_observed(request, &snapshot, &mut trace);
        let outcome = match &result {
            Ok(decision) => decision.reason.as_str().to_owned(),
            Err(e) => e.to_string(),
        };
        recorder.record(&DecisionRecord {
            request_id: request.request_id,
            model: request.model,
            target_model: request.target_model,
            objective: request.objective,
            subset: request.subset,
            pool_size: snapshot.len(),
            outcome: &outcome,
            destination: result.as_ref().ok().map(|d| d.destination.as_str()),
            decision_micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            queued_micros: request
                .queued
                .map(|q| u64::try_from(q.as_micros()).unwrap_or(u64::MAX)),
            profiles: &trace.profiles,
        });
        result
    }

    /// The routing steps: admit and gather candidates, schedule, reserve the primary
    /// endpoint, run the pre-request hooks, report. Time is read once, from the
    /// datastore's clock.
    fn route_observed(
        &self,
        request: &RoutingRequest<'_>,
        snapshot: &EndpointSet,
        observer: &mut dyn CycleObserver,
    ) -> Result<Decision, PickError> {
        let now = self.datastore.clock().now();
        let candidates = self.admitted_candidates(request, snapshot, now)?;
        let scheduling = SchedulingRequest {
            request_id: request.request_id,
            target_model: request.target_model,
            prompt: request.prompt,
            tokens: request.tokens,
            headers: request.headers,
            now,
            metrics_fresh_since: now.saturating_sub(self.settings.metrics_staleness),
        };
        let mut state = CycleState::new();
        let mut timed;
        let observer: &mut dyn CycleObserver = match &self.metrics {
            Some(metrics) => {
                timed = timing::MetricsObserver {
                    metrics,
                    inner: observer,
                };
                &mut timed
            }
            None => observer,
        };
        let result = self.schedule(&scheduling, &mut state, &candidates, observer)?;
        let reason = pick_reason(request, &scheduling, &candidates);
        let mut decision = Decision::new(
            result.primary_targets().to_vec(),
            reason,
            prompt_tokens(request),
        )
        .ok_or(PickError::EmptyResult)?;
        decision.cache_prediction = state
            .prefix_match()
            .and_then(|p| p.cache_prediction(decision.primary().id()));
        self.scheduler
            .run_pre_request(&scheduling, &result, &state, observer);
        decision.primary_run = result.primary;
        decision.profile_runs = result.runs;
        self.report_pick(&decision, &state);
        tracing::debug!(
            { "x-request-id" = request.request_id, endpoint = %decision.destination, candidates = candidates.len() },
            "request scheduled"
        );
        Ok(decision)
    }

    /// The endpoints a request may go to: the pool must be loaded, the request admitted,
    /// and the gateway's subset hint (if any) leave at least one endpoint.
    fn admitted_candidates<'s>(
        &self,
        request: &RoutingRequest<'_>,
        snapshot: &'s EndpointSet,
        now: Duration,
    ) -> Result<Vec<Candidate<'s>>, PickError> {
        if !self.datastore.pool_synced() {
            return Err(PickError::PoolNotSynced);
        }
        self.admit(request, snapshot, now)?;
        let candidates = match request.subset {
            Some(hint) => filter_by_subset(snapshot.endpoints(), hint),
            None => snapshot.endpoints().iter().collect(),
        };
        if candidates.is_empty() {
            return Err(PickError::NoCandidates);
        }
        Ok(candidates)
    }

    /// Runs the scheduler with the director's randomness, timing it when metrics are on.
    fn schedule(
        &self,
        scheduling: &SchedulingRequest<'_>,
        state: &mut CycleState,
        candidates: &[Candidate<'_>],
        observer: &mut dyn CycleObserver,
    ) -> Result<SchedulingResult, PickError> {
        let started = self.metrics.as_ref().map(|_| Instant::now());
        let result = self.randomness.with(|rng| {
            self.scheduler
                .schedule(scheduling, state, candidates, rng, observer)
        });
        if let (Some(metrics), Some(started)) = (&self.metrics, started) {
            metrics.scheduler_duration(started.elapsed().as_secs_f64());
        }
        result.map_err(PickError::Scheduling)
    }

    /// Counts the pick and, when a plugin reported one, the prompt's prefix match on the
    /// primary endpoint.
    fn report_pick(&self, decision: &Decision, state: &CycleState) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        if let Some(prefix) = state.prefix_match() {
            let (matched, total) = prefix.matched_bytes(decision.primary().id());
            metrics.prefix_match(matched, total);
        }
        metrics.pick(decision.reason.as_str());
    }

    /// A uniformly random endpoint for a request without a body (v1.0.1
    /// `GetRandomPod`), within the gateway's subset when it sent one.
    pub fn route_bodyless(&self, subset: Option<&[String]>) -> Result<Decision, PickError> {
        let snapshot = self.datastore.snapshot();
        if snapshot.is_empty() {
            return Err(PickError::NoEndpoints);
        }
        if !self.datastore.pool_synced() {
            return Err(PickError::PoolNotSynced);
        }
        let candidates = match subset {
            Some(hint) => filter_by_subset(snapshot.endpoints(), hint),
            None => snapshot.endpoints().iter().collect(),
        };
        let chosen = self
            .randomness
            .with(|rng| candidates.choose(rng).map(|&e| Arc::clone(e)))
            .ok_or(PickError::NoCandidates)?;
        let decision = Decision::new(vec![chosen], PickReason::RandomBodyless, 0)
            .ok_or(PickError::EmptyResult)?;
        if let Some(metrics) = &self.metrics {
            metrics.pick(decision.reason.as_str());
        }
        Ok(decision)
    }

    /// v1.0.1 `admitRequest`: priority >= 0 is always admitted; lower priorities are shed
    /// while the pool is saturated, unless flow control already admitted them.
    fn admit(
        &self,
        request: &RoutingRequest<'_>,
        snapshot: &EndpointSet,
        now: Duration,
    ) -> Result<(), PickError> {
        let priority = request
            .objective
            .and_then(|name| self.datastore.objective(name))
            .map_or(0, |o| o.priority);
        if priority < 0
            && request.queued.is_none()
            && is_saturated(snapshot, &self.settings.saturation, now)
        {
            return Err(PickError::Shed);
        }
        Ok(())
    }
}

/// Why a scheduled pick was made the way it was.
fn pick_reason(
    request: &RoutingRequest<'_>,
    scheduling: &SchedulingRequest<'_>,
    candidates: &[Candidate<'_>],
) -> PickReason {
    if request.at_headers {
        PickReason::HeadersOnly
    } else if candidates.iter().any(|e| scheduling.has_fresh_metrics(e)) {
        PickReason::Scheduled
    } else {
        PickReason::StaleMetrics
    }
}

#[cfg(test)]
mod replay_tests;
#[cfg(test)]
mod tests;
