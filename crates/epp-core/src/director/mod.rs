//! The director: admission, candidates, scheduling, in-flight accounting, response hooks.
//!
//! It sees parsed requests and returns endpoints; it knows nothing of ext_proc messages.

mod admission;
pub mod records;
mod subset;
mod timing;

use std::sync::Arc;
use std::time::Instant;

use rand::seq::IndexedRandom;

use crate::datastore::{Datastore, Endpoint, InFlightGuard};
use crate::request::RequestHeaders;
use crate::scheduling::plugins::prefix_cache_scorer::PrefixMatch;
use crate::scheduling::{
    CycleObserver, CycleState, DecisionTrace, NoObserver, ResponseInfo, Scheduler, SchedulingError,
    SchedulingRequest,
};
use crate::telemetry::metrics::EppMetrics;

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
    pub headers: &'a RequestHeaders,
    /// The InferenceObjective named by `x-gateway-inference-objective`.
    pub objective: Option<&'a str>,
    /// Endpoints the gateway allows (`ip` or `ip:port`); `None` when it sent no hint.
    pub subset: Option<&'a [String]>,
    /// Routed at headers time, before (and without) the body.
    pub at_headers: bool,
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
    in_flight: InFlightGuard,
}

impl Decision {
    fn new(endpoints: Vec<Arc<Endpoint>>, reason: PickReason) -> Option<Decision> {
        let primary = endpoints.first()?;
        let in_flight = primary.start_request();
        let destination = endpoints
            .iter()
            .map(|e| e.address_text())
            .collect::<Vec<_>>()
            .join(",");
        Some(Decision {
            endpoints,
            destination,
            reason,
            in_flight,
        })
    }

    /// The endpoint the gateway will use first.
    pub fn primary(&self) -> &Arc<Endpoint> {
        self.in_flight.endpoint()
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
}

impl std::fmt::Debug for Director {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Director")
            .field("settings", &self.settings)
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
        }
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
            profiles: &trace.profiles,
        });
        result
    }

    fn route_observed(
        &self,
        request: &RoutingRequest<'_>,
        snapshot: &crate::datastore::EndpointSet,
        observer: &mut dyn CycleObserver,
    ) -> Result<Decision, PickError> {
        if !self.datastore.pool_synced() {
            return Err(PickError::PoolNotSynced);
        }
        self.admit(request, snapshot)?;
        let candidates = match request.subset {
            Some(hint) => filter_by_subset(snapshot.endpoints(), hint),
            None => snapshot.endpoints().iter().collect(),
        };
        if candidates.is_empty() {
            return Err(PickError::NoCandidates);
        }
        let scheduling = SchedulingRequest {
            request_id: request.request_id,
            target_model: request.target_model,
            prompt: request.prompt,
            headers: request.headers,
            metrics_fresh_since: crate::datastore::clock::now()
                .saturating_sub(self.settings.metrics_staleness),
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
        let started = self.metrics.as_ref().map(|_| Instant::now());
        let result = self
            .scheduler
            .schedule(
                &scheduling,
                &mut state,
                &candidates,
                &mut rand::rng(),
                observer,
            )
            .map_err(PickError::Scheduling);
        if let (Some(metrics), Some(started)) = (&self.metrics, started) {
            metrics.scheduler_duration(started.elapsed().as_secs_f64());
        }
        let result = result?;
        let reason = if request.at_headers {
            PickReason::HeadersOnly
        } else if candidates.iter().any(|e| scheduling.has_fresh_metrics(e)) {
            PickReason::Scheduled
        } else {
            PickReason::StaleMetrics
        };
        let decision = Decision::new(result.primary_targets().to_vec(), reason)
            .ok_or(PickError::EmptyResult)?;
        self.scheduler
            .run_pre_request(&scheduling, &result, &state, observer);
        if let Some(metrics) = &self.metrics {
            if let Some(prefix) = state.find::<PrefixMatch>() {
                let (matched, total) = prefix.bytes_for(decision.primary().id());
                metrics.prefix_match(matched, total);
            }
            metrics.pick(decision.reason.as_str());
        }
        tracing::debug!(
            { "x-request-id" = request.request_id, endpoint = %decision.destination, candidates = candidates.len() },
            "request scheduled"
        );
        Ok(decision)
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
        let chosen = candidates
            .choose(&mut rand::rng())
            .ok_or(PickError::NoCandidates)?;
        let decision = Decision::new(vec![Arc::clone(chosen)], PickReason::RandomBodyless)
            .ok_or(PickError::EmptyResult)?;
        if let Some(metrics) = &self.metrics {
            metrics.pick(decision.reason.as_str());
        }
        Ok(decision)
    }

    /// Runs the post-response plugins once the response has ended.
    pub fn response_complete(&self, decision: &Decision, request_id: &str, usage: Option<Usage>) {
        let info = ResponseInfo {
            request_id,
            endpoint: decision.primary(),
            prompt_tokens: usage.map(|u| u.prompt_tokens),
            completion_tokens: usage.map(|u| u.completion_tokens),
        };
        self.scheduler.run_post_response(&info);
    }

    /// v1.0.1 `admitRequest`: priority >= 0 is always admitted; lower priorities are shed
    /// while the pool is saturated.
    fn admit(
        &self,
        request: &RoutingRequest<'_>,
        snapshot: &crate::datastore::EndpointSet,
    ) -> Result<(), PickError> {
        let priority = request
            .objective
            .and_then(|name| self.datastore.objective(name))
            .map_or(0, |o| o.priority);
        if priority < 0 && is_saturated(snapshot, &self.settings.saturation) {
            return Err(PickError::Shed);
        }
        Ok(())
    }
}

/// Token counts from a response's `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

#[cfg(test)]
mod tests;
