use std::sync::Arc;
use std::time::Duration;

use epp_kvevents::{BlockHash, BlockStored, EventBatch, KvEvent, Medium};
use serde_json::json;

use super::*;
use crate::datastore::fixtures::TestEndpoint;
use crate::request::RequestHeaders;
use crate::scheduling::plugins::testing::candidates;
use crate::scheduling::{ProfileRun, SchedulingResult};

const BS: usize = 4;

fn build(params: serde_json::Value) -> Result<PluginRoles, PluginError> {
    let name: Arc<str> = Arc::from("precise");
    let mut ctx = PluginContext::new(&name, Some(&params));
    factory(&mut ctx)
}

fn scorer(fallback: &str) -> Arc<PrecisePrefixCacheScorer> {
    let config = PreciseIndexConfig {
        block_size: BS,
        ..PreciseIndexConfig::default()
    };
    Arc::new(PrecisePrefixCacheScorer::new(
        Arc::from("precise"),
        config,
        DEFAULT_MAX_BLOCKS,
        fallback == "none",
    ))
}

fn tokens(blocks: usize) -> Vec<u32> {
    (0..(blocks * BS) as u32).map(|t| t * 13 + 1).collect()
}

/// The engine of `endpoint` reports holding `tokens` (as one `BlockStored`, seq `seq`).
fn report(s: &PrecisePrefixCacheScorer, endpoint: &Endpoint, seq: u64, tokens: &[u32], now: f64) {
    let blocks = tokens.len() / BS;
    let event = KvEvent::BlockStored(BlockStored {
        block_hashes: (0..blocks as u64)
            .map(|b| BlockHash::Int(endpoint.id().0 << 20 | b))
            .collect(),
        parent_block_hash: None,
        token_ids: tokens.to_vec(),
        block_size: BS as u32,
        lora_id: None,
        medium: Some(Medium::Gpu),
        lora_name: None,
        group_idx: None,
    });
    let batch = EventBatch {
        ts: 0.0,
        events: vec![event],
        data_parallel_rank: None,
    };
    s.index()
        .apply_batch(endpoint.id(), seq, &batch, Duration::from_secs_f64(now));
}

/// Scores a request (with `tokens` when given) at `now`, then records the pick of `pick`.
fn score(
    s: &PrecisePrefixCacheScorer,
    pods: &[Arc<Endpoint>],
    prompt: &str,
    tokens: Option<&[u32]>,
    now: f64,
    pick: Option<usize>,
) -> (Vec<f64>, Option<CachePrediction>) {
    let headers = RequestHeaders::new();
    let request = SchedulingRequest {
        request_id: "r",
        target_model: "m",
        prompt: Some(prompt),
        tokens,
        headers: &headers,
        now: Duration::from_secs_f64(now),
        metrics_fresh_since: Duration::ZERO,
    };
    let mut state = CycleState::new();
    let mut scores = vec![-1.0; pods.len()];
    s.score(&request, &mut state, &candidates(pods), &mut scores);
    let mut prediction = None;
    if let Some(i) = pick {
        prediction = state
            .prefix_match()
            .and_then(|p| p.cache_prediction(pods[i].id()));
        let result = SchedulingResult {
            runs: vec![ProfileRun {
                profile: 0,
                profile_name: Arc::from("default"),
                targets: Some(vec![Arc::clone(&pods[i])]),
            }],
            primary: 0,
        };
        s.pre_request(&request, &result, &state);
    }
    (scores, prediction)
}

fn pods() -> Vec<Arc<Endpoint>> {
    vec![
        TestEndpoint::new("10.0.0.1:8000").build(),
        TestEndpoint::new("10.0.0.2:8000").build(),
    ]
}

#[test]
fn endpoints_are_scored_by_what_their_engines_report() {
    let s = scorer("approximate");
    let pods = pods();
    let t = tokens(4);
    report(&s, &pods[0], 0, &t[..2 * BS], 1.0);
    report(&s, &pods[1], 0, &t, 1.0);
    let (scores, prediction) = score(&s, &pods, "text", Some(&t), 1.0, Some(1));
    assert_eq!(scores, [0.5, 1.0]);
    let prediction = prediction.expect("scored precisely");
    assert_eq!(prediction.predicted_tokens, (4 * BS) as u64);
    prediction.observe(12, 20);
    let stats = s.index().stats(Duration::from_secs(1));
    assert_eq!(
        (stats.predicted_cached_tokens, stats.observed_cached_tokens),
        (16, 12)
    );
}

