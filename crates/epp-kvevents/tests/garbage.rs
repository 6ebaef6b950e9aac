//! No input makes the decoder panic: mutations of valid payloads (byte flips, cuts, splices,
//! length bytes set to extremes) in every layout, decoded under default and tiny limits. A
//! cheap stand-in for the fuzz target that runs with `cargo test` (debug: overflow checks on).

use epp_kvevents::{
    BlockHash, BlockStored, EventBatch, KvEvent, Layout, Limits, Medium, decode_batch,
    decode_message, encode_batch_with,
};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn payloads() -> Vec<Vec<u8>> {
    let stored = BlockStored {
        block_hashes: vec![
            BlockHash::Int(1 << 63),
            BlockHash::from_bytes(&[5; 32]).expect("fits"),
        ],
        parent_block_hash: Some(BlockHash::Int(3)),
        token_ids: vec![0, 127, 128, 255, 256, 65_535, 65_536, u32::MAX],
        block_size: 4,
        lora_id: Some(-3),
        medium: Some(Medium::Gpu),
        lora_name: Some("l".into()),
        group_idx: Some(1),
    };
    let batch = EventBatch {
        ts: 1.0,
        events: vec![
            KvEvent::BlockStored(stored),
            KvEvent::AllBlocksCleared,
            KvEvent::Unknown { tag: "X".into() },
        ],
        data_parallel_rank: Some(2),
    };
    [Layout::Positional, Layout::NamedEvents, Layout::Named]
        .into_iter()
        .map(|layout| encode_batch_with(&batch, layout))
        .collect()
}

#[test]
fn mutated_payloads_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let tiny = Limits {
        max_events_per_batch: 1,
        max_hashes_per_event: 1,
        max_tokens_per_event: 3,
        ..Limits::default()
    };
    let base = payloads();
    let (mut ok, mut err) = (0, 0);
    for _ in 0..60_000 {
        let mut p = base[rng.below(base.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(p.len());
            match rng.below(6) {
                0 => p[at] = rng.next() as u8,
                1 => p[at] = [0x00, 0x7f, 0xc0, 0xc1, 0xdc, 0xdd, 0xde, 0xdf, 0xff][rng.below(9)],
                2 => p.truncate(at),
                5 => p.insert(at, [0x80, 0x90, 0xa0, 0xc0, 0x81, 0x91][rng.below(6)]),
                3 => {
                    let from = rng.below(p.len());
                    let chunk: Vec<u8> = p[from..(from + rng.below(16)).min(p.len())].to_vec();
                    p.splice(at..at, chunk);
                }
                _ => {
                    p.remove(at);
                }
            };
            if p.is_empty() {
                break;
            }
        }
        for limits in [&Limits::default(), &tiny] {
            match decode_batch(&p, limits) {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert!(!e.reason().is_empty());
                    err += 1;
                }
            }
            let cut = rng.below(p.len() + 1);
            let _ = decode_message(&[&p[..cut.min(3)], &p[cut.min(3)..cut], &p[cut..]], limits);
        }
    }
    // Both outcomes are exercised: the mutations are not all fatal, nor all harmless.
    assert!(ok > 100 && err > 100, "ok {ok}, err {err}");
}
