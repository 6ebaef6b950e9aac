//! Director cases ported from upstream `director_test.go`: admission by priority and
//! saturation, subset hints, scheduler failures, and bodyless picks.

use std::sync::Arc;

use super::*;
use crate::config::EndpointPickerConfig;
use crate::datastore::fixtures::TestEndpoint;
use crate::datastore::{Objective, PoolInfo};
use crate::director::records::DecisionRecorder;

const CONFIG: &str = "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n";

fn director(endpoints: &[TestEndpoint]) -> Director {
    let store = Arc::new(Datastore::new(100));
    store.set_pool(PoolInfo {
        name: "pool".into(),
        namespace: "default".into(),
        target_ports: vec![8000],
    });
    for e in endpoints {
        store
            .upsert_endpoint(e.spec())
            .expect("add")
            .store_metrics(e.metrics());
    }
    store.set_objective(Objective {
        name: "critical".into(),
        priority: 2,
    });
    store.set_objective(Objective {
        name: "sheddable".into(),
        priority: -1,
    });
    let config = EndpointPickerConfig::from_text(CONFIG).expect("config");
    Director::new(store, config.scheduler, DirectorSettings::default())
}

fn request<'a>(
    headers: &'a RequestHeaders,
    objective: Option<&'a str>,
    subset: Option<&'a [String]>,
) -> RoutingRequest<'a> {
    RoutingRequest {
        objective,
        subset,
        ..RoutingRequest::new("r", "m", Some("hello"), headers)
    }
}

fn healthy() -> Vec<TestEndpoint> {
    vec![
        TestEndpoint::new("10.0.0.1:8000").queue(3).kv(0.5),
        TestEndpoint::new("10.0.0.2:8000").queue(0).kv(0.1),
    ]
}

fn saturated() -> Vec<TestEndpoint> {
    vec![
        TestEndpoint::new("10.0.0.1:8000").queue(10).kv(0.9),
        TestEndpoint::new("10.0.0.2:8000").queue(6).kv(0.95),
    ]
}

#[tokio::test]
async fn admission_table() {
    let headers = RequestHeaders::new();
    type Case<'a> = (
        Vec<TestEndpoint>,
        Option<&'a str>,
        Result<&'a str, PickError>,
    );
    let cases: [Case; 6] = [
        (healthy(), Some("critical"), Ok("10.0.0.2:8000")),
        (healthy(), Some("sheddable"), Ok("10.0.0.2:8000")),
        (saturated(), Some("critical"), Ok("10.0.0.2:8000")),
        (saturated(), Some("sheddable"), Err(PickError::Shed)),
        (saturated(), None, Ok("10.0.0.2:8000")),
        (saturated(), Some("unknown-objective"), Ok("10.0.0.2:8000")),
    ];
    for (i, (endpoints, objective, expected)) in cases.into_iter().enumerate() {
        let director = director(&endpoints);
        let got = director.route(&request(&headers, objective, None));
        match expected {
            Ok(destination) => {
                assert_eq!(got.expect("routed").destination, destination, "case {i}")
            }
            Err(e) => assert_eq!(got.expect_err("rejected"), e, "case {i}"),
        }
    }
    // Flow control already admitted it: a sheddable request that waited is routed.
    let director = director(&saturated());
    let waited = RoutingRequest {
        queued: Some(std::time::Duration::from_millis(40)),
        ..request(&headers, Some("sheddable"), None)
    };
    assert_eq!(
        director.route(&waited).expect("routed").destination,
        "10.0.0.2:8000"
    );
}

#[tokio::test]
async fn subset_table() {
    let headers = RequestHeaders::new();
    let director = director(&healthy());
    let hint = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases: [(Vec<String>, Result<&str, PickError>); 5] = [
        (hint(&["10.0.0.1:8000"]), Ok("10.0.0.1:8000")),
        (
            hint(&["10.0.0.1:8000", "10.0.0.2:8000"]),
            Ok("10.0.0.2:8000"),
        ),
        (hint(&["10.0.0.1"]), Ok("10.0.0.1:8000")),
        (hint(&["10.0.0.9:8000"]), Err(PickError::NoCandidates)),
        (hint(&[]), Err(PickError::NoCandidates)),
    ];
    for (subset, expected) in cases {
        let got = director.route(&request(&headers, None, Some(&subset)));
        match expected {
            Ok(destination) => {
                assert_eq!(got.expect("routed").destination, destination, "{subset:?}")
            }
            Err(e) => assert_eq!(got.expect_err("rejected"), e, "{subset:?}"),
        }
    }
}

#[tokio::test]
async fn pool_state_errors() {
    let headers = RequestHeaders::new();
    let director = director(&[]);
    assert_eq!(
        director
            .route(&request(&headers, None, None))
            .expect_err("empty"),
        PickError::NoCandidates
    );
    assert_eq!(
        director.route_bodyless(None).expect_err("empty"),
        PickError::NoEndpoints
    );
    let director = director_unsynced();
    assert_eq!(
        director
            .route(&request(&headers, None, None))
            .expect_err("unsynced"),
        PickError::PoolNotSynced
    );
}

/// The endpoints of `healthy()`, scraped once, with `settings`.
fn director_with_settings(settings: DirectorSettings) -> Director {
    let template = director(&healthy());
    let config = EndpointPickerConfig::from_text(CONFIG).expect("config");
    Director::new(Arc::clone(template.datastore()), config.scheduler, settings)
}

