//! A director on a manual clock with a seed decides the same way every time: the same
//! seed replays a run of decisions exactly, another seed does not, and the staleness
//! rules follow the clock, not the host's time.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::EndpointPickerConfig;
use crate::datastore::PoolInfo;
use crate::datastore::fixtures::TestEndpoint;
use crate::time::{Clock, ManualClock};

const HEAD: &str =
    "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n";

/// No scorer: every pick is the random picker's.
const RANDOM: &str = "plugins:\n- type: random-picker\n";

/// Scores that move with load, in-flight requests and prompts, picked in proportion.
const WEIGHTED: &str = "plugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n- type: prefix-cache-scorer\n- type: inflight-load-scorer\n- type: weighted-random-picker\n";

/// A director over four endpoints with varied metrics, on `clock`, seeded.
fn director(config: &str, clock: &Arc<ManualClock>, seed: u64) -> Director {
    let config = EndpointPickerConfig::from_text(&format!("{HEAD}{config}")).expect("config");
    let store = Arc::new(Datastore::with_clock(
        10,
        Arc::clone(clock) as Arc<dyn Clock>,
    ));
    for observer in config.endpoint_observers() {
        store.add_observer(observer);
    }
    store.set_pool(PoolInfo {
        name: "pool".into(),
        namespace: "default".into(),
        target_ports: vec![8000],
    });
    let endpoints = [
        TestEndpoint::new("10.0.0.1:8000").queue(0).kv(0.1),
        TestEndpoint::new("10.0.0.2:8000").queue(4).kv(0.6),
        TestEndpoint::new("10.0.0.3:8000").queue(1).kv(0.3),
        TestEndpoint::new("10.0.0.4:8000").queue(9).kv(0.9),
    ];
    for e in endpoints {
        store
            .upsert_endpoint(e.spec())
            .expect("add")
            .store_metrics(e.metrics());
    }
    Director::new(store, config.scheduler, DirectorSettings::default()).with_seed(seed)
}

/// 200 decisions 5 ms apart (within the staleness threshold): prompts from seven
/// conversations, every fifth request bodyless, the last eight decisions held in flight.
fn destinations(config: &str, seed: u64) -> Vec<String> {
    let clock = Arc::new(ManualClock::new());
    let director = director(config, &clock, seed);
    let headers = RequestHeaders::new();
    let mut in_flight = std::collections::VecDeque::new();
    (0..200)
        .map(|i| {
            clock.advance(Duration::from_millis(5));
            let prompt = format!("conversation {} says hello, turn {i}", i % 7).repeat(20);
            let decision = if i % 5 == 4 {
                director.route_bodyless(None)
            } else {
                director.route(&RoutingRequest::new("r", "m", Some(&prompt), &headers))
            }
            .expect("routed");
            let destination = decision.destination.clone();
            in_flight.push_back(decision);
            if in_flight.len() > 8 {
                in_flight.pop_front();
            }
            destination
        })
        .collect()
}

#[test]
fn a_seed_replays_random_picks_exactly() {
    let first = destinations(RANDOM, 7);
    assert_eq!(first.len(), 200);
    let used: std::collections::HashSet<&String> = first.iter().collect();
    assert_eq!(used.len(), 4, "random picks reach every endpoint");
    assert_eq!(destinations(RANDOM, 7), first, "same seed, same picks");
    assert_ne!(destinations(RANDOM, 8), first, "another seed, other picks");
}

#[test]
fn a_seed_replays_weighted_random_picks_over_scorers_exactly() {
    let first = destinations(WEIGHTED, 7);
    assert_eq!(destinations(WEIGHTED, 7), first, "same seed, same picks");
    assert_ne!(
        destinations(WEIGHTED, 8),
        first,
        "another seed, other picks"
    );
}

#[test]
fn the_staleness_rule_reads_the_directors_clock() {
    let clock = Arc::new(ManualClock::new());
    let director = director(
        "plugins:\n- type: kv-cache-utilization-scorer\n- type: max-score-picker\n",
        &clock,
        1,
    );
    let headers = RequestHeaders::new();
    let request = RoutingRequest::new("r", "m", Some("hello"), &headers);
    let snapshot = director.datastore().snapshot();
    let refresh_second = || {
        snapshot.endpoints()[2].store_metrics(TestEndpoint::new("10.0.0.3:8000").kv(0.3).metrics())
    };
    let pick = || {
        let decision = director.route(&request).expect("routed");
        (decision.destination.clone(), decision.reason)
    };
    // Everything scraped 1 s ago (threshold 2 s): the emptiest KV cache wins.
    clock.set(Duration::from_secs(1));
    refresh_second();
    assert_eq!(pick(), ("10.0.0.1:8000".into(), PickReason::Scheduled));
    // 3 s: only 10.0.0.3 was scraped again, with the same values. The others' KV usage is
    // now stale and scores neutral, below 10.0.0.3's fresh 0.7.
    clock.set(Duration::from_secs(3));
    refresh_second();
    assert_eq!(pick(), ("10.0.0.3:8000".into(), PickReason::Scheduled));
    // 6 s: nothing is fresh; last-known values decide again, and the pick says so.
    clock.set(Duration::from_secs(6));
    assert_eq!(pick(), ("10.0.0.1:8000".into(), PickReason::StaleMetrics));
}