#[test]
fn a_pick_counts_speculatively_until_the_engine_confirms_or_the_ttl_ends() {
    let s = scorer("approximate");
    let pods = pods();
    let t = tokens(3);
    report(&s, &pods[0], 0, &[], 0.0);
    report(&s, &pods[1], 0, &[], 0.0);
    score(&s, &pods, "text", Some(&t), 1.0, Some(0));
    assert_eq!(score(&s, &pods, "text", Some(&t), 1.5, None).0, [1.0, 0.0]);
    assert_eq!(score(&s, &pods, "text", Some(&t), 3.5, None).0, [0.0, 0.0]);
}

#[test]
fn without_tokens_every_endpoint_is_scored_by_the_approximate_index() {
    let s = scorer("approximate");
    let pods = pods();
    let prompt = "x".repeat(64 * 4);
    score(&s, &pods, &prompt, None, 1.0, Some(1));
    let (scores, prediction) = score(&s, &pods, &prompt, None, 1.0, Some(1));
    assert_eq!(scores, [0.0, 1.0]);
    assert!(prediction.is_none(), "no token-level prediction");
}

#[test]
fn an_unreliable_endpoint_falls_back_and_the_others_stay_precise() {
    let s = scorer("approximate");
    let pods = pods();
    let t = tokens(2);
    let prompt = "y".repeat(64 * 2);
    report(&s, &pods[0], 0, &t, 1.0);
    report(&s, &pods[1], 0, &[], 1.0);
    // The approximate index saw the request go to pod 1 (pod 1's engine reported nothing).
    score(&s, &pods, &prompt, None, 1.0, Some(1));
    // Pod 1 loses batches: it is scored by where requests went, pod 0 by its events.
    report(&s, &pods[1], 5, &[], 1.1);
    let (scores, _) = score(&s, &pods, &prompt, Some(&t), 1.2, None);
    assert_eq!(scores, [1.0, 1.0]);
    // With `fallback: none` the precise view is used whatever its health.
    let strict = scorer("none");
    report(&strict, &pods[0], 0, &t, 1.0);
    report(&strict, &pods[1], 0, &[], 1.0);
    score(&strict, &pods, &prompt, None, 1.0, Some(1));
    report(&strict, &pods[1], 5, &[], 1.1);
    assert_eq!(score(&strict, &pods, &prompt, Some(&t), 1.2, None).0, [1.0, 0.0]);
}

#[test]
fn departed_endpoints_are_forgotten_by_both_indexes() {
    let s = scorer("approximate");
    let pods = pods();
    report(&s, &pods[0], 0, &tokens(2), 1.0);
    score(&s, &pods, &"z".repeat(128), None, 1.0, Some(0));
    s.endpoint_removed(&pods[0]);
    assert_eq!(s.index().stats(Duration::from_secs(1)).endpoints, 0);
    assert!(s.fallback.is_empty());
}

#[test]
fn parameters_are_checked_and_errors_name_the_field() {
    let roles = build(json!({"blockSize": 64, "kvEventsPort": 6000, "replayPort": 6001,
        "tokenizer": {"source": "file", "path": "/t/tokenizer.json", "timeout": "20ms"},
        "mediumWeights": {"gpu": 1.0, "cpu": 0.5}}))
    .expect("valid");
    let sub = roles.kv_events.expect("subscription");
    assert_eq!((sub.port, sub.replay_port), (6000, Some(6001)));
    assert_eq!(sub.index.config().block_size, 64);
    assert_eq!(sub.index.config().weights.cpu, 0.5);
    assert_eq!(
        roles.tokenizer,
        Some(TokenizerSpec::File {
            path: "/t/tokenizer.json".into(),
            chat_template: None,
            timeout: Duration::from_millis(20),
        })
    );
    let defaults = build(json!({})).expect("defaults");
    assert_eq!(defaults.kv_events.expect("sub").port, DEFAULT_KV_EVENTS_PORT);
    assert!(matches!(
        defaults.tokenizer,
        Some(TokenizerSpec::ModelServer { .. })
    ));
    for (params, field) in [
        (json!({"blockSize": 0}), "blockSize"),
        (json!({"kvEventsPort": 70000}), "kvEventsPort"),
        (json!({"mediumWeights": {"cpu": 2.0}}), "mediumWeights.cpu"),
        (json!({"tokenizer": {"source": "magic"}}), "tokenizer.source"),
        (json!({"tokenizer": {"source": "file"}}), "tokenizer.path"),
        (json!({"speculativeTtl": "soon"}), "speculativeTtl"),
        (json!({"fallback": "maybe"}), "fallback"),
        (json!({"maxIndexMemoryBytes": -1}), "maxIndexMemoryBytes"),
    ] {
        let err = build(params.clone()).expect_err("invalid").to_string();
        assert!(err.contains(field), "{params}: {err}");
    }
}
