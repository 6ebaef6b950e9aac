use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;

/// Chained hashes of `n` blocks of filler bytes starting with `tag`.
fn hashes(model: &str, tag: u8, n: usize) -> Vec<u64> {
    let mut previous = hash_seed(model);
    (0..n)
        .map(|i| {
            previous = chain_hash(previous, &[tag, i as u8, 0, 0]);
            previous
        })
        .collect()
}

/// Allocates blocks for `hashes.len()` full blocks (reusing cached ones) and caches them all.
fn admit(kv: &mut KvCache, hashes: &[u64]) -> Vec<BlockId> {
    let mut hits = Vec::new();
    kv.find_cached(hashes, &mut hits);
    let mut table = Vec::new();
    assert!(kv.allocate_slots(&mut table, &hits, hashes.len() * kv.block_size()));
    for (&id, &hash) in table.iter().zip(hashes) {
        kv.cache_block(id, hash);
    }
    table
}

fn cached_prefix(kv: &KvCache, hashes: &[u64]) -> usize {
    let mut hits = Vec::new();
    kv.find_cached(hashes, &mut hits);
    hits.len()
}

#[test]
fn prefix_hits_stop_at_the_first_miss() {
    let mut kv = KvCache::new(16, 4);
    let a = hashes("m", 1, 3);
    admit(&mut kv, &a);
    let mut longer = a.clone();
    longer.extend(hashes("m", 9, 2));
    let mut broken = a.clone();
    broken[1] = 12345;
    let cases: [(&str, &[u64], usize); 5] = [
        ("same prompt", &a, 3),
        ("longer prompt", &longer, 3),
        ("shorter prompt", &a[..2], 2),
        ("a middle block differs", &broken, 1),
        ("another model's chain", &hashes("lora", 1, 3), 0),
    ];
    for (name, query, want) in cases {
        assert_eq!(cached_prefix(&kv, query), want, "{name}");
    }
}

#[test]
fn shared_blocks_are_refcounted() {
    let mut kv = KvCache::new(8, 4);
    let h = hashes("m", 1, 2);
    let first = admit(&mut kv, &h);
    let second = admit(&mut kv, &h);
    assert_eq!(first, second, "the second request reuses the cached blocks");
    assert!(first.iter().all(|&id| kv.ref_count(id) == 2));
    assert_eq!(kv.num_free(), 6);

    kv.free(&first);
    assert!(first.iter().all(|&id| kv.ref_count(id) == 1));
    assert_eq!(kv.num_free(), 6, "still held by the second request");
    kv.free(&second);
    assert_eq!(kv.num_free(), 8);
    assert_eq!(kv.usage(), 0.0, "cached blocks at refcount 0 count as free");
    assert_eq!(cached_prefix(&kv, &h), 2, "and stay cached");
    kv.check_invariants().unwrap();
}

#[test]
fn free_is_tail_first_so_tail_blocks_are_evicted_first() {
    let mut kv = KvCache::new(6, 4);
    let a = hashes("m", 1, 3);
    let table = admit(&mut kv, &a);
    assert_eq!(table, vec![0, 1, 2]);
    kv.free(&table);
    assert_eq!(
        kv.free_queue(),
        vec![3, 4, 5, 2, 1, 0],
        "never-used blocks, then a's tail first"
    );

    // Four new blocks: the three never-used ones, then a's tail block.
    let mut other = Vec::new();
    assert!(kv.allocate_slots(&mut other, &[], 4 * 4));
    assert_eq!(other, vec![3, 4, 5, 2]);
    assert_eq!(kv.evictions(), 1);
    assert_eq!(cached_prefix(&kv, &a), 2, "a's first two blocks survive");
    kv.check_invariants().unwrap();
}

#[test]
fn recently_freed_requests_are_evicted_last() {
    let mut kv = KvCache::new(4, 4);
    let (a, b) = (hashes("m", 1, 2), hashes("m", 2, 2));
    let ta = admit(&mut kv, &a);
    let tb = admit(&mut kv, &b);
    kv.free(&ta);
    kv.free(&tb);
    // Touch a again: its blocks leave the queue and come back behind b's.
    let ta = admit(&mut kv, &a);
    kv.free(&ta);
    let mut fresh = Vec::new();
    assert!(kv.allocate_slots(&mut fresh, &[], 2 * 4));
    assert_eq!(cached_prefix(&kv, &b), 0, "b was least recently used");
    assert_eq!(cached_prefix(&kv, &a), 2);
}

