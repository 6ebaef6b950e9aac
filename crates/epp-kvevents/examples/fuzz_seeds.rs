//! Writes the seed inputs of the `kv_events` fuzz target (fuzz/README.md), each named by a hash
//! of its bytes: `cargo run -p epp-kvevents --example fuzz_seeds -- fuzz/seeds/kv_events`.
//!
//! Seeds are batch payloads in each layout (decoded whole) and the same payloads cut into
//! `[topic, seq, payload]` frames in the target's framing (`[n, len, frame, len, frame, rest]`).

use std::path::PathBuf;

use epp_kvevents::{
    BlockHash, BlockRemoved, BlockStored, EventBatch, KvEvent, Layout, Medium, encode_batch_with,
};
use xxhash_rust::xxh64::xxh64;

fn batches() -> Vec<EventBatch> {
    let stored = |hashes: Vec<BlockHash>, parent, tokens: Vec<u32>, medium| BlockStored {
        block_hashes: hashes,
        parent_block_hash: parent,
        token_ids: tokens,
        block_size: 4,
        lora_id: None,
        medium,
        lora_name: None,
        group_idx: None,
    };
    let bytes = |fill: u8| BlockHash::from_bytes(&[fill; 32]).unwrap_or(BlockHash::Int(0));
    let mut lora = stored(
        vec![BlockHash::Int(u64::MAX)],
        Some(BlockHash::Int(3)),
        (0..4).collect(),
        None,
    );
    lora.lora_id = Some(1);
    lora.lora_name = Some("sql-lora".into());
    lora.group_idx = Some(1);
    vec![
        EventBatch {
            ts: 1_790_000_000.5,
            events: vec![
                KvEvent::BlockStored(stored(
                    vec![BlockHash::Int(11), BlockHash::Int(1 << 40)],
                    None,
                    vec![1, 200, 70_000, 5, 151_000, 0, 127, 128],
                    Some(Medium::Gpu),
                )),
                KvEvent::BlockRemoved(BlockRemoved {
                    block_hashes: vec![BlockHash::Int(11)],
                    medium: Some(Medium::Cpu),
                    group_idx: None,
                }),
                KvEvent::AllBlocksCleared,
            ],
            data_parallel_rank: Some(0),
        },
        EventBatch {
            ts: 2.0,
            events: vec![
                KvEvent::BlockStored(stored(
                    vec![bytes(0xab)],
                    Some(bytes(1)),
                    vec![9; 4],
                    Some(Medium::Gpu),
                )),
                KvEvent::BlockStored(lora),
                KvEvent::Unknown {
                    tag: "BlockPinned".into(),
                },
            ],
            data_parallel_rank: None,
        },
    ]
}

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/seeds/kv_events".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let mut seeds = Vec::new();
    for batch in batches() {
        for layout in [Layout::Positional, Layout::NamedEvents, Layout::Named] {
            let payload = encode_batch_with(&batch, layout);
            let topic = b"kv@10.0.0.7:5557@meta-llama/Llama-3.1-8B";
            let mut framed = vec![2, topic.len() as u8];
            framed.extend_from_slice(topic);
            framed.push(8);
            framed.extend_from_slice(&7u64.to_be_bytes());
            framed.extend_from_slice(&payload);
            seeds.push(payload);
            seeds.push(framed);
        }
    }
    // The replay terminator, framed as [seq, payload] and as [topic, seq, payload].
    seeds.push([vec![1, 8], vec![0xff; 8]].concat());
    seeds.push([vec![2, 0, 8], vec![0xff; 8]].concat());
    for seed in seeds {
        let name = format!("{:016x}", xxh64(&seed, 0));
        std::fs::write(dir.join(&name[..12]), &seed)?;
    }
    Ok(())
}
