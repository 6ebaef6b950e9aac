//! Tests of the prefix index: upstream expectations, LRU and global-bound eviction, a
//! randomized comparison against a simple reference model, memory per entry and a concurrency
//! smoke test.

use std::collections::{HashMap as StdHashMap, HashSet, VecDeque};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::super::hash_prompt;
use super::*;

/// Expected `(endpoint, matched blocks)` pairs, sorted.
type Matches = Vec<(EndpointId, u32)>;
/// `(hashes, endpoint)` adds.
type Adds = Vec<(Vec<u64>, EndpointId)>;
/// `(adds to E1, hashes present afterwards, hashes absent afterwards)`.
type LruCase<'a> = (&'a [&'a [u64]], &'a [u64], &'a [u64]);

const E1: EndpointId = EndpointId(1);
const E2: EndpointId = EndpointId(2);
const E3: EndpointId = EndpointId(3);

fn index(lru: usize, max: usize) -> PrefixIndex {
    PrefixIndex::new(PrefixIndexLimits {
        lru_capacity_per_endpoint: lru,
        max_total_entries: max,
    })
}

fn hashes(model: &str, prompt: &str) -> Vec<u64> {
    let mut out = Vec::new();
    hash_prompt(model, prompt.as_bytes(), 4, 256, &mut out);
    out
}

fn matched(ix: &PrefixIndex, h: &[u64]) -> Vec<(EndpointId, u32)> {
    let mut out = Vec::new();
    ix.match_prefix(h, &mut out);
    out.sort();
    ix.state.read().check_invariants();
    out
}

fn holders(ix: &PrefixIndex, h: u64) -> Vec<EndpointId> {
    matched(ix, &[h]).into_iter().map(|(e, _)| e).collect()
}

#[test]
fn upstream_plugin_expectations() {
    let ix = index(31250, 1 << 20);
    let h1 = hashes("m1", "aaaaaa");
    assert_eq!(h1.len(), 1);
    assert_eq!(matched(&ix, &h1), vec![]);
    ix.add(&h1, E1);

    // (model, prompt, extra adds before, expected blocks, expected matches)
    let cases: &[(&str, &str, usize, Matches)] = &[
        ("m1", "aaaabbbb", 2, vec![(E1, 1)]),
        ("m2", "aaaabbbb", 2, vec![]),
        ("m1", "aaaabbbbcccc", 3, vec![(E1, 1)]),
        ("m1", "bbbbaaaa", 2, vec![]),
    ];
    for (model, prompt, n, want) in cases {
        let h = hashes(model, prompt);
        assert_eq!(h.len(), *n, "{model} {prompt}");
        assert_eq!(&matched(&ix, &h), want, "{model} {prompt}");
    }

    ix.add(&hashes("m1", "aaaabbbb"), E1);
    assert_eq!(
        matched(&ix, &hashes("m1", "aaaabbbbcccc")),
        vec![(E1, 2)],
        "2 of 3 blocks after adding aaaabbbb"
    );
    // Another model on another endpoint does not interfere.
    ix.add(&hashes("m2", "aaaabbbb"), E2);
    assert_eq!(matched(&ix, &hashes("m1", "aaaabbbbcccc")), vec![(E1, 2)]);
    assert_eq!(matched(&ix, &hashes("m2", "aaaabbbbcccc")), vec![(E2, 2)]);
}

#[test]
fn match_stops_at_first_missing_hash() {
    // (adds, query, expected)
    let cases: Vec<(Adds, Vec<u64>, Matches)> = vec![
        (vec![(vec![10, 30], E1)], vec![10, 20, 30], vec![(E1, 1)]),
        (vec![(vec![20, 30], E1)], vec![10, 20, 30], vec![]),
        (
            vec![(vec![10, 20, 30], E1)],
            vec![10, 20, 30],
            vec![(E1, 3)],
        ),
        // Upstream counts every held block before the stop, contiguous or not.
        (
            vec![(vec![10, 30], E1), (vec![20], E2)],
            vec![10, 20, 30, 40],
            vec![(E1, 2), (E2, 1)],
        ),
        (
            vec![(vec![10, 20], E1), (vec![10, 20, 30], E2), (vec![10], E3)],
            vec![10, 20, 30, 40, 50],
            vec![(E1, 2), (E2, 3), (E3, 1)],
        ),
        (vec![(vec![10], E1)], vec![], vec![]),
        // Repeated query hashes are each counted, as upstream does.
        (vec![(vec![10], E1)], vec![10, 10], vec![(E1, 2)]),
    ];
    for (adds, query, want) in cases {
        let ix = index(100, 1000);
        for (h, e) in &adds {
            ix.add(h, *e);
        }
        assert_eq!(matched(&ix, &query), want, "adds {adds:?} query {query:?}");
    }
}

#[test]
fn matches_run_across_lookup_batches_and_stop_at_any_boundary() {
    // 100 blocks: more than three lookup batches of 32; the first unheld block is at 70,
    // then exactly at a batch boundary (64, 32), then at 0.
    let hs: Vec<u64> = (0..100u64).map(|i| i * 7 + 1).collect();
    let ix = index(1000, 10_000);
    ix.add(&hs[..70], E1);
    ix.add(&hs[..64], E2);
    ix.add(&hs[..32], E3);
    assert_eq!(matched(&ix, &hs), vec![(E1, 70), (E2, 64), (E3, 32)]);
    ix.remove_endpoint(E1);
    assert_eq!(matched(&ix, &hs), vec![(E2, 64), (E3, 32)]);
    ix.remove_endpoint(E2);
    assert_eq!(matched(&ix, &hs), vec![(E3, 32)]);
    assert_eq!(matched(&ix, &hs[32..]), vec![]);
    // Blocks held after the first unheld one, in the same batch and in a later one, do
    // not count.
    ix.add(&hs[33..40], E2);
    ix.add(&hs[70..90], E2);
    assert_eq!(matched(&ix, &hs), vec![(E3, 32)]);
}

#[test]
fn per_endpoint_lru() {
    // (sequence of adds to E1 with capacity 3, hashes expected present, expected absent)
    let cases: &[LruCase] = &[
        (&[&[1, 2, 3, 4]], &[2, 3, 4], &[1]),
        (&[&[1], &[2], &[3], &[4]], &[2, 3, 4], &[1]),
        // Re-adding 1 bumps it: 2 is the oldest when 4 arrives.
        (&[&[1, 2, 3], &[1], &[4]], &[1, 3, 4], &[2]),
        (&[&[1, 2, 3], &[1, 1, 1], &[4, 5]], &[1, 4, 5], &[2, 3]),
        // One add longer than the capacity keeps its last hashes (upstream order).
        (&[&[1, 2, 3, 4, 5, 6]], &[4, 5, 6], &[1, 2, 3]),
    ];
    for (adds, present, absent) in cases {
        let ix = index(3, 1000);
        for a in *adds {
            ix.add(a, E1);
        }
        for &h in *present {
            assert_eq!(holders(&ix, h), vec![E1], "{adds:?}: {h} present");
        }
        for &h in *absent {
            assert_eq!(holders(&ix, h), vec![], "{adds:?}: {h} absent");
        }
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.endpoint_entries(E1), 3);
    }
}

