//! encode → decode is the identity in every layout, and the encoder writes the bytes vLLM's
//! msgspec encoder writes (checked against msgpack built by hand with `rmp`).

mod common;

use common::Mp;
use epp_kvevents::{
    BlockHash, BlockRemoved, BlockStored, EventBatch, KvEvent, Layout, Limits, Medium,
    decode_batch, decode_message, encode_batch, encode_batch_with, encode_message,
};

fn stored(hashes: Vec<BlockHash>, parent: Option<BlockHash>, tokens: Vec<u32>) -> BlockStored {
    BlockStored {
        block_hashes: hashes,
        parent_block_hash: parent,
        token_ids: tokens,
        block_size: 4,
        lora_id: None,
        medium: Some(Medium::Gpu),
        lora_name: None,
        group_idx: None,
    }
}

fn bytes(fill: u8, len: usize) -> BlockHash {
    BlockHash::from_bytes(&vec![fill; len]).expect("short enough")
}

/// Batches covering every field and value form the encoder can write.
fn batches() -> Vec<EventBatch> {
    let mut full = stored(
        vec![BlockHash::Int(u64::MAX), BlockHash::Int(0)],
        Some(BlockHash::Int(1 << 40)),
        (0..8).collect(),
    );
    full.lora_id = Some(-7);
    full.lora_name = Some("sql-lora".into());
    full.group_idx = Some(2);
    full.medium = Some(Medium::Other("disk".into()));
    let mut named_only = stored(
        vec![BlockHash::Int(5)],
        None,
        vec![u32::MAX, 0, 128, 65_536],
    );
    named_only.lora_name = Some("a".repeat(40));
    let big_tokens: Vec<u32> = (0..70_000).collect();
    vec![
        EventBatch {
            ts: 1_790_000_000.5,
            events: vec![
                KvEvent::BlockStored(stored(
                    vec![bytes(0xab, 32), bytes(1, 1), bytes(2, 64)],
                    None,
                    (0..12).collect(),
                )),
                KvEvent::BlockStored(full),
                KvEvent::BlockStored(named_only),
                KvEvent::BlockRemoved(BlockRemoved {
                    block_hashes: vec![bytes(0xab, 32)],
                    medium: Some(Medium::Cpu),
                    group_idx: None,
                }),
                KvEvent::BlockRemoved(BlockRemoved {
                    block_hashes: vec![],
                    medium: None,
                    group_idx: Some(-1),
                }),
                KvEvent::AllBlocksCleared,
                KvEvent::Unknown {
                    tag: "SomethingNew".into(),
                },
            ],
            data_parallel_rank: Some(3),
        },
        EventBatch {
            ts: 0.0,
            events: vec![],
            data_parallel_rank: None,
        },
        EventBatch {
            ts: -1.25,
            events: vec![KvEvent::BlockStored(stored(
                (0..20_000u64).map(BlockHash::Int).collect(),
                Some(bytes(9, 16)),
                big_tokens,
            ))],
            data_parallel_rank: Some(-100_000),
        },
        EventBatch {
            ts: 5.0,
            events: vec![KvEvent::AllBlocksCleared; 20],
            data_parallel_rank: Some(i64::MIN),
        },
    ]
}

#[test]
fn encode_then_decode_is_the_identity_in_every_layout() {
    for (i, batch) in batches().iter().enumerate() {
        for layout in [Layout::Positional, Layout::NamedEvents, Layout::Named] {
            let payload = encode_batch_with(batch, layout);
            let decoded = decode_batch(&payload, &Limits::default()).expect("own output decodes");
            assert_eq!(&decoded, batch, "batch {i}, {layout:?}");
        }
        assert_eq!(
            encode_batch(batch),
            encode_batch_with(batch, Layout::Positional)
        );
    }
}

#[test]
fn messages_round_trip() {
    let batch = &batches()[0];
    let frames = encode_message(b"kv@pod:5557@model", 12, batch);
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let msg = decode_message(&refs, &Limits::default()).expect("valid");
    assert_eq!(
        (msg.topic.as_slice(), msg.seq, &msg.batch),
        (&b"kv@pod:5557@model"[..], 12, batch)
    );
    assert_eq!(frames[1], [0, 0, 0, 0, 0, 0, 0, 12]);
}

