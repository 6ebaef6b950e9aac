//! The scheduler driven step by step, without HTTP or sleeping.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{self, UnboundedReceiver};

use super::*;
use crate::kv_cache::hash_seed;
use crate::sequence::TokenEvent;
use crate::tokens::{OutputPlan, TokenizedPrompt};

fn config() -> SimConfig {
    SimConfig {
        num_gpu_blocks: 1000,
        ..SimConfig::default()
    }
}

/// A sequence over a prompt of `prompt` token ids starting at `first_id`, producing `output`
/// tokens, and the receiver of its events.
fn sequence(
    first_id: u32,
    prompt: u32,
    output: usize,
    adapter: Option<&str>,
) -> (NewSequence, UnboundedReceiver<TokenEvent>) {
    let (events, rx) = mpsc::unbounded_channel();
    let ids: Vec<u32> = (first_id..first_id + prompt).collect();
    let name = adapter.unwrap_or("base");
    let new = NewSequence {
        index: 0,
        adapter: adapter.map(Arc::from),
        hash_seed: hash_seed(name),
        prompt: TokenizedPrompt::from_ids(&ids),
        output: OutputPlan::new(1, output, false),
        max_tokens: output,
        events,
    };
    (new, rx)
}

/// Runs steps until idle (bounded), checking invariants; returns the step durations.
fn run_to_idle(engine: &mut Engine) -> Vec<Duration> {
    let mut steps = Vec::new();
    let now = Instant::now();
    while let Some(step) = engine.schedule(now) {
        engine.complete(now);
        engine.check_invariants().unwrap();
        steps.push(step);
        assert!(steps.len() < 100_000, "the engine does not converge");
    }
    steps
}

fn drain(rx: &mut UnboundedReceiver<TokenEvent>) -> Vec<TokenEvent> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

#[test]
fn a_request_prefills_then_decodes_one_token_per_step() {
    let config = config();
    let mut engine = Engine::new(&config);
    let (new, mut rx) = sequence(0, 100, 5, None);
    engine.submit([new], Instant::now());
    let steps = run_to_idle(&mut engine);

    let model = &config.step_time;
    assert_eq!(
        steps.len(),
        5,
        "one prefill step (with the first token), then 4 decodes"
    );
    assert_eq!(steps[0], model.step(100, 0, 0));
    assert_eq!(steps[1], model.step(0, 1, 100));
    assert_eq!(steps[4], model.step(0, 1, 103));
    let events = drain(&mut rx);
    assert_eq!(events.len(), 5);
    assert!(events[..4].iter().all(|e| e.finish.is_none()));
    assert_eq!(
        events[4].finish.map(|f| f.reason),
        Some(FinishReason::Length)
    );
    let stats = engine.snapshot();
    assert_eq!(
        (
            stats.counters.prompt_tokens,
            stats.counters.generation_tokens
        ),
        (100, 5)
    );
    assert_eq!(stats.counters.finished, [1, 0, 0]);
    assert_eq!(stats.kv_usage, 0.0);
}

#[test]
fn long_prompts_are_prefilled_in_chunks_of_the_budget() {
    let config = SimConfig {
        max_num_batched_tokens: 1000,
        ..config()
    };
    let mut engine = Engine::new(&config);
    let (new, mut rx) = sequence(0, 2500, 1, None);
    engine.submit([new], Instant::now());
    let steps = run_to_idle(&mut engine);
    let model = &config.step_time;
    let want = [
        model.step(1000, 0, 0),
        model.step(1000, 0, 0),
        model.step(500, 0, 0),
    ];
    assert_eq!(steps, want);
    assert_eq!(drain(&mut rx).len(), 1);
}

#[test]
fn max_num_seqs_bounds_the_running_set() {
    let config = SimConfig {
        max_num_seqs: 2,
        ..config()
    };
    let mut engine = Engine::new(&config);
    let receivers: Vec<_> = (0..5)
        .map(|i| {
            let (new, rx) = sequence(i * 1000, 50, 3, None);
            engine.submit([new], Instant::now());
            rx
        })
        .collect();
    assert!(engine.schedule(Instant::now()).is_some());
    let snapshot = engine.snapshot();
    assert_eq!((snapshot.running, snapshot.waiting), (2, 3));
    engine.complete(Instant::now());
    run_to_idle(&mut engine);
    assert_eq!(engine.snapshot().counters.finished[0], 5);
    drop(receivers);
}