#[test]
fn shared_hashes_and_remove_endpoint() {
    let ix = index(3, 1000);
    ix.add(&[1, 2, 3], E1);
    ix.add(&[1, 2, 3], E2);
    assert_eq!(ix.len(), 6);
    assert_eq!(ix.distinct_hashes(), 3);
    assert_eq!(matched(&ix, &[1, 2, 3]), vec![(E1, 3), (E2, 3)]);

    // E1 evicts 1; E2 keeps it.
    ix.add(&[4], E1);
    assert_eq!(holders(&ix, 1), vec![E2]);
    assert_eq!(holders(&ix, 4), vec![E1]);
    assert_eq!(ix.distinct_hashes(), 4);
    assert_eq!(matched(&ix, &[1, 2, 3]), vec![(E1, 2), (E2, 3)]);

    ix.remove_endpoint(E2);
    assert_eq!(ix.endpoint_count(), 1);
    assert_eq!(ix.len(), 3);
    assert_eq!(holders(&ix, 1), vec![]);
    assert_eq!(matched(&ix, &[2, 3, 4]), vec![(E1, 3)]);
    // Removing an unknown or already removed endpoint is a no-op.
    ix.remove_endpoint(E2);
    ix.remove_endpoint(E3);
    assert_eq!(ix.len(), 3);

    // A removed endpoint comes back empty.
    ix.add(&[9], E2);
    assert_eq!(ix.endpoint_entries(E2), 1);
    assert_eq!(matched(&ix, &[2]), vec![(E1, 1)]);

    ix.remove_endpoint(E1);
    ix.remove_endpoint(E2);
    assert_eq!(ix.len(), 0);
    assert!(ix.is_empty());
    assert_eq!(ix.distinct_hashes(), 0);
    assert_eq!(ix.endpoint_count(), 0);
    ix.state.read().check_invariants();
}

