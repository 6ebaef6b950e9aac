//! Decode cost of the event-intake hot path: a batch of 16 `BlockStored` events, one 64-token
//! block each (token ids spread over a 150k vocabulary), in each hash form and layout.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use epp_kvevents::{
    BlockHash, BlockStored, EventBatch, KvEvent, Layout, Limits, Medium, decode_batch,
    encode_batch_with,
};

fn batch(bytes_hashes: bool) -> EventBatch {
    let events = (0..16u32)
        .map(|i| {
            let hash = |n: u32| {
                let v = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                if bytes_hashes {
                    let mut b = [0u8; 32];
                    b[..8].copy_from_slice(&v.to_le_bytes());
                    BlockHash::from_bytes(&b).expect("32 bytes fit")
                } else {
                    BlockHash::Int(v)
                }
            };
            KvEvent::BlockStored(BlockStored {
                block_hashes: vec![hash(i + 1)],
                parent_block_hash: Some(hash(i)),
                token_ids: (0..64).map(|t| (i * 64 + t) * 2_347 % 151_936).collect(),
                block_size: 64,
                lora_id: None,
                medium: Some(Medium::Gpu),
                lora_name: None,
                group_idx: None,
            })
        })
        .collect();
    EventBatch {
        ts: 1_790_000_000.25,
        events,
        data_parallel_rank: Some(0),
    }
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("decode_batch_16x64");
    group.throughput(Throughput::Elements(16));
    for (name, bytes_hashes, layout) in [
        ("int_hashes_positional", false, Layout::Positional),
        ("bytes_hashes_positional", true, Layout::Positional),
        ("bytes_hashes_named", true, Layout::Named),
    ] {
        let payload = encode_batch_with(&batch(bytes_hashes), layout);
        group.bench_function(name, |b| {
            b.iter(|| decode_batch(std::hint::black_box(&payload), &limits).expect("valid"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