#[test]
fn the_encoder_writes_msgspec_bytes() {
    // vLLM's BlockStored with int hashes, nil parent, no DP rank (a two-element batch).
    let batch = EventBatch {
        ts: 1.5,
        events: vec![
            KvEvent::BlockStored(stored(
                vec![BlockHash::Int(300)],
                None,
                vec![1, 200, 70_000, 5],
            )),
            KvEvent::BlockRemoved(BlockRemoved {
                block_hashes: vec![bytes(7, 32)],
                medium: Some(Medium::Gpu),
                group_idx: None,
            }),
            KvEvent::AllBlocksCleared,
        ],
        data_parallel_rank: None,
    };
    let stored_bytes = Mp::new()
        .arr(7)
        .s("BlockStored")
        .ints(&[300])
        .nil()
        .ints(&[1, 200, 70_000, 5])
        .u(4)
        .nil()
        .s("GPU");
    let removed = Mp::new()
        .arr(3)
        .s("BlockRemoved")
        .arr(1)
        .bin(&[7; 32])
        .s("GPU")
        .done();
    let expected = Mp::new()
        .arr(2)
        .f(1.5)
        .arr(3)
        .raw(&stored_bytes.done())
        .raw(&removed);
    let expected = expected.arr(1).s("AllBlocksCleared").done();
    assert_eq!(encode_batch(&batch), expected);

    // The named layout: tag first under "type", lora_name always present.
    let named = Mp::new()
        .map(3)
        .s("ts")
        .f(1.5)
        .s("events")
        .arr(1)
        .map(8)
        .s("type")
        .s("BlockStored");
    let named = named
        .s("block_hashes")
        .ints(&[300])
        .s("parent_block_hash")
        .nil()
        .s("token_ids")
        .ints(&[1, 200, 70_000, 5]);
    let named = named
        .s("block_size")
        .u(4)
        .s("lora_id")
        .nil()
        .s("medium")
        .s("GPU")
        .s("lora_name")
        .nil();
    let named = named.s("data_parallel_rank").u(0).done();
    let one = EventBatch {
        events: vec![batch.events[0].clone()],
        data_parallel_rank: Some(0),
        ..batch
    };
    assert_eq!(encode_batch_with(&one, Layout::Named), named);
}

#[test]
fn extra_trailing_fields_decode_to_the_same_batch() {
    let batch = EventBatch {
        ts: 2.0,
        events: vec![
            KvEvent::BlockStored(stored(
                vec![BlockHash::Int(1)],
                Some(BlockHash::Int(9)),
                vec![1, 2, 3, 4],
            )),
            KvEvent::BlockRemoved(BlockRemoved {
                block_hashes: vec![BlockHash::Int(1)],
                medium: None,
                group_idx: None,
            }),
        ],
        data_parallel_rank: Some(1),
    };
    // The same batch as a newer publisher might send it: more fields everywhere (lora_name nil,
    // extra_keys, and no group_idx, which stays None because it is not an int).
    let ev = Mp::new()
        .arr(10)
        .s("BlockStored")
        .ints(&[1])
        .u(9)
        .ints(&[1, 2, 3, 4])
        .u(4)
        .nil()
        .s("GPU");
    let ev = ev.nil().arr(1).nil().s("not-a-group").done();
    let removed = Mp::new()
        .arr(4)
        .s("BlockRemoved")
        .ints(&[1])
        .nil()
        .s("x")
        .done();
    let payload = Mp::new()
        .arr(5)
        .f(2.0)
        .arr(2)
        .raw(&ev)
        .raw(&removed)
        .u(1)
        .map(0)
        .arr(0)
        .done();
    assert_eq!(
        decode_batch(&payload, &Limits::default()).expect("valid"),
        batch
    );
    assert_eq!(
        decode_batch(&encode_batch(&batch), &Limits::default()).expect("valid"),
        batch
    );
}
