use std::time::Duration;

use epp_kvevents::{BlockHash, BlockRemoved, BlockStored, EventBatch, KvEvent, Medium};

use super::*;

const BS: usize = 4;
const A: EndpointId = EndpointId(1);
const B: EndpointId = EndpointId(2);

fn index() -> PreciseIndex {
    PreciseIndex::new(PreciseIndexConfig {
        block_size: BS,
        recovery: Duration::from_secs(1),
        ..PreciseIndexConfig::default()
    })
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Engine hashes deliberately unrelated to the router's keys (another seed, another function).
fn engine_hash(endpoint: EndpointId, block: usize) -> BlockHash {
    BlockHash::Int(0xE000_0000 + endpoint.0 * 1_000_000 + block as u64)
}

fn stored(endpoint: EndpointId, first: usize, tokens: &[u32], medium: Medium) -> KvEvent {
    let blocks = tokens.len() / BS;
    KvEvent::BlockStored(BlockStored {
        block_hashes: (first..first + blocks)
            .map(|b| engine_hash(endpoint, b))
            .collect(),
        parent_block_hash: (first > 0).then(|| engine_hash(endpoint, first - 1)),
        token_ids: tokens.to_vec(),
        block_size: BS as u32,
        lora_id: None,
        medium: Some(medium),
        lora_name: None,
        group_idx: None,
    })
}

fn removed(endpoint: EndpointId, blocks: std::ops::Range<usize>, medium: Medium) -> KvEvent {
    KvEvent::BlockRemoved(BlockRemoved {
        block_hashes: blocks.map(|b| engine_hash(endpoint, b)).collect(),
        medium: Some(medium),
        group_idx: None,
    })
}

fn batch(events: Vec<KvEvent>) -> EventBatch {
    EventBatch {
        ts: 0.0,
        events,
        data_parallel_rank: None,
    }
}

fn prompt(blocks: usize) -> Vec<u32> {
    (0..(blocks * BS) as u32).map(|t| t * 31 + 7).collect()
}

fn keys(tokens: &[u32]) -> Vec<u64> {
    let mut out = Vec::new();
    epp_kvevents::block_keys(router_seed(None), tokens, BS, &mut out);
    out
}

fn scores(index: &PreciseIndex, tokens: &[u32], now: Duration) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    index.score(&keys(tokens), &[A, B], now, true, &mut out);
    out
}

#[test]
fn stored_blocks_match_by_router_key_and_stop_at_the_first_miss() {
    let idx = index();
    let p = prompt(4);
    // A holds all four blocks (stored in two events, chained by parent hash); B the first two.
    idx.apply_batch(
        A,
        0,
        &batch(vec![
            stored(A, 0, &p[..2 * BS], Medium::Gpu),
            stored(A, 2, &p[2 * BS..], Medium::Gpu),
        ]),
        secs(1.0),
    );
    idx.apply_batch(
        B,
        0,
        &batch(vec![stored(B, 0, &p[..2 * BS], Medium::Gpu)]),
        secs(1.0),
    );
    assert_eq!(scores(&idx, &p, secs(1.1)), vec![Some(1.0), Some(0.5)]);
    // A different second block breaks B's run after block 1 even if later blocks matched.
    let mut other = p.clone();
    other[BS] += 1;
    assert_eq!(
        scores(&idx, &other, secs(1.1)),
        vec![Some(0.25), Some(0.25)]
    );
}

#[test]
fn removed_blocks_resolve_through_the_engine_hash_map() {
    let idx = index();
    let p = prompt(3);
    idx.apply_batch(A, 0, &batch(vec![stored(A, 0, &p, Medium::Gpu)]), secs(1.0));
    idx.apply_batch(A, 1, &batch(vec![removed(A, 1..2, Medium::Gpu)]), secs(1.0));
    assert_eq!(scores(&idx, &p, secs(1.0))[0], Some(1.0 / 3.0));
    assert_eq!(idx.stats(secs(1.0)).entries, 2);
}

#[test]
fn cpu_blocks_count_less_and_tiers_are_removed_separately() {
    let idx = index();
    let p = prompt(2);
    idx.apply_batch(
        A,
        0,
        &batch(vec![
            stored(A, 0, &p, Medium::Gpu),
            stored(A, 0, &p, Medium::Cpu),
        ]),
        secs(1.0),
    );
    assert_eq!(scores(&idx, &p, secs(1.0))[0], Some(1.0));
    idx.apply_batch(A, 1, &batch(vec![removed(A, 0..2, Medium::Gpu)]), secs(1.0));
    let s = scores(&idx, &p, secs(1.0))[0].expect("reliable");
    assert!((s - 0.8).abs() < 1e-9, "{s}");
    idx.apply_batch(A, 2, &batch(vec![removed(A, 0..2, Medium::Cpu)]), secs(1.0));
    assert_eq!(scores(&idx, &p, secs(1.0))[0], Some(0.0));
    assert_eq!(idx.stats(secs(1.0)).entries, 0);
}