#[test]
fn allocation_is_all_or_nothing() {
    let mut kv = KvCache::new(4, 4);
    let mut table = Vec::new();
    assert!(kv.allocate_slots(&mut table, &[], 3 * 4));
    let mut other = Vec::new();
    assert!(!kv.allocate_slots(&mut other, &[], 2 * 4));
    assert!(other.is_empty());
    assert_eq!(kv.num_free(), 1);
    // Growing by a partial block needs one more block only.
    assert!(kv.allocate_slots(&mut table, &[], 3 * 4 + 1));
    assert_eq!(kv.num_free(), 0);
    assert_eq!(kv.usage(), 1.0);
}

#[test]
fn reviving_cached_blocks_counts_against_free_space() {
    let mut kv = KvCache::new(4, 4);
    let a = hashes("m", 1, 2);
    let table = admit(&mut kv, &a);
    kv.free(&table);
    let mut busy = Vec::new();
    assert!(
        kv.allocate_slots(&mut busy, &[], 2 * 4),
        "takes the two empty blocks"
    );
    let mut hits = Vec::new();
    kv.find_cached(&a, &mut hits);
    assert_eq!(hits.len(), 2);
    let mut t = Vec::new();
    assert!(
        !kv.allocate_slots(&mut t, &hits, 3 * 4),
        "2 revived + 1 new > 2 free"
    );
    assert!(kv.allocate_slots(&mut t, &hits, 2 * 4));
    assert_eq!(t, hits);
    kv.check_invariants().unwrap();
}

#[test]
fn double_free_changes_nothing() {
    let mut kv = KvCache::new(4, 4);
    let table = admit(&mut kv, &hashes("m", 1, 2));
    kv.free(&table);
    kv.free(&table);
    assert_eq!(kv.num_free(), 4);
    kv.check_invariants().unwrap();
}

#[test]
fn invariants_hold_under_random_operations() {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut kv = KvCache::new(64, 4);
    let mut live: Vec<Vec<BlockId>> = Vec::new();
    for step in 0..5_000 {
        if rng.random_bool(0.55) {
            // Admit a request sharing a prefix with one of 8 "documents".
            let doc = hashes("m", rng.random_range(0..8), rng.random_range(1..12));
            let mut hits = Vec::new();
            kv.find_cached(&doc, &mut hits);
            let tokens = doc.len() * 4 + rng.random_range(0..4);
            let mut table = Vec::new();
            if kv.allocate_slots(&mut table, &hits, tokens) {
                for (&id, &hash) in table.iter().zip(&doc) {
                    kv.cache_block(id, hash);
                }
                live.push(table);
            }
        } else if !live.is_empty() {
            let table = live.swap_remove(rng.random_range(0..live.len()));
            kv.free(&table);
        }
        kv.check_invariants()
            .unwrap_or_else(|e| panic!("step {step}: {e}"));
        let held: usize = live.iter().map(Vec::len).sum();
        assert!(held >= kv.num_blocks() - kv.num_free(), "step {step}");
    }
    for table in live.drain(..) {
        kv.free(&table);
    }
    assert_eq!(kv.num_free(), kv.num_blocks());
    assert_eq!(kv.usage(), 0.0);
}

#[test]
fn a_duplicate_in_a_run_splits_the_stored_event() {
    use crate::events::CacheEvent;
    let mut kv = KvCache::new(8, 2);
    kv.enable_events(16);
    // Block 1's hash is already held by another block: the run [0, 2, 3] is split.
    let h = [11, 12, 13, 14];
    let mut other = Vec::new();
    assert!(kv.allocate_slots(&mut other, &[], 2));
    kv.cache_blocks(&other, &h[1..2], Some(h[0]), &[3, 4]);
    kv.take_events().for_each(drop);
    let mut table = Vec::new();
    assert!(kv.allocate_slots(&mut table, &[], 8));
    kv.cache_blocks(&table, &h, None, &[1, 2, 3, 4, 5, 6, 7, 8]);
    let stored = |hashes: &[u64], parent, tokens: &[u32]| CacheEvent::Stored {
        block_hashes: hashes.to_vec(),
        parent_hash: parent,
        token_ids: tokens.to_vec(),
        block_size: 2,
    };
    assert_eq!(
        kv.take_events().collect::<Vec<_>>(),
        vec![
            stored(&h[..1], None, &[1, 2]),
            stored(&h[2..], Some(h[1]), &[5, 6, 7, 8]),
        ]
    );
    assert_eq!(kv.cached_hashes(), h.into_iter().collect());
    kv.check_invariants().unwrap();
}
