//! The scheduler: asks the profile handler which profiles to run, runs them, and
//! lets the handler turn the runs into a result.

use std::sync::Arc;

use rand::RngCore;

use crate::datastore::Endpoint;
use crate::scheduling::Named;
use crate::scheduling::observer::{CycleObserver, ExtensionPoint};
use crate::scheduling::profile::timed;
use crate::scheduling::{
    Candidate, CycleState, PreRequest, ProfileHandler, SchedulingProfile, SchedulingRequest,
};

/// The outcome of one profile run.
#[derive(Debug, Clone)]
pub struct ProfileRun {
    /// Index into the scheduler's profiles.
    pub profile: usize,
    pub profile_name: Arc<str>,
    /// Picked endpoints, best first; `None` when the profile found no candidate.
    pub targets: Option<Vec<Arc<Endpoint>>>,
}

/// All runs of a cycle and which one decides the destination.
#[derive(Debug, Clone)]
pub struct SchedulingResult {
    pub runs: Vec<ProfileRun>,
    /// Index into `runs` of the primary profile's run.
    pub primary: usize,
}

impl SchedulingResult {
    /// The primary profile's picks, best first (empty if it picked nothing).
    pub fn primary_targets(&self) -> &[Arc<Endpoint>] {
        self.runs
            .get(self.primary)
            .and_then(|run| run.targets.as_deref())
            .unwrap_or(&[])
    }

    pub fn primary_profile(&self) -> Option<&str> {
        self.runs.get(self.primary).map(|run| &*run.profile_name)
    }
}

/// Why scheduling produced no endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulingError {
    /// The primary profile found no candidate. Clients get 429 (v1.0.1).
    #[error("failed to run scheduler profile '{profile}'")]
    ProfileFailed { profile: Arc<str> },
    /// The handler rejected the runs. Clients get 429, as for every scheduler error in
    /// v1.0.1 (`InferencePoolResourceExhausted`); 500 is only for a result without
    /// endpoints (`PickError::EmptyResult`). `single-profile-handler` raises it only when
    /// a run count other than one reaches it, which config validation rules out.
    #[error("{0}")]
    Handler(String),
}

/// A ready-to-run scheduler built from an `EndpointPickerConfig`.
pub struct Scheduler {
    profiles: Vec<SchedulingProfile>,
    handler: Named<dyn ProfileHandler>,
    pre_request: Vec<Named<dyn PreRequest>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("profiles", &self.profiles)
            .field("handler", &self.handler)
            .field("pre_request", &self.pre_request)
            .finish()
    }
}

impl Scheduler {
    pub fn new(
        profiles: Vec<SchedulingProfile>,
        handler: Named<dyn ProfileHandler>,
        pre_request: Vec<Named<dyn PreRequest>>,
    ) -> Self {
        Scheduler {
            profiles,
            handler,
            pre_request,
        }
    }

    pub fn profiles(&self) -> &[SchedulingProfile] {
        &self.profiles
    }

    pub fn profile_handler(&self) -> &Named<dyn ProfileHandler> {
        &self.handler
    }

    pub fn pre_request_plugins(&self) -> &[Named<dyn PreRequest>] {
        &self.pre_request
    }

    /// Runs one scheduling cycle over `candidates` (never empty: the director checks).
    pub fn schedule(
        &self,
        request: &SchedulingRequest<'_>,
        state: &mut CycleState,
        candidates: &[Candidate<'_>],
        rng: &mut dyn RngCore,
        observer: &mut dyn CycleObserver,
    ) -> Result<SchedulingResult, SchedulingError> {
        let mut runs: Vec<ProfileRun> = Vec::with_capacity(self.profiles.len());
        // A handler that keeps asking would loop forever; each profile runs at most once.
        while runs.len() < self.profiles.len() {
            let next = timed(
                observer,
                ExtensionPoint::ProfilePicker,
                &self.handler,
                || self.handler.plugin.pick_profiles(&self.profiles, &runs),
            );
            let fresh: Vec<usize> = next
                .into_iter()
                .filter(|&i| i < self.profiles.len() && runs.iter().all(|r| r.profile != i))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for index in fresh {
                let profile = &self.profiles[index];
                let targets = profile.run(request, state, candidates, rng, observer);
                runs.push(ProfileRun {
                    profile: index,
                    profile_name: Arc::clone(&profile.name),
                    targets,
                });
            }
        }
        timed(
            observer,
            ExtensionPoint::ProcessProfilesResults,
            &self.handler,
            || self.handler.plugin.process_results(runs),
        )
    }

    /// Runs every pre-request plugin after a successful pick.
    pub fn run_pre_request(
        &self,
        request: &SchedulingRequest<'_>,
        result: &SchedulingResult,
        state: &CycleState,
        observer: &mut dyn CycleObserver,
    ) {
        for plugin in &self.pre_request {
            timed(observer, ExtensionPoint::PreRequest, plugin, || {
                plugin.plugin.pre_request(request, result, state)
            });
        }
    }
}