#[test]
fn a_gap_distrusts_the_endpoint_until_events_flow_for_the_recovery_period() {
    let idx = index();
    let p = prompt(2);
    idx.apply_batch(A, 0, &batch(vec![stored(A, 0, &p, Medium::Gpu)]), secs(1.0));
    assert!(idx.is_reliable(A, secs(1.0)));
    let outcome = idx.apply_batch(A, 5, &batch(vec![]), secs(2.0));
    assert_eq!(outcome.became_unreliable, Some(Unreliable::Gap));
    assert_eq!(outcome.missed, 4);
    assert_eq!(
        scores(&idx, &p, secs(2.0))[0],
        None,
        "scored by the fallback"
    );
    // Flow without a gap, but not yet for the recovery period.
    assert!(!idx.apply_batch(A, 6, &batch(vec![]), secs(2.5)).recovered);
    assert!(idx.apply_batch(A, 7, &batch(vec![]), secs(3.0)).recovered);
    assert_eq!(scores(&idx, &p, secs(3.0))[0], Some(1.0));
    let stats = idx.stats(secs(3.0));
    assert_eq!((stats.gaps, stats.missed_batches), (1, 4));
    assert_eq!(stats.fallback_switches.get("gap"), Some(&1));
}

#[test]
fn late_and_duplicate_batches_are_dropped() {
    let idx = index();
    let p = prompt(1);
    idx.apply_batch(A, 3, &batch(vec![]), secs(1.0));
    idx.apply_batch(A, 3, &batch(vec![stored(A, 0, &p, Medium::Gpu)]), secs(1.0));
    assert_eq!(
        idx.stats(secs(1.0)).events_dropped.get("stale_seq"),
        Some(&1)
    );
    assert_eq!(idx.stats(secs(1.0)).entries, 0);
}

#[test]
fn all_blocks_cleared_empties_the_view_and_distrusts_it() {
    let idx = index();
    let p = prompt(2);
    idx.apply_batch(A, 0, &batch(vec![stored(A, 0, &p, Medium::Gpu)]), secs(1.0));
    let outcome = idx.apply_batch(A, 1, &batch(vec![KvEvent::AllBlocksCleared]), secs(1.0));
    assert_eq!(outcome.became_unreliable, Some(Unreliable::Cleared));
    assert_eq!(idx.stats(secs(1.0)).entries, 0);
    assert_eq!(scores(&idx, &p, secs(1.0))[0], None);
}

#[test]
fn speculative_entries_count_until_their_ttl() {
    let idx = index();
    let p = prompt(2);
    idx.apply_batch(A, 0, &batch(vec![]), secs(1.0));
    idx.add_speculative(&keys(&p), A, secs(1.0));
    assert_eq!(scores(&idx, &p, secs(2.9))[0], Some(1.0));
    assert_eq!(scores(&idx, &p, secs(3.1))[0], Some(0.0));
    // Expired claims are released at the next write.
    idx.apply_batch(A, 1, &batch(vec![]), secs(3.1));
    assert_eq!(idx.stats(secs(3.1)).entries, 0);
}

#[test]
fn a_confirmed_speculative_entry_outlives_its_ttl() {
    let idx = index();
    let p = prompt(2);
    idx.apply_batch(A, 0, &batch(vec![]), secs(1.0));
    idx.add_speculative(&keys(&p), A, secs(1.0));
    idx.apply_batch(A, 1, &batch(vec![stored(A, 0, &p, Medium::Gpu)]), secs(1.5));
    idx.apply_batch(A, 2, &batch(vec![]), secs(5.0));
    assert_eq!(scores(&idx, &p, secs(5.0))[0], Some(1.0));
    assert_eq!(idx.stats(secs(5.0)).entries, 2);
}

#[test]
fn a_picked_endpoint_that_stays_silent_is_distrusted() {
    let idx = index();
    let p = prompt(1);
    idx.apply_batch(A, 0, &batch(vec![]), secs(0.0));
    idx.add_speculative(&keys(&p), A, secs(1.0));
    assert!(idx.is_reliable(A, secs(10.0)));
    assert!(
        !idx.is_reliable(A, secs(11.5)),
        "silent for more than 10 s after a pick"
    );
    idx.add_speculative(&keys(&p), A, secs(12.0));
    assert_eq!(
        idx.stats(secs(12.0)).fallback_switches.get("silence"),
        Some(&1)
    );
    // A batch ends the silence at once: nothing was lost.
    assert!(idx.apply_batch(A, 1, &batch(vec![]), secs(12.5)).recovered);
}

#[test]
fn a_block_size_mismatch_is_counted_and_distrusts_the_endpoint() {
    let idx = index();
    let mut event = stored(A, 0, &prompt(2), Medium::Gpu);
    if let KvEvent::BlockStored(s) = &mut event {
        s.block_size = 16;
    }
    let outcome = idx.apply_batch(A, 0, &batch(vec![event]), secs(1.0));
    assert_eq!(
        outcome.became_unreliable,
        Some(Unreliable::BlockSizeMismatch)
    );
    assert!(!idx.apply_batch(A, 1, &batch(vec![]), secs(5.0)).recovered);
    assert_eq!(
        idx.stats(secs(5.0))
            .events_dropped
            .get("block_size_mismatch"),
        Some(&1)
    );
}

