//! KV-cache events: what the engine records, and that replaying them rebuilds its index.

use std::collections::BTreeSet;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::events::CacheEvent;
use crate::kv_cache::chain_hash_tokens;

const BS: usize = 16;

fn events_engine(num_gpu_blocks: usize) -> Engine<Recorder> {
    let mut config = Setup {
        num_gpu_blocks,
        ..setup()
    }
    .config();
    config.emit_cache_events = true;
    Engine::new(&config)
}

fn take(engine: &mut Engine<Recorder>) -> Vec<CacheEvent> {
    engine.take_cache_events().collect()
}

/// The chained hashes of the full blocks of `tokens` under the base model.
fn chain(tokens: &[u32], block_size: usize) -> Vec<u64> {
    let mut previous = hash_seed("base");
    tokens
        .chunks_exact(block_size)
        .map(|block| {
            previous = chain_hash_tokens(previous, block);
            previous
        })
        .collect()
}

fn step(engine: &mut Engine<Recorder>) -> bool {
    let ran = engine.schedule(NOW).is_some();
    if ran {
        engine.complete(NOW);
        engine.check_invariants().unwrap();
    }
    ran
}

fn stored(hashes: &[u64], parent: Option<u64>, tokens: &[u32]) -> CacheEvent {
    CacheEvent::Stored {
        block_hashes: hashes.to_vec(),
        parent_hash: parent,
        token_ids: tokens.to_vec(),
        block_size: BS,
    }
}

/// Output token `n` of a [`Recorder`].
fn output(n: usize) -> u32 {
    1_000_000 + n as u32
}

#[test]
fn a_prefill_stores_its_full_blocks_and_a_decode_the_block_it_fills() {
    let mut engine = events_engine(1000);
    let (new, _rx) = sequence(0, 3 * 16 + 5, 20, None);
    engine.submit([new], NOW);
    assert!(step(&mut engine));
    let prompt: Vec<u32> = (0..53).collect();
    let h = chain(&prompt[..48], BS);
    assert_eq!(
        take(&mut engine),
        vec![stored(&h, None, &prompt[..48])],
        "three full blocks, the partial fourth is not stored"
    );

    // The fourth block fills at 64 computed tokens: the prompt's 53 plus 11 decoded outputs.
    let mut tokens = prompt.clone();
    tokens.extend((0..11).map(output));
    let h3 = chain(&tokens, BS)[3];
    for decode in 1..=11 {
        assert!(step(&mut engine));
        let events = take(&mut engine);
        match decode {
            11 => assert_eq!(events, vec![stored(&[h3], Some(h[2]), &tokens[48..64])]),
            _ => assert!(events.is_empty(), "decode {decode}: {events:?}"),
        }
    }
    run_to_idle(&mut engine);
    assert!(
        take(&mut engine).is_empty(),
        "20 outputs never fill block 5"
    );
}

#[test]
fn an_identical_prompt_stores_nothing_already_cached() {
    let mut engine = events_engine(1000);
    let (new, _rx) = sequence(0, 53, 20, None);
    engine.submit([new], NOW);
    run_to_idle(&mut engine);
    let first = take(&mut engine);
    assert_eq!(first.len(), 2, "{first:?}");
    let cached = engine.cached_hashes();

    // Three blocks are hits; the fourth, completed by the same outputs, is a duplicate.
    let (new, _rx) = sequence(0, 53, 20, None);
    engine.submit([new], NOW);
    run_to_idle(&mut engine);
    assert_eq!(take(&mut engine), vec![]);
    assert_eq!(engine.cached_hashes(), cached);
    assert_eq!(engine.snapshot().counters.prefix_hits, 48);
}

#[test]
fn two_identical_prompts_in_one_step_store_once() {
    let mut engine = events_engine(1000);
    let (a, _ra) = sequence(0, 40, 1, None);
    let (b, _rb) = sequence(0, 40, 1, None);
    engine.submit([a, b], NOW);
    assert!(step(&mut engine));
    let prompt: Vec<u32> = (0..32).collect();
    assert_eq!(
        take(&mut engine),
        vec![stored(&chain(&prompt, BS), None, &prompt)],
        "the second sequence's blocks are duplicates and stay uncached"
    );
}

#[test]
fn eviction_under_pressure_removes_the_reused_hashes_tail_first() {
    let mut engine = events_engine(4);
    let (a, _ra) = sequence(0, 64, 1, None);
    engine.submit([a], NOW);
    run_to_idle(&mut engine);
    let prompt_a: Vec<u32> = (0..64).collect();
    let ha = chain(&prompt_a, BS);
    assert_eq!(take(&mut engine), vec![stored(&ha, None, &prompt_a)]);

    // b needs 2 blocks (32 prompt tokens + room for none more): a's tail blocks go first.
    let (b, _rb) = sequence(500, 32, 1, None);
    engine.submit([b], NOW);
    run_to_idle(&mut engine);
    let prompt_b: Vec<u32> = (500..532).collect();
    let removed = |h: u64| CacheEvent::Removed {
        block_hashes: vec![h],
    };
    assert_eq!(
        take(&mut engine),
        vec![
            removed(ha[3]),
            removed(ha[2]),
            stored(&chain(&prompt_b, BS), None, &prompt_b),
        ]
    );
    let left: BTreeSet<u64> = ha[..2]
        .iter()
        .chain(&chain(&prompt_b, BS))
        .copied()
        .collect();
    assert_eq!(engine.cached_hashes(), left);
}

#[test]
fn events_are_off_by_default() {
    let mut engine = setup().engine();
    let (new, _rx) = sequence(0, 100, 5, None);
    engine.submit([new], NOW);
    run_to_idle(&mut engine);
    assert!(!engine.cached_hashes().is_empty());
    assert_eq!(take(&mut engine), vec![]);
    assert!(engine.reset_prefix_cache());
    assert_eq!(take(&mut engine), vec![], "not even the reset");
}