#[test]
fn remove_large_endpoint_in_chunks() {
    let n = REMOVE_CHUNK * 2 + 17;
    let ix = index(n, n * 2);
    let hs: Vec<u64> = (0..n as u64).collect();
    ix.add(&hs, E1);
    ix.add(&hs[..100], E2);
    assert_eq!(ix.len(), n + 100);
    ix.remove_endpoint(E1);
    assert_eq!(ix.len(), 100);
    assert_eq!(ix.distinct_hashes(), 100);
    assert_eq!(matched(&ix, &hs), vec![(E2, 100)]);
}

#[test]
fn global_bound_evicts_from_fullest_endpoint() {
    // max_total_entries = 10, per-endpoint capacity large.
    let ix = index(100, 10);
    ix.add(&[100, 101, 102, 103, 104, 105], E1);
    ix.add(&[200, 201, 202, 203], E2);
    assert_eq!(ix.len(), 10);

    // (endpoint, hash added, evicted hash, entries of E1, E2, E3 afterwards)
    let steps: &[(EndpointId, u64, u64, [usize; 3])] = &[
        (E3, 300, 100, [5, 4, 1]),
        (E3, 301, 101, [4, 4, 2]),
        // Tie at 4: the smallest id (E1) loses.
        (E3, 302, 102, [3, 4, 3]),
        (E3, 303, 200, [3, 3, 4]),
        // E3 is now the fullest: it evicts its own oldest entry.
        (E3, 304, 300, [3, 3, 4]),
        (E1, 106, 301, [4, 3, 3]),
    ];
    for &(e, h, evicted, counts) in steps {
        assert_eq!(holders(&ix, evicted).len(), 1, "{evicted} present before");
        ix.add(&[h], e);
        assert_eq!(ix.len(), 10);
        assert_eq!(holders(&ix, h), vec![e]);
        assert_eq!(holders(&ix, evicted), vec![], "{evicted} evicted by {h}");
        let got = [E1, E2, E3].map(|e| ix.endpoint_entries(e));
        assert_eq!(got, counts, "after adding {h}");
    }

    // Many random adds: the bound holds after every one.
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..2000 {
        let e = EndpointId(rng.random_range(1..=3));
        let hs: Vec<u64> = (0..rng.random_range(1..20))
            .map(|_| rng.random_range(0..50))
            .collect();
        ix.add(&hs, e);
        assert!(ix.len() <= 10, "len {} > 10", ix.len());
        ix.state.read().check_invariants();
    }
}

#[test]
fn zero_limits_store_nothing() {
    for (lru, max) in [(0, 100), (100, 0), (0, 0)] {
        let ix = index(lru, max);
        ix.add(&[1, 2, 3], E1);
        assert_eq!(ix.len(), 0);
        assert_eq!(ix.endpoint_count(), 0);
        assert_eq!(matched(&ix, &[1, 2, 3]), vec![]);
    }
}

/// The obvious implementation of the same semantics.
#[derive(Default)]
struct Model {
    lru: usize,
    max: usize,
    /// Front = least recently used.
    eps: StdHashMap<EndpointId, VecDeque<u64>>,
}

impl Model {
    fn total(&self) -> usize {
        self.eps.values().map(VecDeque::len).sum()
    }

    fn add(&mut self, hs: &[u64], e: EndpointId) {
        if hs.is_empty() || self.lru == 0 || self.max == 0 {
            return;
        }
        self.eps.entry(e).or_default();
        for &h in hs {
            let q = self.eps.get_mut(&e).unwrap();
            if let Some(pos) = q.iter().position(|&x| x == h) {
                q.remove(pos);
                q.push_back(h);
                continue;
            }
            if q.len() >= self.lru {
                q.pop_front();
            } else if self.total() >= self.max {
                let victim = *self
                    .eps
                    .iter()
                    .filter(|(_, q)| !q.is_empty())
                    .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
                    .unwrap()
                    .0;
                self.eps.get_mut(&victim).unwrap().pop_front();
            }
            self.eps.get_mut(&e).unwrap().push_back(h);
        }
    }

