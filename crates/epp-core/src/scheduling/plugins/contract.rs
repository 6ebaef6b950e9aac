//! The contract every registered plugin type keeps, checked over the whole registry so a
//! new plugin is held to it without writing a line: it builds from empty parameters, a
//! scorer's scores are finite and in [0, 1], a filter keeps a subset of its candidates,
//! and a picker picks distinct candidates.
//!
//! No in-tree plugin requires parameters, so every type is built from none (and from an
//! empty map). A future plugin that needs some would get its documented minimal
//! parameters listed here, with the reason.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::datastore::fixtures::TestEndpoint;
use crate::datastore::{Endpoint, EndpointId};
use crate::request::RequestHeaders;
use crate::scheduling::plugins::header_based_testing_filter::HEADER;
use crate::scheduling::registry::{IN_TREE, PluginContext, PluginRoles};
use crate::scheduling::{Candidate, CycleState, SchedulingRequest};
use crate::time::{Clock, ManualClock};

/// Every registered type's roles, built from the given parameters.
fn build_all(parameters: Option<&serde_json::Value>) -> Vec<(&'static str, PluginRoles)> {
    IN_TREE
        .iter()
        .map(|&(type_name, factory)| {
            let name: Arc<str> = Arc::from(type_name);
            let roles = factory(&mut PluginContext::new(&name, parameters))
                .unwrap_or_else(|e| panic!("{type_name} from {parameters:?}: {e}"));
            (type_name, roles)
        })
        .collect()
}

/// Four endpoints of varied load, LoRA and in-flight counts on a manual clock: the first
/// scraped 10 s before the others (stale at a 2 s threshold), the last never scraped.
/// Returns them with the cycle's `metrics_fresh_since`.
fn pool() -> (Vec<Arc<Endpoint>>, Duration) {
    let clock = Arc::new(ManualClock::new());
    let build = |e: TestEndpoint| e.build_with_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let stale = build(
        TestEndpoint::new("10.0.0.1:8000")
            .queue(0)
            .kv(0.05)
            .lora(&["a"], &[], 2),
    );
    clock.advance(Duration::from_secs(10));
    let busy = build(
        TestEndpoint::new("10.0.0.2:8000")
            .queue(12)
            .running(8)
            .kv(0.97)
            .lora(&["b"], &["a"], 2),
    );
    let light = build(
        TestEndpoint::new("10.0.0.3:8000")
            .queue(2)
            .running(1)
            .kv(0.4)
            .lora(&[], &[], 4),
    );
    let never = build(TestEndpoint::new("10.0.0.4:8000"));
    let fresh_since = clock.now().saturating_sub(Duration::from_secs(2));
    (vec![stale, busy, light, never], fresh_since)
}

fn request<'a>(
    headers: &'a RequestHeaders,
    prompt: &'a str,
    fresh_since: Duration,
) -> SchedulingRequest<'a> {
    SchedulingRequest {
        request_id: "contract",
        target_model: "a",
        prompt: Some(prompt),
        tokens: None,
        headers,
        now: std::time::Duration::ZERO,
        metrics_fresh_since: fresh_since,
    }
}

fn ids(candidates: &[Candidate<'_>]) -> Vec<EndpointId> {
    candidates.iter().map(|e| e.id()).collect()
}

#[test]
fn every_plugin_builds_from_empty_parameters() {
    let empty = serde_json::json!({});
    for parameters in [None, Some(&empty)] {
        for (type_name, roles) in build_all(parameters) {
            assert!(
                !roles.describe().is_empty(),
                "{type_name} plays no scheduling role"
            );
        }
    }
}

#[test]
fn every_scorer_scores_finite_values_in_the_unit_interval() {
    let (endpoints, fresh_since) = pool();
    let candidates: Vec<Candidate<'_>> = endpoints.iter().collect();
    let headers = RequestHeaders::new();
    let prompt = "a prompt long enough to fill a few prefix blocks. ".repeat(8);
    let mut scorers = 0;
    for (type_name, roles) in build_all(None) {
        let Some(scorer) = roles.scorer else {
            continue;
        };
        scorers += 1;
        // Twice: stateful scorers (the prefix index) score the second time from what the
        // first cycle taught them.
        for round in 0..2 {
            let request = request(&headers, &prompt, fresh_since);
            let mut state = CycleState::new();
            let mut scores = vec![0.0; candidates.len()];
            scorer.score(&request, &mut state, &candidates, &mut scores);
            assert!(
                scores
                    .iter()
                    .all(|s| s.is_finite() && (0.0..=1.0).contains(s)),
                "{type_name} round {round}: {scores:?}"
            );
            if let Some(hook) = &roles.pre_request {
                let result = crate::scheduling::SchedulingResult {
                    runs: vec![crate::scheduling::ProfileRun {
                        profile: 0,
                        profile_name: Arc::from("default"),
                        targets: Some(vec![Arc::clone(&endpoints[2])]),
                    }],
                    primary: 0,
                };
                hook.pre_request(&request, &result, &state);
            }
        }
    }
    assert!(scorers >= 5, "the registry's scorers were found");
}

#[test]
fn every_filter_keeps_a_subset() {
    let (endpoints, fresh_since) = pool();
    let candidates: Vec<Candidate<'_>> = endpoints.iter().collect();
    let all: HashSet<EndpointId> = ids(&candidates).into_iter().collect();
    let headers_list = [
        RequestHeaders::new(),
        [(
            HEADER,
            "10.0.0.3:8000, 10.0.0.1, 10.0.0.9:8000, 10.0.0.3:8000",
        )]
        .into_iter()
        .collect(),
    ];
    for (type_name, roles) in build_all(None) {
        let Some(filter) = roles.filter else {
            continue;
        };
        for headers in &headers_list {
            let mut kept = candidates.clone();
            filter.filter(&request(headers, "hi", fresh_since), &mut kept);
            let kept = ids(&kept);
            let distinct: HashSet<EndpointId> = kept.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                kept.len(),
                "{type_name}: duplicates {kept:?}"
            );
            assert!(distinct.is_subset(&all), "{type_name}: {kept:?}");
        }
    }
}

#[test]
fn every_picker_picks_distinct_candidates() {
    let (endpoints, _) = pool();
    let candidates: Vec<Candidate<'_>> = endpoints.iter().collect();
    let totals: [&[f64]; 4] = [
        &[0.2, 1.9, 0.5, 0.0],
        &[0.0; 4],
        &[-1.0, 0.3, 0.3, -0.5],
        &[1.0, 1.0, 1.0, 1.0],
    ];
    let three = serde_json::json!({ "maxNumOfEndpoints": 3 });
    let mut rng = SmallRng::seed_from_u64(3);
    for (parameters, most) in [(None, 1), (Some(&three), 3)] {
        for (type_name, roles) in build_all(parameters) {
            let Some(picker) = roles.picker else {
                continue;
            };
            for scores in totals {
                let mut picked = Vec::new();
                picker.pick(&candidates, scores, &mut rng, &mut picked);
                let distinct: HashSet<usize> = picked.iter().copied().collect();
                assert!(
                    (1..=most).contains(&picked.len())
                        && distinct.len() == picked.len()
                        && picked.iter().all(|&i| i < candidates.len()),
                    "{type_name} ({most}) over {scores:?}: {picked:?}"
                );
            }
        }
    }
}