#[test]
fn the_memory_budget_refuses_blocks_and_counts_them() {
    let idx = PreciseIndex::new(PreciseIndexConfig {
        block_size: BS,
        max_bytes: 3 * PreciseIndexConfig::BYTES_PER_ENTRY,
        ..PreciseIndexConfig::default()
    });
    let p = prompt(2);
    idx.apply_batch(A, 0, &batch(vec![stored(A, 0, &p, Medium::Gpu)]), secs(1.0));
    let outcome = idx.apply_batch(B, 0, &batch(vec![stored(B, 0, &p, Medium::Gpu)]), secs(1.0));
    assert_eq!(outcome.became_unreliable, Some(Unreliable::OverBudget));
    let stats = idx.stats(secs(1.0));
    assert_eq!(stats.entries, 2);
    assert_eq!(stats.events_dropped.get("over_budget"), Some(&1));
}

#[test]
fn forgetting_an_endpoint_releases_everything_it_held() {
    let idx = index();
    let p = prompt(3);
    idx.apply_batch(A, 0, &batch(vec![stored(A, 0, &p, Medium::Gpu)]), secs(1.0));
    idx.apply_batch(B, 0, &batch(vec![stored(B, 0, &p, Medium::Gpu)]), secs(1.0));
    idx.add_speculative(&keys(&prompt(5)), A, secs(1.0));
    idx.forget_endpoint(A);
    let stats = idx.stats(secs(1.0));
    assert_eq!((stats.entries, stats.keys, stats.endpoints), (3, 3, 1));
    assert_eq!(scores(&idx, &p, secs(1.0)), vec![None, Some(1.0)]);
}

#[test]
fn adapters_named_by_events_get_their_own_keys() {
    let idx = index();
    let p = prompt(2);
    let mut event = stored(A, 0, &p, Medium::Gpu);
    if let KvEvent::BlockStored(s) = &mut event {
        s.lora_name = Some("sql-lora".to_owned());
    }
    idx.apply_batch(A, 0, &batch(vec![event]), secs(1.0));
    assert_eq!(
        scores(&idx, &p, secs(1.0))[0],
        Some(0.0),
        "base-model keys differ"
    );
    let seed = idx.seed_for("sql-lora");
    assert_eq!(seed, router_seed(Some("sql-lora")));
    let mut k = Vec::new();
    epp_kvevents::block_keys(seed, &p, BS, &mut k);
    let mut out = Vec::new();
    idx.score(&k, &[A], secs(1.0), true, &mut out);
    assert_eq!(out, vec![Some(1.0)]);
}

#[test]
fn an_unknown_parent_is_counted_not_guessed() {
    let idx = index();
    let p = prompt(4);
    idx.apply_batch(
        A,
        0,
        &batch(vec![stored(A, 2, &p[2 * BS..], Medium::Gpu)]),
        secs(1.0),
    );
    let stats = idx.stats(secs(1.0));
    assert_eq!(stats.events_dropped.get("unknown_parent"), Some(&1));
    assert_eq!(stats.entries, 0);
}

#[test]
fn bytes_per_claim_measured_stay_within_the_budgeted_bound() {
    let idx = PreciseIndex::new(PreciseIndexConfig {
        block_size: 1,
        ..PreciseIndexConfig::default()
    });
    // 8 endpoints, 20,000 blocks each, half of them shared (two holders per shared key).
    for e in 0..8u64 {
        let endpoint = EndpointId(e);
        let tokens: Vec<u32> = (0..20_000u32)
            .map(|t| if t < 10_000 { t } else { t * 97 + e as u32 })
            .collect();
        let hashes = (0..tokens.len())
            .map(|b| BlockHash::Int(e << 32 | b as u64))
            .collect();
        let event = KvEvent::BlockStored(BlockStored {
            block_hashes: hashes,
            parent_block_hash: None,
            token_ids: tokens,
            block_size: 1,
            lora_id: None,
            medium: Some(Medium::Gpu),
            lora_name: None,
            group_idx: None,
        });
        idx.apply_batch(endpoint, 0, &batch(vec![event]), secs(1.0));
    }
    let stats = idx.stats(secs(1.0));
    assert_eq!(stats.entries, 160_000);
    let per_entry = stats.bytes / stats.entries;
    assert!(
        per_entry <= PreciseIndexConfig::BYTES_PER_ENTRY,
        "{per_entry} bytes per claim"
    );
}

#[test]
fn a_key_table_entry_is_24_bytes() {
    assert_eq!(std::mem::size_of::<holders::Holder>(), 12);
    assert_eq!(std::mem::size_of::<(u64, holders::Holders)>(), 24);
}
