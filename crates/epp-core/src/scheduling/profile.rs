//! A scheduling profile: filters, weighted scorers and one picker, run in that order.

use std::sync::Arc;

use rand::RngCore;

use crate::datastore::Endpoint;
use crate::scheduling::observer::{CycleObserver, ExtensionPoint};
use crate::scheduling::{Candidate, CycleState, Filter, Picker, SchedulingRequest, Scorer};

/// A plugin as configured: its instance name, its type, and the role object.
pub struct Named<T: ?Sized> {
    pub name: Arc<str>,
    pub type_name: &'static str,
    pub plugin: Arc<T>,
}

impl<T: ?Sized> Clone for Named<T> {
    fn clone(&self) -> Self {
        Named {
            name: Arc::clone(&self.name),
            type_name: self.type_name,
            plugin: Arc::clone(&self.plugin),
        }
    }
}

impl<T: ?Sized> std::fmt::Debug for Named<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.type_name, self.name)
    }
}

/// A scorer with its weight from the profile (v1.0.1: an int, default 1).
#[derive(Clone, Debug)]
pub struct WeightedScorer {
    pub scorer: Named<dyn Scorer>,
    pub weight: f64,
}

/// One named profile of the `EndpointPickerConfig`.
#[derive(Clone, Debug)]
pub struct SchedulingProfile {
    pub name: Arc<str>,
    pub filters: Vec<Named<dyn Filter>>,
    pub scorers: Vec<WeightedScorer>,
    pub picker: Named<dyn Picker>,
}

impl SchedulingProfile {
    /// Runs filters, scorers and the picker over `candidates`.
    ///
    /// Returns the picked endpoints, best first, or `None` when the filters left nothing
    /// (v1.0.1: `no pods available for the given request`).
    pub fn run(
        &self,
        request: &SchedulingRequest<'_>,
        state: &mut CycleState,
        candidates: &[Candidate<'_>],
        rng: &mut dyn RngCore,
        observer: &mut dyn CycleObserver,
    ) -> Option<Vec<Arc<Endpoint>>> {
        if observer.traced() {
            observer.profile_started(&self.name, candidates);
        }
        let mut kept: Vec<Candidate<'_>> = candidates.to_vec();
        for filter in &self.filters {
            timed(observer, ExtensionPoint::Filter, filter, || {
                filter.plugin.filter(request, &mut kept)
            });
            if observer.traced() {
                observer.filtered(&filter.name, &kept);
            }
            if kept.is_empty() {
                return None;
            }
        }
        if kept.is_empty() {
            return None;
        }
        let totals = self.total_scores(request, state, &kept, observer);
        let mut picked = Vec::new();
        timed(observer, ExtensionPoint::Picker, &self.picker, || {
            self.picker.plugin.pick(&kept, &totals, rng, &mut picked)
        });
        if observer.traced() {
            observer.picked(&kept, &totals, &picked);
        }
        Some(picked.into_iter().map(|i| Arc::clone(kept[i])).collect())
    }

    /// `total(e) = Σ weight × clamp(score, 0, 1)`; non-finite scores count as 0.
    fn total_scores(
        &self,
        request: &SchedulingRequest<'_>,
        state: &mut CycleState,
        candidates: &[Candidate<'_>],
        observer: &mut dyn CycleObserver,
    ) -> Vec<f64> {
        let mut totals = vec![0.0; candidates.len()];
        let mut raw = vec![0.0; candidates.len()];
        for weighted in &self.scorers {
            raw.fill(0.0);
            timed(observer, ExtensionPoint::Scorer, &weighted.scorer, || {
                weighted
                    .scorer
                    .plugin
                    .score(request, state, candidates, &mut raw)
            });
            if observer.traced() {
                observer.scored(&weighted.scorer.name, weighted.weight, &raw);
            }
            for (total, score) in totals.iter_mut().zip(&raw) {
                *total += weighted.weight * clamp_score(*score);
            }
        }
        totals
    }
}

/// Runs `call`, reporting its duration for `plugin` when the observer wants timings.
pub(crate) fn timed<T: ?Sized, R>(
    observer: &mut dyn CycleObserver,
    point: ExtensionPoint,
    plugin: &Named<T>,
    call: impl FnOnce() -> R,
) -> R {
    if !observer.timed() {
        return call();
    }
    let started = std::time::Instant::now();
    let result = call();
    observer.plugin_time(point, plugin.type_name, &plugin.name, started.elapsed());
    result
}

/// v1.0.1 `enforceScoreRange`, plus: NaN and infinities become 0 instead of poisoning totals.
pub(crate) fn clamp_score(score: f64) -> f64 {
    if score.is_finite() {
        score.clamp(0.0, 1.0)
    } else {
        0.0
    }
}
