//! What happens inside a scheduling cycle, reported to an observer: plugin timings for
//! metrics, and the candidates, filters, scores and pick for decision records.

use std::time::Duration;

use serde::Serialize;

use crate::scheduling::Candidate;

/// Where in a cycle a plugin ran (the `extension_point` label of v1.0.1's
/// `inference_extension_plugin_duration_seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtensionPoint {
    ProfilePicker,
    Filter,
    Scorer,
    Picker,
    ProcessProfilesResults,
    PreRequest,
}

impl ExtensionPoint {
    pub fn as_str(self) -> &'static str {
        match self {
            ExtensionPoint::ProfilePicker => "ProfilePicker",
            ExtensionPoint::Filter => "Filter",
            ExtensionPoint::Scorer => "Scorer",
            ExtensionPoint::Picker => "Picker",
            ExtensionPoint::ProcessProfilesResults => "ProcessProfilesResults",
            ExtensionPoint::PreRequest => "PreRequest",
        }
    }
}

/// Receives a cycle's events. Every method defaults to doing nothing, and timings are
/// only taken when [`CycleObserver::timed`] says so, so a cycle nobody watches pays
/// nothing.
pub trait CycleObserver {
    /// Whether plugin durations are wanted (costs two clock reads per plugin).
    fn timed(&self) -> bool {
        false
    }
    fn plugin_time(
        &mut self,
        _point: ExtensionPoint,
        _type_name: &'static str,
        _name: &str,
        _elapsed: Duration,
    ) {
    }
    /// Whether the detailed trace (candidates, scores) is wanted.
    fn traced(&self) -> bool {
        false
    }
    fn profile_started(&mut self, _profile: &str, _candidates: &[Candidate<'_>]) {}
    fn filtered(&mut self, _filter: &str, _kept: &[Candidate<'_>]) {}
    fn scored(&mut self, _scorer: &str, _weight: f64, _raw: &[f64]) {}
    fn picked(&mut self, _candidates: &[Candidate<'_>], _totals: &[f64], _picked: &[usize]) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct NoObserver;

impl CycleObserver for NoObserver {}

/// The decision trace of one cycle: what a decision record shows.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct DecisionTrace {
    pub profiles: Vec<ProfileTrace>,
}

/// One profile's run.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct ProfileTrace {
    pub profile: String,
    /// Candidates entering the profile (`ip:port`).
    pub candidates: Vec<String>,
    /// Each filter and the endpoints it removed.
    pub filters: Vec<FilterTrace>,
    /// The candidates that reached the scorers, in the order of the scores below.
    pub scored: Vec<String>,
    pub scorers: Vec<ScorerTrace>,
    /// `Σ weight × clamp(score)` per scored candidate.
    pub totals: Vec<f64>,
    /// The picker's choice, best first.
    pub picked: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct FilterTrace {
    pub filter: String,
    pub removed: Vec<String>,
}

/// One scorer's raw scores (before clamping and weighting) per scored candidate.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct ScorerTrace {
    pub scorer: String,
    pub weight: f64,
    pub raw: Vec<f64>,
}

impl CycleObserver for DecisionTrace {
    fn traced(&self) -> bool {
        true
    }

    fn profile_started(&mut self, profile: &str, candidates: &[Candidate<'_>]) {
        self.profiles.push(ProfileTrace {
            profile: profile.to_owned(),
            candidates: addresses(candidates),
            ..Default::default()
        });
    }

    fn filtered(&mut self, filter: &str, kept: &[Candidate<'_>]) {
        let Some(profile) = self.profiles.last_mut() else {
            return;
        };
        let before = profile
            .filters
            .last()
            .map_or(&profile.candidates, |_| &profile.scored);
        let kept = addresses(kept);
        let removed = before
            .iter()
            .filter(|a| !kept.contains(a))
            .cloned()
            .collect();
        profile.filters.push(FilterTrace {
            filter: filter.to_owned(),
            removed,
        });
        profile.scored = kept;
    }

    fn scored(&mut self, scorer: &str, weight: f64, raw: &[f64]) {
        if let Some(profile) = self.profiles.last_mut() {
            profile.scorers.push(ScorerTrace {
                scorer: scorer.to_owned(),
                weight,
                raw: raw.to_vec(),
            });
        }
    }

    fn picked(&mut self, candidates: &[Candidate<'_>], totals: &[f64], picked: &[usize]) {
        if let Some(profile) = self.profiles.last_mut() {
            profile.scored = addresses(candidates);
            profile.totals = totals.to_vec();
            profile.picked = picked
                .iter()
                .filter_map(|&i| candidates.get(i))
                .map(|e| e.address_text().to_owned())
                .collect();
        }
    }
}

fn addresses(candidates: &[Candidate<'_>]) -> Vec<String> {
    candidates
        .iter()
        .map(|e| e.address_text().to_owned())
        .collect()
}