    fn matches(&self, hs: &[u64]) -> Vec<(EndpointId, u32)> {
        let mut res: StdHashMap<EndpointId, u32> = StdHashMap::new();
        for h in hs {
            let holders: Vec<_> = self
                .eps
                .iter()
                .filter(|(_, q)| q.contains(h))
                .map(|(e, _)| *e)
                .collect();
            if holders.is_empty() {
                break;
            }
            for e in holders {
                *res.entry(e).or_default() += 1;
            }
        }
        let mut v: Vec<_> = res.into_iter().collect();
        v.sort();
        v
    }

    fn consecutive(&self, hs: &[u64]) -> Vec<(EndpointId, u32)> {
        let mut v: Vec<_> = self
            .eps
            .iter()
            .map(|(e, q)| (*e, hs.iter().take_while(|h| q.contains(h)).count() as u32))
            .filter(|(_, n)| *n > 0)
            .collect();
        v.sort();
        v
    }

    fn distinct(&self) -> usize {
        self.eps.values().flatten().collect::<HashSet<_>>().len()
    }
}

#[test]
fn randomized_against_reference_model() {
    for seed in 0..40u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let lru = rng.random_range(1..8);
        let max = rng.random_range(1..30);
        let universe = rng.random_range(2..40u64);
        let endpoints = rng.random_range(1..12u64);
        let ix = index(lru, max);
        let mut model = Model {
            lru,
            max,
            ..Model::default()
        };
        let mut out = Vec::new();
        for step in 0..600 {
            let e = EndpointId(rng.random_range(0..endpoints));
            let hs: Vec<u64> = (0..rng.random_range(0..10))
                .map(|_| rng.random_range(0..universe))
                .collect();
            match rng.random_range(0..10) {
                0..=4 => {
                    ix.add(&hs, e);
                    model.add(&hs, e);
                }
                5 => {
                    ix.remove_endpoint(e);
                    model.eps.remove(&e);
                }
                6 => {
                    ix.remove(&hs, e);
                    if let Some(q) = model.eps.get_mut(&e) {
                        q.retain(|h| !hs.contains(h));
                    }
                }
                _ => {}
            }
            ix.match_prefix(&hs, &mut out);
            out.sort();
            let ctx = format!("seed {seed} step {step} lru {lru} max {max}");
            assert_eq!(out, model.matches(&hs), "{ctx}");
            ix.match_consecutive(&hs, &mut out);
            out.sort();
            assert_eq!(out, model.consecutive(&hs), "consecutive, {ctx}");
            assert_eq!(ix.len(), model.total(), "{ctx}");
            assert_eq!(ix.distinct_hashes(), model.distinct(), "{ctx}");
            assert_eq!(ix.endpoint_count(), model.eps.len(), "{ctx}");
            for (id, q) in &model.eps {
                assert_eq!(ix.endpoint_entries(*id), q.len(), "{ctx}");
            }
            ix.state.read().check_invariants();
        }
    }
}

#[test]
fn dense_match_with_many_holders() {
    // More holders than the sparse list handles, including removed and re-added endpoints.
    let ix = index(100, 10_000);
    let common: Vec<u64> = (0..20).collect();
    for e in 0..40 {
        ix.add(&common[..(e % 20) + 1], EndpointId(e as u64));
    }
    for e in (0..40).step_by(3) {
        ix.remove_endpoint(EndpointId(e));
    }
    let mut want: Vec<(EndpointId, u32)> = (0..40u64)
        .filter(|e| e % 3 != 0)
        .map(|e| (EndpointId(e), (e % 20) as u32 + 1))
        .collect();
    want.sort();
    assert_eq!(matched(&ix, &common), want);
    // A reused out with enough capacity is not reallocated.
    let mut out = Vec::with_capacity(64);
    let ptr = out.as_ptr();
    ix.match_prefix(&common, &mut out);
    assert_eq!(out.as_ptr(), ptr);
    assert_eq!(out.len(), want.len());
}

