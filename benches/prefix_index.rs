//! How much do prefix-cache affinity's data paths cost per request: hashing a prompt into
//! blocks (`hash_prompt`), looking its hashes up in a realistically full index
//! (`PrefixIndex::match_prefix`, on the hot path under a read lock) and recording the pick
//! (`PrefixIndex::add`, under the write lock)?
//!
//! Setup: block size 64 bytes, at most 256 blocks; an index holding 100 endpoints × 10,000
//! entries (1 M entries, the per-endpoint LRU full).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use epp_core::datastore::EndpointId;
use epp_core::prefix::{PrefixIndex, PrefixIndexLimits, hash_prompt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const BLOCK: usize = 64;
const MAX_BLOCKS: usize = 256;
const ENDPOINTS: u64 = 100;
const PER_ENDPOINT: usize = 10_000;

fn prompt(len: usize, rng: &mut SmallRng) -> Vec<u8> {
    (0..len).map(|_| rng.random_range(b'a'..=b'z')).collect()
}

/// 100 endpoints × 10,000 random entries.
fn full_index(rng: &mut SmallRng) -> PrefixIndex {
    let ix = PrefixIndex::new(PrefixIndexLimits {
        lru_capacity_per_endpoint: PER_ENDPOINT,
        max_total_entries: ENDPOINTS as usize * PER_ENDPOINT,
    });
    let mut hs = vec![0u64; 128];
    for e in 0..ENDPOINTS {
        for _ in 0..PER_ENDPOINT / hs.len() + 1 {
            hs.iter_mut().for_each(|h| *h = rng.random());
            ix.add(&hs, EndpointId(e));
        }
    }
    ix
}

fn bench_hash(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut g = c.benchmark_group("hash_prompt");
    let mut out = Vec::with_capacity(MAX_BLOCKS);
    for kb in [4usize, 8, 64] {
        let p = prompt(kb * 1024, &mut rng);
        // 64 KB is truncated to 256 blocks = 16 KB: count the bytes actually hashed.
        g.throughput(Throughput::Bytes(p.len().min(BLOCK * MAX_BLOCKS) as u64));
        g.bench_function(format!("{kb}KB"), |b| {
            b.iter(|| {
                hash_prompt(
                    "meta-llama/Llama-3.1-8B-Instruct",
                    black_box(&p),
                    BLOCK,
                    MAX_BLOCKS,
                    &mut out,
                );
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn bench_match(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(2);
    let ix = full_index(&mut rng);
    let mut hashes = Vec::new();
    hash_prompt(
        "m",
        &prompt(128 * BLOCK, &mut rng),
        BLOCK,
        MAX_BLOCKS,
        &mut hashes,
    );
    assert_eq!(hashes.len(), 128);
    ix.add(&hashes, EndpointId(7));
    ix.add(&hashes, EndpointId(42));
    let mut miss = Vec::new();
    hash_prompt(
        "m",
        &prompt(128 * BLOCK, &mut rng),
        BLOCK,
        MAX_BLOCKS,
        &mut miss,
    );

    let mut out = Vec::new();
    let mut g = c.benchmark_group("match_prefix");
    g.throughput(Throughput::Elements(hashes.len() as u64));
    g.bench_function("128_blocks_hit_on_2_endpoints", |b| {
        b.iter(|| {
            ix.match_prefix(black_box(&hashes), &mut out);
            black_box(out.len())
        })
    });
    ix.match_prefix(&hashes, &mut out);
    out.sort();
    assert_eq!(out, vec![(EndpointId(7), 128), (EndpointId(42), 128)]);
    g.bench_function("128_blocks_miss", |b| {
        b.iter(|| {
            ix.match_prefix(black_box(&miss), &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

fn bench_add(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(3);
    let ix = full_index(&mut rng);
    let mut held = vec![0u64; 128];
    held.iter_mut().for_each(|h| *h = rng.random());
    ix.add(&held, EndpointId(7));

    let mut g = c.benchmark_group("add");
    g.throughput(Throughput::Elements(held.len() as u64));
    // (name, how many of the 128 hashes are fresh; the rest are bumps of held entries).
    // Every fresh hash is an insert that evicts the endpoint's least recently used entry.
    for (name, fresh) in [
        ("128_all_bumps", 0),
        ("128_mostly_bumps_8_new", 8),
        ("128_mostly_new_8_bumps", 120),
        ("128_all_new", 128),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || {
                    let mut hs = held.clone();
                    hs[held.len() - fresh..]
                        .iter_mut()
                        .for_each(|h| *h = rng.random());
                    hs
                },
                |hs| ix.add(black_box(hs), EndpointId(7)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_hash, bench_match, bench_add);
criterion_main!(benches);