fn director_unsynced() -> Director {
    let store = Arc::new(Datastore::new(10));
    store
        .upsert_endpoint(TestEndpoint::new("10.0.0.1:8000").spec())
        .expect("add");
    let config = EndpointPickerConfig::from_text(CONFIG).expect("config");
    Director::new(store, config.scheduler, DirectorSettings::default())
}

#[tokio::test]
async fn scheduler_failure_is_resource_exhausted() {
    let store = Arc::new(Datastore::new(10));
    store.set_pool(PoolInfo {
        name: "p".into(),
        namespace: "d".into(),
        target_ports: vec![8000],
    });
    store
        .upsert_endpoint(TestEndpoint::new("10.0.0.1:8000").spec())
        .expect("add");
    let config = EndpointPickerConfig::from_text(
        "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: header-based-testing-filter\n",
    )
    .expect("config");
    let director = Director::new(store, config.scheduler, DirectorSettings::default());
    let headers = RequestHeaders::new();
    let err = director
        .route(&request(&headers, None, None))
        .expect_err("filtered out");
    assert_eq!(
        err.to_string(),
        "failed to find target pod: failed to run scheduler profile 'default'"
    );
}

#[tokio::test]
async fn decisions_hold_the_in_flight_count() {
    let director = director(&healthy());
    let headers = RequestHeaders::new();
    let decision = director
        .route(&request(&headers, None, None))
        .expect("routed");
    assert_eq!(decision.primary().in_flight(), 1);
    // "hello" is 5 bytes: about 2 tokens without token ids.
    assert_eq!(decision.primary().in_flight_tokens(), 2);
    assert_eq!(decision.reason, PickReason::Scheduled);
    let endpoint = Arc::clone(decision.primary());
    drop(decision);
    assert_eq!((endpoint.in_flight(), endpoint.in_flight_tokens()), (0, 0));

    // With token ids, their count.
    let tokens = [1, 2, 3, 4, 5, 6, 7];
    let with_tokens = RoutingRequest {
        tokens: Some(&tokens),
        ..request(&headers, None, None)
    };
    let decision = director.route(&with_tokens).expect("routed");
    assert_eq!(decision.primary().in_flight_tokens(), 7);
}

#[tokio::test]
async fn picks_say_when_metrics_were_stale_or_the_body_was_not_seen() {
    let headers = RequestHeaders::new();
    // Metrics older than the staleness threshold (zero here): scheduled on last-known values.
    let stale = director_with_settings(DirectorSettings {
        metrics_staleness: std::time::Duration::ZERO,
        ..DirectorSettings::default()
    });
    let decision = stale.route(&request(&headers, None, None)).expect("routed");
    assert_eq!(decision.reason, PickReason::StaleMetrics);
    let director = director(&healthy());
    let mut at_headers = request(&headers, None, None);
    at_headers.prompt = None;
    at_headers.at_headers = true;
    let decision = director.route(&at_headers).expect("routed");
    assert_eq!(decision.reason, PickReason::HeadersOnly);
}

#[tokio::test]
async fn bodyless_picks_are_uniform_and_respect_the_subset() {
    let director = director(&healthy());
    let mut counts = std::collections::HashMap::new();
    for _ in 0..400 {
        let d = director.route_bodyless(None).expect("picked");
        assert_eq!(d.reason, PickReason::RandomBodyless);
        *counts.entry(d.destination.clone()).or_insert(0) += 1;
    }
    assert!(
        counts.values().all(|&c| (140..260).contains(&c)),
        "{counts:?}"
    );
    let subset = vec!["10.0.0.1:8000".to_string()];
    for _ in 0..20 {
        assert_eq!(
            director
                .route_bodyless(Some(&subset))
                .expect("picked")
                .destination,
            "10.0.0.1:8000"
        );
    }
    assert_eq!(
        director.route_bodyless(Some(&[])).expect_err("empty hint"),
        PickError::NoCandidates
    );
}

#[tokio::test]
async fn decision_records_explain_the_pick() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("decisions.jsonl");
    let director =
        director(&healthy()).with_records(DecisionRecorder::to_file(&path, false).expect("open"));
    let headers = RequestHeaders::new();
    let prompt_text = "SECRET PROMPT THAT MUST NOT BE RECORDED";
    let mut req = request(&headers, Some("critical"), None);
    req.prompt = Some(prompt_text);
    let decision = director.route(&req).expect("routed");
    let hint = vec!["10.0.0.9:8000".to_string()];
    director
        .route(&request(&headers, None, Some(&hint)))
        .expect_err("no candidate");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.lines().count() == 2 || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(!text.contains("SECRET"), "prompts never reach records");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let first = &records[0];
    assert_eq!(first["outcome"], "scheduled");
    assert_eq!(first["objective"], "critical");
    assert_eq!(first["destination"], decision.destination.as_str());
    let profile = &first["profiles"][0];
    assert_eq!(profile["candidates"].as_array().map(Vec::len), Some(2));
    let scorers = profile["scorers"].as_array().expect("scorers");
    assert_eq!(scorers.len(), 2, "queue and kv-cache scorers");
    assert_eq!(scorers[0]["scorer"], "queue-scorer");
    // Endpoint 2 has the shorter queue (0 vs 3): raw queue scores 0 and 1.
    assert_eq!(scorers[0]["raw"], serde_json::json!([0.0, 1.0]));
    assert_eq!(profile["picked"][0], "10.0.0.2:8000");
    let totals = profile["totals"].as_array().expect("totals");
    assert!(totals[1].as_f64() > totals[0].as_f64());
    // A rejected request is recorded with its reason and no destination.
    assert_eq!(
        records[1]["outcome"],
        "failed to find candidate pods for serving the request"
    );
    assert!(records[1].get("destination").is_none());
}