fn fill(ix: &PrefixIndex, endpoints: u64, per_endpoint: u64, batch: usize) {
    let mut hs = Vec::with_capacity(batch);
    for e in 0..endpoints {
        let mut next = 0;
        while next < per_endpoint {
            hs.clear();
            hs.extend((next..(next + batch as u64).min(per_endpoint)).map(|i| {
                // Distinct across endpoints, well spread.
                xxhash_rust::xxh64::xxh64(&(e * 1_000_000_007 + i).to_le_bytes(), 0)
            }));
            next += hs.len() as u64;
            ix.add(&hs, EndpointId(e));
        }
    }
}

#[test]
fn memory_per_entry_at_one_million() {
    // (label, limits) — the bound exactly at the fill, and no effective global bound.
    let cases = [
        (
            "max_total=1M",
            PrefixIndexLimits {
                lru_capacity_per_endpoint: 10_000,
                max_total_entries: 1_000_000,
            },
        ),
        (
            "max_total=unbounded",
            PrefixIndexLimits {
                lru_capacity_per_endpoint: 10_000,
                max_total_entries: usize::MAX,
            },
        ),
    ];
    for (label, limits) in cases {
        let ix = PrefixIndex::new(limits);
        fill(&ix, 100, 10_000, 128);
        assert_eq!(ix.len(), 1_000_000);
        assert_eq!(ix.endpoint_count(), 100);
        let per = ix.memory_bytes() as f64 / ix.len() as f64;
        println!(
            "{label}: memory_bytes={} entries={} distinct={} bytes/entry={per:.2}",
            ix.memory_bytes(),
            ix.len(),
            ix.distinct_hashes()
        );
        assert!(per <= 48.0, "{label}: {per} bytes per entry");
        // Churn at the bound (new hashes evict old ones) must not grow memory much.
        let before = ix.memory_bytes();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut hs = vec![0u64; 128];
        for _ in 0..4000 {
            hs.iter_mut().for_each(|h| *h = rng.random());
            ix.add(&hs, EndpointId(rng.random_range(0..100)));
        }
        let per = ix.memory_bytes() as f64 / ix.len() as f64;
        println!("{label}: after churn bytes/entry={per:.2}");
        assert!(ix.memory_bytes() <= before * 11 / 10 + 4096, "{label}");
        assert!(per <= 48.0, "{label}: {per} bytes per entry after churn");
    }
}

#[test]
fn memory_budget_holds_under_churn() {
    // Budgets whose entry bound sits just below / above a table size step.
    let fixed = PrefixIndexLimits::FIXED_OVERHEAD_BYTES;
    let per = PrefixIndexLimits::BYTES_PER_ENTRY_BOUND;
    for entries in [
        1_000usize,
        7 * (1 << 12),
        7 * (1 << 12) + 1,
        3 * (1 << 13),
        50_000,
    ] {
        let budget = fixed + entries * per;
        let limits = PrefixIndexLimits::from_memory_budget(5_000, budget);
        assert_eq!(limits.max_total_entries, entries);
        let ix = PrefixIndex::new(limits);
        let mut rng = SmallRng::seed_from_u64(entries as u64);
        let mut hs = vec![0u64; 64];
        let mut peak = 0;
        for i in 0..(entries * 6 / 64 + 200) {
            // Mostly fresh hashes, some shared between endpoints.
            for h in hs.iter_mut() {
                *h = if rng.random_range(0..4) == 0 {
                    rng.random_range(0..2000)
                } else {
                    rng.random()
                };
            }
            ix.add(&hs, EndpointId(rng.random_range(0..40)));
            if i % 50 == 0 {
                peak = peak.max(ix.memory_bytes());
            }
        }
        peak = peak.max(ix.memory_bytes());
        ix.state.read().check_invariants();
        println!(
            "budget {budget}: peak memory {peak} ({:.2} bytes per allowed entry), len {}",
            peak as f64 / entries as f64,
            ix.len()
        );
        assert_eq!(ix.len(), entries);
        assert!(peak <= budget, "peak {peak} > budget {budget}");
    }
}

