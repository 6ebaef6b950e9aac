//! The scheduler driven step by step, without a clock or a server.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::kv_cache::hash_seed;
use crate::sequence::Emitted;
use crate::step_time::LinearStepTime;

/// A client that records what it receives; dropping the `Gone` handle's flag aborts.
#[derive(Debug)]
struct Recorder {
    events: Rc<RefCell<Vec<Emitted>>>,
    gone: Rc<Cell<bool>>,
}

impl Client for Recorder {
    fn output_token(&mut self, n: usize) -> u32 {
        1_000_000 + n as u32
    }

    fn emit(&mut self, token: Emitted) -> bool {
        self.events.borrow_mut().push(token);
        !self.gone.get()
    }

    fn is_abandoned(&self) -> bool {
        self.gone.get()
    }
}

/// The test's side of a [`Recorder`].
struct Rx {
    events: Rc<RefCell<Vec<Emitted>>>,
    gone: Rc<Cell<bool>>,
}

impl Drop for Rx {
    fn drop(&mut self) {
        self.gone.set(true);
    }
}

struct Setup {
    max_num_seqs: usize,
    max_num_batched_tokens: usize,
    num_gpu_blocks: usize,
    max_loras: usize,
}

fn setup() -> Setup {
    Setup {
        max_num_seqs: 1024,
        max_num_batched_tokens: 8192,
        num_gpu_blocks: 1000,
        max_loras: 1,
    }
}

impl Setup {
    fn config(&self) -> EngineConfig {
        EngineConfig {
            max_num_seqs: self.max_num_seqs,
            max_num_batched_tokens: self.max_num_batched_tokens,
            block_size: 16,
            num_gpu_blocks: self.num_gpu_blocks,
            max_loras: self.max_loras,
            step_time: StepTime::default(),
            emit_cache_events: false,
        }
    }

    fn engine(&self) -> Engine<Recorder> {
        Engine::new(&self.config())
    }
}

/// A sequence over a prompt of `prompt` token ids starting at `first_id`, producing `output`
/// tokens, and the receiver of its events.
fn sequence(
    first_id: u32,
    prompt: u32,
    output: usize,
    adapter: Option<&str>,
) -> (NewSequence<Recorder>, Rx) {
    let events = Rc::new(RefCell::new(Vec::new()));
    let gone = Rc::new(Cell::new(false));
    let name = adapter.unwrap_or("base");
    let new = NewSequence {
        adapter: adapter.map(Arc::from),
        hash_seed: hash_seed(name),
        prompt: (first_id..first_id + prompt).collect(),
        output_len: output,
        max_tokens: output,
        client: Recorder {
            events: Rc::clone(&events),
            gone: Rc::clone(&gone),
        },
    };
    (new, Rx { events, gone })
}

const NOW: Duration = Duration::ZERO;

/// Runs steps until idle (bounded), checking invariants; returns the step durations.
fn run_to_idle(engine: &mut Engine<Recorder>) -> Vec<Duration> {
    let mut steps = Vec::new();
    while let Some(step) = engine.schedule(NOW) {
        engine.complete(NOW);
        engine.check_invariants().unwrap();
        steps.push(step);
        assert!(steps.len() < 100_000, "the engine does not converge");
    }
    steps
}

fn drain(rx: &mut Rx) -> Vec<Emitted> {
    rx.events.borrow_mut().drain(..).collect()
}

fn linear() -> LinearStepTime {
    LinearStepTime::default()
}

fn prefill(n: usize) -> BatchShape {
    let mut b = BatchShape::default();
    b.add_prefill(n, 0);
    b
}

fn decode(context: usize) -> BatchShape {
    let mut b = BatchShape::default();
    b.add_decode(context);
    b
}

#[test]
fn a_request_prefills_then_decodes_one_token_per_step() {
    let mut engine = setup().engine();
    let (new, mut rx) = sequence(0, 100, 5, None);
    engine.submit([new], NOW);
    let steps = run_to_idle(&mut engine);

    let model = linear();
    assert_eq!(
        steps.len(),
        5,
        "one prefill step (with the first token), then 4 decodes"
    );
    assert_eq!(steps[0], model.step(&prefill(100)));
    assert_eq!(steps[1], model.step(&decode(100)));
    assert_eq!(steps[4], model.step(&decode(103)));
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
    let config = Setup {
        max_num_batched_tokens: 1000,
        ..setup()
    };
    let mut engine = config.engine();
    let (new, mut rx) = sequence(0, 2500, 1, None);
    engine.submit([new], NOW);
    let steps = run_to_idle(&mut engine);
    let model = linear();
    let want = [
        model.step(&prefill(1000)),
        model.step(&prefill(1000)),
        model.step(&prefill(500)),
    ];
    assert_eq!(steps, want);
    assert_eq!(drain(&mut rx).len(), 1);
}

