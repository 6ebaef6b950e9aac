use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::datastore::fixtures::TestEndpoint;
use crate::request::RequestHeaders;
use crate::scheduling::plugins::testing::candidates;
use crate::scheduling::{ProfileRun, SchedulingResult};

fn scorer(block_size: i64) -> Arc<PrefixCacheScorer> {
    let name: Arc<str> = Arc::from("prefix");
    let params = json!({"hashBlockSize": block_size});
    let mut ctx = PluginContext::new(&name, Some(&params));
    let roles = factory(&mut ctx).expect("factory");
    assert!(roles.pre_request.is_some() && roles.endpoint_observer.is_some());
    Arc::new(PrefixCacheScorer {
        name,
        block_size: usize::try_from(block_size).expect("positive"),
        max_blocks: 256,
        index: Arc::new(PrefixIndex::new(PrefixIndexLimits::from_memory_budget(
            31250,
            1 << 20,
        ))),
    })
}

/// Scores `prompt` for `model`, then records the pick of `pick` (if any) as pre-request does.
fn score_and_pick(
    scorer: &PrefixCacheScorer,
    endpoints: &[Arc<Endpoint>],
    model: &str,
    prompt: &str,
    pick: Option<usize>,
) -> Vec<f64> {
    let headers = RequestHeaders::new();
    let request = SchedulingRequest {
        request_id: "r",
        target_model: model,
        prompt: Some(prompt),
        tokens: None,
        headers: &headers,
        now: std::time::Duration::ZERO,
        metrics_fresh_since: std::time::Duration::ZERO,
    };
    let mut state = CycleState::new();
    let mut scores = vec![0.0; endpoints.len()];
    scorer.score(&request, &mut state, &candidates(endpoints), &mut scores);
    if let Some(i) = pick {
        let result = SchedulingResult {
            runs: vec![ProfileRun {
                profile: 0,
                profile_name: Arc::from("default"),
                targets: Some(vec![Arc::clone(&endpoints[i])]),
            }],
            primary: 0,
        };
        scorer.pre_request(&request, &result, &state);
    }
    scores
}

#[test]
fn upstream_expectations_block_size_4() {
    let s = scorer(4);
    let pods = [
        TestEndpoint::new("10.0.0.1:8000").build(),
        TestEndpoint::new("10.0.0.2:8000").build(),
    ];
    // One block, nothing indexed yet: every score is 0; the pick is recorded.
    assert_eq!(
        score_and_pick(&s, &pods, "m1", "aaaaaa", Some(0)),
        [0.0, 0.0]
    );
    // Same model, first block shared: pod1 matches 1 of 2 blocks.
    assert_eq!(
        score_and_pick(&s, &pods, "m1", "aaaabbbb", None),
        [0.5, 0.0]
    );
    // Another model hashes differently.
    assert_eq!(
        score_and_pick(&s, &pods, "m2", "aaaabbbb", None),
        [0.0, 0.0]
    );
    let third = score_and_pick(&s, &pods, "m1", "aaaabbbbcccc", None);
    assert!((third[0] - 1.0 / 3.0).abs() < 1e-12, "{third:?}");
    // After pod1 served "aaaabbbb", the longer prompt matches 2 of 3 blocks.
    score_and_pick(&s, &pods, "m1", "aaaabbbb", Some(0));
    let third = score_and_pick(&s, &pods, "m1", "aaaabbbbcccc", None);
    assert!((third[0] - 2.0 / 3.0).abs() < 1e-12, "{third:?}");
}

#[test]
fn no_prompt_or_short_prompt_scores_zero() {
    let s = scorer(64);
    let pods = [TestEndpoint::new("10.0.0.1:8000").build()];
    assert_eq!(score_and_pick(&s, &pods, "m", "short", Some(0)), [0.0]);
    assert_eq!(s.index().len(), 0, "nothing to index below one block");
}

#[test]
fn departed_endpoint_is_forgotten() {
    let s = scorer(4);
    let pods = [TestEndpoint::new("10.0.0.1:8000").build()];
    score_and_pick(&s, &pods, "m", "aaaabbbb", Some(0));
    assert_eq!(s.index().len(), 2);
    s.endpoint_removed(&pods[0]);
    assert_eq!(s.index().len(), 0);
    assert_eq!(score_and_pick(&s, &pods, "m", "aaaabbbb", None), [0.0]);
}

#[test]
fn parameters_fall_back_with_warnings() {
    let name: Arc<str> = Arc::from("p");
    let params = json!({"hashBlockSize": 0, "lruCapacityPerServer": -5, "typo": 1});
    let mut ctx = PluginContext::new(&name, Some(&params));
    factory(&mut ctx).expect("accepted");
    let warnings = ctx.take_warnings();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("'typo'")));

    let bad = json!({"hashBlockSize": "big"});
    let mut ctx = PluginContext::new(&name, Some(&bad));
    let err = factory(&mut ctx).expect_err("wrong type");
    assert!(err.to_string().contains("invalid type"), "{err}");
}