#[test]
fn concurrent_smoke() {
    let ix = index(50, 300);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let ix = &ix;
            let stop = &stop;
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(t);
                let mut out = Vec::new();
                let mut n = 0u64;
                while n < 20_000 && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let e = EndpointId(rng.random_range(0..10));
                    let start = rng.random_range(0..100u64);
                    let hs: Vec<u64> = (start..start + rng.random_range(1..40)).collect();
                    match rng.random_range(0..20) {
                        0 => ix.remove_endpoint(e),
                        1..=9 => ix.add(&hs, e),
                        _ => {
                            ix.match_prefix(&hs, &mut out);
                            let mut ids: Vec<_> = out.iter().map(|x| x.0).collect();
                            ids.sort();
                            ids.dedup();
                            assert_eq!(ids.len(), out.len(), "duplicate endpoint in a match");
                            assert!(out.iter().all(|&(_, c)| c as usize <= hs.len()));
                        }
                    }
                    assert!(ix.len() <= 300);
                    n += 1;
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_secs(3));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let st = ix.state.read();
    st.check_invariants();
    let sum: usize = st.slots.iter().map(|s| s.len as usize).sum();
    assert_eq!(st.total, sum);
    assert!(st.slots.iter().all(|s| s.state != SlotState::Dying));
}

#[test]
fn table_does_not_double_under_churn_at_the_bound() {
    // 1433 entries: the table doubles from 1024 to 2048 buckets while filling (1792 items of
    // room ≥ 1.25 × 1433), then runs ~70% full. Tombstones from churn must lead to same-size
    // rebuilds, not to hashbrown's default doubling to 4096 buckets.
    let max = 1433;
    let ix = index(max, max);
    let mut rng = SmallRng::seed_from_u64(99);
    let mut hs = vec![0u64; 32];
    for _ in 0..20_000 {
        hs.iter_mut().for_each(|h| *h = rng.random());
        ix.add(&hs, E1);
    }
    let st = ix.state.read();
    st.check_invariants();
    assert_eq!(st.total, max);
    assert_eq!(st.table.num_buckets(), 2048);
}

#[test]
fn dying_endpoint_is_not_reported_mid_removal() {
    // Reproduce the state between two chunks of `remove_endpoint`: E1 detached and half
    // drained, then re-added under the same id.
    let ix = index(100, 1000);
    ix.add(&[1, 2, 3, 4], E1);
    ix.add(&[1, 2], E2);
    let slot = {
        let mut st = ix.state.write();
        let slot = st.by_id.remove(&E1).unwrap();
        st.slots[slot as usize].state = SlotState::Dying;
        assert!(!st.drain_slot(slot, 1));
        slot
    };
    assert_eq!(matched(&ix, &[1, 2, 3]), vec![(E2, 2)]);
    ix.add(&[1], E1);
    assert_eq!(matched(&ix, &[1, 2, 3]), vec![(E1, 1), (E2, 2)]);
    assert_eq!(ix.len(), 3 + 2 + 1);
    // Finish the removal as remove_endpoint would.
    assert!(ix.state.write().drain_slot(slot, REMOVE_CHUNK));
    assert_eq!(ix.len(), 3);
    assert_eq!(matched(&ix, &[1, 2, 3]), vec![(E1, 1), (E2, 2)]);
}

#[test]
fn remove_forgets_only_that_endpoints_entries() {
    let ix = index(100, 1000);
    ix.add(&[1, 2, 3], E1);
    ix.add(&[1, 2], E2);
    ix.remove(&[2, 9], E1);
    // Upstream's walk credits each holder of each hash until no endpoint holds one: E1
    // still holds 1 and 3, and E2 carries the walk over 2.
    assert_eq!(matched(&ix, &[1, 2, 3]), vec![(E1, 2), (E2, 2)]);
    assert_eq!(holders(&ix, 2), vec![E2]);
    assert_eq!(ix.endpoint_entries(E1), 2);
    ix.remove(&[1], E3); // unknown endpoint: nothing happens
    assert_eq!(ix.len(), 4);
    ix.add(&[2], E1); // a removed entry can come back
    assert_eq!(matched(&ix, &[1, 2, 3]), vec![(E1, 3), (E2, 2)]);
}

#[test]
fn consecutive_matches_stop_at_each_endpoints_own_gap() {
    let ix = index(100, 1000);
    ix.add(&[1, 3], E1); // holds 1 and 3 but not 2
    ix.add(&[1, 2, 3], E2);
    let mut out = Vec::new();
    ix.match_consecutive(&[1, 2, 3, 4], &mut out);
    out.sort();
    assert_eq!(out, vec![(E1, 1), (E2, 3)]);
    ix.match_consecutive(&[9, 1], &mut out);
    assert!(out.is_empty(), "nobody holds the first block");
}