#[test]
fn decodes_go_first_and_new_prefills_share_the_budget() {
    let config = SimConfig {
        max_num_batched_tokens: 100,
        ..config()
    };
    let mut engine = Engine::new(&config);
    let (a, _ra) = sequence(0, 60, 10, None);
    engine.submit([a], Instant::now());
    engine.schedule(Instant::now());
    engine.complete(Instant::now());
    let (b, _rb) = sequence(5000, 500, 10, None);
    engine.submit([b], Instant::now());
    let step = engine.schedule(Instant::now());
    // a decodes one token; b gets the remaining 99 tokens of budget.
    assert_eq!(step, Some(config.step_time.step(99, 1, 60)));
}

#[test]
fn a_repeated_prompt_hits_the_prefix_cache_up_to_prompt_minus_one() {
    let config = config();
    let mut engine = Engine::new(&config);
    for (prompt, want_hit) in [(64, 0), (64, 48), (65, 64), (80, 64)] {
        let (new, mut rx) = sequence(0, prompt, 2, None);
        engine.submit([new], Instant::now());
        run_to_idle(&mut engine);
        let finish = drain(&mut rx).last().and_then(|e| e.finish).unwrap();
        assert_eq!(finish.cached_tokens, want_hit, "prompt of {prompt} tokens");
    }
    let counters = engine.snapshot().counters;
    assert_eq!(counters.prefix_hits, 48 + 64 + 64);
    assert_eq!(counters.prefix_queries, 64 + 64 + 65 + 80);
}

#[test]
fn adapters_never_share_cached_blocks() {
    let config = SimConfig {
        lora_modules: vec!["a".into()],
        ..config()
    };
    let mut engine = Engine::new(&config);
    let (base, _r1) = sequence(0, 64, 1, None);
    engine.submit([base], Instant::now());
    run_to_idle(&mut engine);
    let (lora, mut rx) = sequence(0, 64, 1, Some("a"));
    engine.submit([lora], Instant::now());
    run_to_idle(&mut engine);
    assert_eq!(drain(&mut rx)[0].finish.map(|f| f.cached_tokens), Some(0));
}

#[test]
fn a_full_cache_preempts_the_last_running_sequence() {
    // 8 blocks of 16 tokens; each sequence needs up to 6 blocks, so two cannot both finish.
    let config = SimConfig {
        num_gpu_blocks: 8,
        max_model_len: Some(128),
        ..config()
    };
    let mut engine = Engine::new(&config);
    let mut receivers = Vec::new();
    for i in 0..3 {
        let (new, rx) = sequence(i * 1000, 40, 50, None);
        engine.submit([new], Instant::now());
        receivers.push(rx);
    }
    run_to_idle(&mut engine);
    let counters = engine.snapshot().counters;
    assert!(counters.preemptions > 0, "{counters:?}");
    assert_eq!(counters.finished, [3, 0, 0]);
    for rx in &mut receivers {
        let events = drain(rx);
        assert_eq!(events.len(), 50, "recompute does not repeat or lose tokens");
    }
    assert_eq!(engine.snapshot().free_blocks, 8);
}

#[test]
fn a_busy_adapter_slot_makes_other_adapters_wait_but_not_the_base_model() {
    let config = SimConfig {
        lora_modules: vec!["a".into(), "b".into()],
        max_loras: 1,
        ..config()
    };
    let mut engine = Engine::new(&config);
    let mut receivers = Vec::new();
    for (i, adapter) in [Some("a"), Some("b"), None, Some("a")]
        .into_iter()
        .enumerate()
    {
        let (new, rx) = sequence(i as u32 * 1000, 20, 5, adapter);
        engine.submit([new], Instant::now());
        receivers.push(rx);
    }
    engine.schedule(Instant::now());
    let snapshot = engine.snapshot();
    assert_eq!((snapshot.running, snapshot.waiting), (3, 1));
    assert_eq!(snapshot.running_loras, "a");
    assert_eq!(snapshot.waiting_loras, "b");
    engine.complete(Instant::now());
    run_to_idle(&mut engine);
    assert_eq!(engine.snapshot().counters.finished[0], 4);
}

#[test]
fn a_departed_client_aborts_its_sequence_and_frees_its_blocks() {
    let config = config();
    let mut engine = Engine::new(&config);
    let (new, rx) = sequence(0, 100, 1000, None);
    engine.submit([new], Instant::now());
    engine.schedule(Instant::now());
    engine.complete(Instant::now());
    assert!(engine.snapshot().kv_usage > 0.0);
    drop(rx);
    assert_eq!(engine.schedule(Instant::now()), None);
    let snapshot = engine.snapshot();
    assert_eq!((snapshot.running, snapshot.counters.finished[2]), (0, 1));
    assert_eq!(snapshot.kv_usage, 0.0);
    engine.check_invariants().unwrap();
}