#[test]
fn undrained_events_are_bounded_and_an_overflow_restarts_with_all_cleared() {
    let mut engine = events_engine(1000);
    engine.set_cache_event_capacity(3);
    // Five single-step requests with distinct prompts: five Stored events, two too many.
    for i in 0..5 {
        let (new, _rx) = sequence(1000 * i, 17, 1, None);
        engine.submit([new], NOW);
        run_to_idle(&mut engine);
    }
    let events = take(&mut engine);
    assert_eq!(engine.snapshot().counters.cache_events_dropped, 3);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0], CacheEvent::AllCleared);
    let prompt: Vec<u32> = (4000..4016).collect();
    assert_eq!(events[2], stored(&chain(&prompt, BS), None, &prompt));
    assert_eq!(take(&mut engine), vec![], "drained");

    // A drained buffer takes events again without loss.
    let (new, _rx) = sequence(9000, 17, 1, None);
    engine.submit([new], NOW);
    run_to_idle(&mut engine);
    assert_eq!(take(&mut engine).len(), 1);
    assert_eq!(engine.snapshot().counters.cache_events_dropped, 3);
}

#[test]
fn reset_prefix_cache_is_refused_while_blocks_are_in_use() {
    let mut engine = events_engine(1000);
    let (new, _rx) = sequence(0, 40, 3, None);
    engine.submit([new], NOW);
    assert!(step(&mut engine));
    take(&mut engine).clear();
    let cached = engine.cached_hashes();
    assert!(
        !engine.reset_prefix_cache(),
        "a running sequence holds blocks"
    );
    assert_eq!(take(&mut engine), vec![]);
    assert_eq!(engine.cached_hashes(), cached);

    run_to_idle(&mut engine);
    assert!(engine.reset_prefix_cache());
    assert_eq!(take(&mut engine), vec![CacheEvent::AllCleared]);
    assert!(engine.cached_hashes().is_empty());
    let (new, _rx) = sequence(0, 40, 1, None);
    engine.submit([new], NOW);
    run_to_idle(&mut engine);
    assert_eq!(
        engine.snapshot().counters.prefix_hits,
        0,
        "nothing left to hit"
    );
    assert_eq!(take(&mut engine).len(), 1, "stored again");
}

/// Applies events to a replica of the index, checking each `Stored` event's chain; returns
/// the hashes removed.
fn replay(index: &mut BTreeSet<u64>, events: impl Iterator<Item = CacheEvent>) -> usize {
    let mut removed = 0;
    for event in events {
        match event {
            CacheEvent::Stored {
                block_hashes,
                parent_hash,
                token_ids,
                block_size,
            } => {
                assert_eq!(token_ids.len(), block_size * block_hashes.len());
                let mut previous = parent_hash.unwrap_or(hash_seed("base"));
                for (block, &hash) in token_ids.chunks_exact(block_size).zip(&block_hashes) {
                    previous = chain_hash_tokens(previous, block);
                    assert_eq!(previous, hash, "a Stored chain does not hash its tokens");
                    assert!(index.insert(hash), "stored twice without removal");
                }
            }
            CacheEvent::Removed { block_hashes } => {
                for hash in block_hashes {
                    assert!(index.remove(&hash), "removed an unknown hash");
                    removed += 1;
                }
            }
            CacheEvent::AllCleared => index.clear(),
        }
    }
    removed
}

#[test]
fn replaying_the_events_rebuilds_the_index_under_a_random_workload() {
    let mut rng = SmallRng::seed_from_u64(14);
    // A small cache with chunked prefill: hits, duplicates, evictions and preemptions.
    let mut config = Setup {
        max_num_seqs: 12,
        max_num_batched_tokens: 96,
        num_gpu_blocks: 48,
        max_loras: 1,
    }
    .config();
    config.block_size = 4;
    config.emit_cache_events = true;
    let mut engine: Engine<Recorder> = Engine::new(&config);
    let mut index = BTreeSet::new();
    let mut clients: Vec<Rx> = Vec::new();
    let (mut resets, mut removed) = (0, 0);
    for step_no in 0..3_000 {
        if rng.random_bool(0.3) {
            // A prompt sharing a prefix with one of 6 documents, then a private tail.
            let doc = rng.random_range(0..6u32);
            let shared = rng.random_range(1..40u32);
            let tail = rng.random_range(0..10u32);
            let (mut new, rx) = sequence(doc * 10_000, shared, rng.random_range(1..30), None);
            new.prompt
                .extend((0..tail).map(|t| 5_000_000 + step_no * 16 + t));
            engine.submit([new], NOW);
            clients.push(rx);
        }
        if !clients.is_empty() && rng.random_bool(0.02) {
            drop(clients.swap_remove(rng.random_range(0..clients.len())));
        }
        if !engine.has_work() && rng.random_bool(0.2) {
            assert!(engine.reset_prefix_cache());
            resets += 1;
        }
        step(&mut engine);
        removed += replay(&mut index, engine.take_cache_events());
        assert_eq!(index, engine.cached_hashes(), "step {step_no}");
    }
    run_to_idle(&mut engine);
    replay(&mut index, engine.take_cache_events());
    assert_eq!(index, engine.cached_hashes());
    let snapshot = engine.snapshot();
    assert!(
        snapshot.counters.preemptions > 0,
        "the cache was under pressure"
    );
    assert!(snapshot.counters.prefix_hits > 0);
    assert!(resets > 0);
    assert!(removed > 100, "evictions: {removed}");
    assert_eq!(snapshot.counters.cache_events_dropped, 0);
}
