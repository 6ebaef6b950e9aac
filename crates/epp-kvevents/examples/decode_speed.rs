//! Prints the decode rate of a 16-event batch (one 64-token block per event), taking the best
//! of many rounds so a busy machine skews it less than a mean would:
//! `cargo run --release -p epp-kvevents --example decode_speed`.

use std::time::Instant;

use epp_kvevents::{
    BlockHash, BlockStored, EventBatch, KvEvent, Layout, Limits, Medium, decode_batch,
    encode_batch_with,
};

fn main() {
    let events = (0..16u32)
        .map(|i| {
            KvEvent::BlockStored(BlockStored {
                block_hashes: vec![BlockHash::Int(u64::from(i + 1) << 40)],
                parent_block_hash: Some(BlockHash::Int(u64::from(i) << 40)),
                token_ids: (0..64).map(|t| (i * 64 + t) * 2_347 % 151_936).collect(),
                block_size: 64,
                lora_id: None,
                medium: Some(Medium::Gpu),
                lora_name: None,
                group_idx: None,
            })
        })
        .collect();
    let batch = EventBatch {
        ts: 1.0,
        events,
        data_parallel_rank: Some(0),
    };
    let limits = Limits::default();
    for layout in [Layout::Positional, Layout::Named] {
        let payload = encode_batch_with(&batch, layout);
        let rounds = 200;
        let per_round = 500;
        let mut best = f64::INFINITY;
        for _ in 0..rounds {
            let start = Instant::now();
            for _ in 0..per_round {
                let decoded = decode_batch(std::hint::black_box(&payload), &limits);
                std::hint::black_box(decoded.is_ok());
            }
            best = best.min(start.elapsed().as_secs_f64() / f64::from(per_round));
        }
        println!(
            "{layout:?}: {} bytes, {:.2} us/batch, {:.2} M events/s, {:.0} M tokens/s",
            payload.len(),
            best * 1e6,
            16.0 / best / 1e6,
            1024.0 / best / 1e6
        );
    }
}