#[test]
fn max_num_seqs_bounds_the_running_set() {
    let config = Setup {
        max_num_seqs: 2,
        ..setup()
    };
    let mut engine = config.engine();
    let receivers: Vec<_> = (0..5)
        .map(|i| {
            let (new, rx) = sequence(i * 1000, 50, 3, None);
            engine.submit([new], NOW);
            rx
        })
        .collect();
    assert!(engine.schedule(NOW).is_some());
    let snapshot = engine.snapshot();
    assert_eq!((snapshot.running, snapshot.waiting), (2, 3));
    engine.complete(NOW);
    run_to_idle(&mut engine);
    assert_eq!(engine.snapshot().counters.finished[0], 5);
    drop(receivers);
}

#[test]
fn decodes_go_first_and_new_prefills_share_the_budget() {
    let config = Setup {
        max_num_batched_tokens: 100,
        ..setup()
    };
    let mut engine = config.engine();
    let (a, _ra) = sequence(0, 60, 10, None);
    engine.submit([a], NOW);
    engine.schedule(NOW);
    engine.complete(NOW);
    let (b, _rb) = sequence(5000, 500, 10, None);
    engine.submit([b], NOW);
    let step = engine.schedule(NOW);
    // a decodes one token; b gets the remaining 99 tokens of budget.
    assert_eq!(
        step,
        Some(StepTime::default().step(&{
            let mut b = decode(60);
            b.add_prefill(99, 0);
            b
        }))
    );
}

#[test]
fn a_repeated_prompt_hits_the_prefix_cache_up_to_prompt_minus_one() {
    let mut engine = setup().engine();
    for (prompt, want_hit) in [(64, 0), (64, 48), (65, 64), (80, 64)] {
        let (new, mut rx) = sequence(0, prompt, 2, None);
        engine.submit([new], NOW);
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
    let mut engine = setup().engine();
    let (base, _r1) = sequence(0, 64, 1, None);
    engine.submit([base], NOW);
    run_to_idle(&mut engine);
    let (lora, mut rx) = sequence(0, 64, 1, Some("a"));
    engine.submit([lora], NOW);
    run_to_idle(&mut engine);
    assert_eq!(drain(&mut rx)[0].finish.map(|f| f.cached_tokens), Some(0));
}

#[test]
fn a_full_cache_preempts_the_last_running_sequence() {
    // 8 blocks of 16 tokens; each sequence needs up to 6 blocks, so two cannot both finish.
    let config = Setup {
        num_gpu_blocks: 8,
        ..setup()
    };
    let mut engine = config.engine();
    let mut receivers = Vec::new();
    for i in 0..3 {
        let (new, rx) = sequence(i * 1000, 40, 50, None);
        engine.submit([new], NOW);
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
    let config = Setup {
        max_loras: 1,
        ..setup()
    };
    let mut engine = config.engine();
    let mut receivers = Vec::new();
    for (i, adapter) in [Some("a"), Some("b"), None, Some("a")]
        .into_iter()
        .enumerate()
    {
        let (new, rx) = sequence(i as u32 * 1000, 20, 5, adapter);
        engine.submit([new], NOW);
        receivers.push(rx);
    }
    engine.schedule(NOW);
    let snapshot = engine.snapshot();
    assert_eq!((snapshot.running, snapshot.waiting), (3, 1));
    assert_eq!(snapshot.running_loras, "a");
    assert_eq!(snapshot.waiting_loras, "b");
    engine.complete(NOW);
    run_to_idle(&mut engine);
    assert_eq!(engine.snapshot().counters.finished[0], 4);
}

#[test]
fn a_departed_client_aborts_its_sequence_and_frees_its_blocks() {
    let mut engine = setup().engine();
    let (new, rx) = sequence(0, 100, 1000, None);
    engine.submit([new], NOW);
    engine.schedule(NOW);
    engine.complete(NOW);
    assert!(engine.snapshot().kv_usage > 0.0);
    drop(rx);
    assert_eq!(engine.schedule(NOW), None);
    let snapshot = engine.snapshot();
    assert_eq!((snapshot.running, snapshot.counters.finished[2]), (0, 1));
    assert_eq!(snapshot.kv_usage, 0.0);
    engine.check_invariants().unwrap();
}

mod events;
