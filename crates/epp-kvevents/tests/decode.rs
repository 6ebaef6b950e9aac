//! The decoder against msgpack built by hand with `rmp`: every event shape, both hash forms,
//! both layouts, old and new field counts, wrong types, truncation and oversized claims.

mod common;

use common::{Mp, batch3, stored_gpu};
use epp_kvevents::{
    BlockHash, BlockRemoved, BlockStored, DecodeError, KvEvent, Limits, Medium, decode_batch,
    decode_message, decode_replay_message,
};

fn decode(payload: &[u8]) -> Result<epp_kvevents::EventBatch, DecodeError> {
    decode_batch(payload, &Limits::default())
}

fn stored(event: &KvEvent) -> &BlockStored {
    match event {
        KvEvent::BlockStored(s) => s,
        other => panic!("expected BlockStored, got {other:?}"),
    }
}

fn wrong_type_field(payload: &[u8]) -> &'static str {
    match decode(payload) {
        Err(DecodeError::WrongType { field, .. }) => field,
        other => panic!("expected WrongType, got {other:?}"),
    }
}

#[test]
fn every_event_shape_positional() {
    let removed = Mp::new()
        .arr(3)
        .s("BlockRemoved")
        .ints(&[11, 12])
        .s("CPU")
        .done();
    let cleared = Mp::new().arr(1).s("AllBlocksCleared").done();
    let payload = batch3(
        &[
            stored_gpu(&[11, 12], Some(10), &[1, 2, 3, 4], 2),
            removed,
            cleared,
        ],
        Some(3),
    );
    let batch = decode(&payload).expect("valid batch");
    assert_eq!(batch.ts, 1.5);
    assert_eq!(batch.data_parallel_rank, Some(3));
    assert_eq!(
        batch.events,
        vec![
            KvEvent::BlockStored(BlockStored {
                block_hashes: vec![BlockHash::Int(11), BlockHash::Int(12)],
                parent_block_hash: Some(BlockHash::Int(10)),
                token_ids: vec![1, 2, 3, 4],
                block_size: 2,
                lora_id: None,
                medium: Some(Medium::Gpu),
                lora_name: None,
                group_idx: None,
            }),
            KvEvent::BlockRemoved(BlockRemoved {
                block_hashes: vec![BlockHash::Int(11), BlockHash::Int(12)],
                medium: Some(Medium::Cpu),
                group_idx: None,
            }),
            KvEvent::AllBlocksCleared,
        ]
    );
}

#[test]
fn older_versions_without_medium_and_two_element_batches() {
    // vLLM 0.9: BlockStored has five fields, BlockRemoved one; the batch is [ts, events].
    let old = Mp::new()
        .arr(6)
        .s("BlockStored")
        .ints(&[5])
        .nil()
        .ints(&[9; 16])
        .u(16)
        .i(2)
        .done();
    let removed = Mp::new().arr(2).s("BlockRemoved").ints(&[5]).done();
    let payload = Mp::new()
        .arr(2)
        .f(7.0)
        .arr(2)
        .raw(&old)
        .raw(&removed)
        .done();
    let batch = decode(&payload).expect("valid");
    assert_eq!(batch.data_parallel_rank, None);
    let s = stored(&batch.events[0]);
    assert_eq!(
        (s.lora_id, &s.medium, s.parent_block_hash),
        (Some(2), &None, None)
    );
    assert_eq!(s.token_ids.len(), 16);
    match &batch.events[1] {
        KvEvent::BlockRemoved(r) => {
            assert_eq!((r.medium.as_ref(), r.block_hashes.len()), (None, 1))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bytes_hashes_and_nil_parent() {
    let h1 = [0xabu8; 32];
    let h2: Vec<u8> = (0..32).collect();
    let event = Mp::new()
        .arr(7)
        .s("BlockStored")
        .arr(2)
        .bin(&h1)
        .bin(&h2)
        .nil();
    let event = event.ints(&[1, 2]).u(1).nil().s("GPU").done();
    let removed = Mp::new()
        .arr(3)
        .s("BlockRemoved")
        .arr(1)
        .bin(&h2)
        .nil()
        .done();
    let batch = decode(&batch3(&[event, removed], Some(0))).expect("valid");
    let s = stored(&batch.events[0]);
    assert_eq!(s.parent_block_hash, None);
    assert_eq!(
        s.block_hashes[0],
        BlockHash::from_bytes(&h1).expect("32 bytes")
    );
    assert_eq!(
        s.block_hashes[1].digest(),
        BlockHash::from_bytes(&h2).expect("32").digest()
    );
    assert_ne!(s.block_hashes[0].digest(), s.block_hashes[1].digest());
    match &batch.events[1] {
        KvEvent::BlockRemoved(r) => assert_eq!(r.block_hashes, vec![s.block_hashes[1]]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn integer_hashes_in_every_width_and_sign() {
    let event = Mp::new()
        .arr(7)
        .s("BlockStored")
        .arr(4)
        .i(-1)
        .i(-1_000_000_000_000)
        .u64(7)
        .u(u64::MAX);
    let event = event.i(-5).ints(&[0; 8]).u(2).nil().nil().done();
    let batch = decode(&batch3(&[event], None)).expect("valid");
    let s = stored(&batch.events[0]);
    assert_eq!(
        s.block_hashes,
        vec![
            BlockHash::Int(u64::MAX),
            BlockHash::Int((-1_000_000_000_000i64) as u64),
            BlockHash::Int(7),
            BlockHash::Int(u64::MAX),
        ]
    );
    assert_eq!(s.parent_block_hash, Some(BlockHash::Int((-5i64) as u64)));
    assert_eq!(BlockHash::Int(42).digest(), 42);
}

#[test]
fn unknown_tags_are_kept_and_the_rest_of_the_batch_decodes() {
    let unknown = Mp::new()
        .arr(4)
        .s("BlockPinned")
        .ints(&[1, 2])
        .map(1)
        .s("k")
        .arr(0)
        .s("x")
        .done();
    let cleared = Mp::new().arr(1).s("AllBlocksCleared").done();
    let batch = decode(&batch3(&[unknown, cleared], Some(1))).expect("valid");
    assert_eq!(
        batch.events,
        vec![
            KvEvent::Unknown {
                tag: "BlockPinned".into()
            },
            KvEvent::AllBlocksCleared
        ]
    );
}

#[test]
fn later_fields_are_read_or_ignored() {
    // Newer vLLM: lora_name, extra_keys, group_idx, kv_cache_spec_kind, and then a field no
    // version has sent yet; the batch has a fourth element too.
    let ev = Mp::new()
        .arr(13)
        .s("BlockStored")
        .ints(&[1])
        .u(0)
        .ints(&[4, 5])
        .u(2)
        .i(3)
        .s("GPU");
    let ev = ev
        .s("sql-lora")
        .arr(1)
        .arr(2)
        .s("mm")
        .u(9)
        .u(1)
        .s("sliding_window");
    let ev = ev.u(4096).map(1).s("future").arr(1).f(0.5).done();
    let removed = Mp::new()
        .arr(5)
        .s("BlockRemoved")
        .ints(&[1])
        .s("GPU")
        .u(1)
        .nil()
        .done();
    let payload = Mp::new()
        .arr(4)
        .f(2.0)
        .arr(2)
        .raw(&ev)
        .raw(&removed)
        .u(0)
        .s("extra")
        .done();
    let batch = decode(&payload).expect("valid");
    let s = stored(&batch.events[0]);
    assert_eq!(
        (s.lora_id, s.lora_name.as_deref(), s.group_idx),
        (Some(3), Some("sql-lora"), Some(1))
    );
    match &batch.events[1] {
        KvEvent::BlockRemoved(r) => assert_eq!(r.group_idx, Some(1)),
        other => panic!("{other:?}"),
    }
    // SGLang puts a metadata map where vLLM has lora_name: skipped, not an error.
    let sglang = Mp::new()
        .arr(8)
        .s("BlockStored")
        .ints(&[1])
        .nil()
        .ints(&[1, 2])
        .u(2)
        .nil()
        .s("GPU");
    let sglang = sglang.map(1).s("cache_salt").s("tenant-a").done();
    let batch = decode(&batch3(&[sglang], None)).expect("valid");
    assert_eq!(stored(&batch.events[0]).lora_name, None);
}

#[test]
fn named_layout_with_the_tag_anywhere_and_unknown_keys() {
    let first = Mp::new()
        .map(9)
        .s("type")
        .s("BlockStored")
        .s("block_hashes")
        .arr(1)
        .bin(&[1; 32]);
    let first = first
        .s("parent_block_hash")
        .nil()
        .s("token_ids")
        .ints(&[7, 8])
        .s("block_size")
        .u(2);
    let first = first
        .s("lora_id")
        .nil()
        .s("medium")
        .s("GPU")
        .s("lora_name")
        .nil();
    let first = first.s("extra_keys").arr(1).nil().done();
    // The tag last, keys shuffled, an unknown key.
    let second = Mp::new()
        .map(4)
        .s("medium")
        .s("CPU")
        .s("block_hashes")
        .ints(&[3]);
    let second = second
        .s("novel")
        .arr(2)
        .u(1)
        .u(2)
        .s("type")
        .s("BlockRemoved")
        .done();
    let third = Mp::new().map(1).s("type").s("AllBlocksCleared").done();
    let fourth = Mp::new()
        .map(2)
        .s("payload")
        .u(1)
        .s("type")
        .s("Mystery")
        .done();
    let payload = Mp::new()
        .map(4)
        .s("events")
        .arr(4)
        .raw(&first)
        .raw(&second)
        .raw(&third);
    let payload = payload
        .raw(&fourth)
        .s("ts")
        .f32(3.5)
        .s("data_parallel_rank")
        .u(2)
        .s("x")
        .nil()
        .done();
    let batch = decode(&payload).expect("valid");
    assert_eq!((batch.ts, batch.data_parallel_rank), (3.5, Some(2)));
    let s = stored(&batch.events[0]);
    assert_eq!(
        (s.token_ids.as_slice(), s.block_size, s.medium.as_ref()),
        (&[7, 8][..], 2, Some(&Medium::Gpu))
    );
    assert_eq!(
        batch.events[1],
        KvEvent::BlockRemoved(BlockRemoved {
            block_hashes: vec![BlockHash::Int(3)],
            medium: Some(Medium::Cpu),
            group_idx: None
        })
    );
    assert_eq!(batch.events[2], KvEvent::AllBlocksCleared);
    assert_eq!(
        batch.events[3],
        KvEvent::Unknown {
            tag: "Mystery".into()
        }
    );
    // A positional batch of named events (what vLLM 0.26 sent).
    let batch = decode(&batch3(&[third], Some(0))).expect("valid");
    assert_eq!(batch.events, vec![KvEvent::AllBlocksCleared]);
    // An empty map is an event without a tag; what follows it is not read as its tag.
    let empty = Mp::new().map(0).done();
    let payload = Mp::new()
        .arr(2)
        .f(1.0)
        .arr(3)
        .raw(&empty)
        .s("type")
        .s("AllBlocksCleared")
        .done();
    assert_eq!(
        decode(&payload),
        Err(DecodeError::MissingField {
            field: "KVCacheEvent.type"
        })
    );
    // A named event without a tag, or without a required field.
    let untagged = Mp::new().map(1).s("block_hashes").ints(&[1]).done();
    assert_eq!(
        decode(&batch3(&[untagged], None)),
        Err(DecodeError::MissingField {
            field: "KVCacheEvent.type"
        })
    );
    let no_tokens = Mp::new()
        .map(3)
        .s("type")
        .s("BlockStored")
        .s("block_hashes")
        .ints(&[1]);
    let no_tokens = no_tokens.s("block_size").u(2).done();
    assert_eq!(
        decode(&batch3(&[no_tokens], None)),
        Err(DecodeError::MissingField {
            field: "BlockStored.token_ids"
        })
    );
}

#[test]
fn wrong_types_name_the_field() {
    let ok_tokens = [1u64, 2];
    let tokens_str = Mp::new()
        .arr(7)
        .s("BlockStored")
        .ints(&[1])
        .nil()
        .s("12")
        .u(2)
        .nil()
        .nil()
        .done();
    assert_eq!(
        wrong_type_field(&batch3(&[tokens_str], None)),
        "BlockStored.token_ids"
    );
    let negative = Mp::new()
        .arr(7)
        .s("BlockStored")
        .ints(&[1])
        .nil()
        .arr(1)
        .i(-3)
        .u(1)
        .nil()
        .nil()
        .done();
    assert_eq!(
        wrong_type_field(&batch3(&[negative], None)),
        "BlockStored.token_ids"
    );
    let too_big = Mp::new()
        .arr(7)
        .s("BlockStored")
        .ints(&[1])
        .nil()
        .ints(&[1 << 33])
        .u(1)
        .nil()
        .nil()
        .done();
    assert_eq!(
        wrong_type_field(&batch3(&[too_big], None)),
        "BlockStored.token_ids"
    );
    let hash_str = Mp::new()
        .arr(7)
        .s("BlockStored")
        .arr(1)
        .s("h")
        .nil()
        .ints(&ok_tokens)
        .u(2)
        .nil()
        .nil()
        .done();
    assert_eq!(
        wrong_type_field(&batch3(&[hash_str], None)),
        "BlockStored.block_hashes"
    );
    let hashes_map = Mp::new().arr(3).s("BlockRemoved").map(0).nil().done();
    assert_eq!(
        wrong_type_field(&batch3(&[hashes_map], None)),
        "BlockRemoved.block_hashes"
    );
    let parent_float = Mp::new()
        .arr(7)
        .s("BlockStored")
        .ints(&[1])
        .f(1.0)
        .ints(&ok_tokens)
        .u(2)
        .nil()
        .nil()
        .done();
    assert_eq!(
        wrong_type_field(&batch3(&[parent_float], None)),
        "BlockStored.parent_block_hash"
    );
    let medium_int = Mp::new()
        .arr(7)
        .s("BlockStored")
        .ints(&[1])
        .nil()
        .ints(&ok_tokens)
        .u(2)
        .nil()
        .u(1)
        .done();
    assert_eq!(
        wrong_type_field(&batch3(&[medium_int], None)),
        "BlockStored.medium"
    );
    let lora_str = Mp::new()
        .arr(7)
        .s("BlockStored")
        .ints(&[1])
        .nil()
        .ints(&ok_tokens)
        .u(2)
        .s("a")
        .nil()
        .done();
    assert_eq!(
        wrong_type_field(&batch3(&[lora_str], None)),
        "BlockStored.lora_id"
    );
    let size_neg = Mp::new()
        .arr(7)
        .s("BlockStored")
        .ints(&[1])
        .nil()
        .ints(&ok_tokens)
        .i(-2)
        .nil()
        .nil()
        .done();
    assert_eq!(
        wrong_type_field(&batch3(&[size_neg], None)),
        "BlockStored.block_size"
    );
    let tag_int = Mp::new().arr(1).u(3).done();
    assert_eq!(
        wrong_type_field(&batch3(&[tag_int], None)),
        "KVCacheEvent.type"
    );
    let event_int = Mp::new().u(3).done();
    assert_eq!(
        wrong_type_field(&batch3(&[event_int], None)),
        "KVEventBatch.events[]"
    );
    assert_eq!(
        wrong_type_field(&Mp::new().arr(2).s("now").arr(0).done()),
        "KVEventBatch.ts"
    );
    assert_eq!(
        wrong_type_field(&Mp::new().arr(2).f(1.0).u(0).done()),
        "KVEventBatch.events"
    );
    assert_eq!(
        wrong_type_field(&Mp::new().arr(3).f(1.0).arr(0).s("0").done()),
        "KVEventBatch.data_parallel_rank"
    );
    assert_eq!(
        wrong_type_field(&Mp::new().s("batch").done()),
        "KVEventBatch"
    );
    let err = decode(&batch3(
        &[Mp::new()
            .arr(7)
            .s("BlockStored")
            .ints(&[1])
            .nil()
            .s("x")
            .u(2)
            .nil()
            .nil()
            .done()],
        None,
    ))
    .expect_err("wrong type");
    assert_eq!(
        err.to_string(),
        "BlockStored.token_ids: expected array of ints in 0..2^32"
    );
    assert_eq!(err.reason(), "wrong_type");
}

#[test]
fn missing_required_fields() {
    let short = Mp::new()
        .arr(4)
        .s("BlockStored")
        .ints(&[1])
        .nil()
        .ints(&[1])
        .done();
    assert_eq!(
        decode(&batch3(&[short], None)),
        Err(DecodeError::MissingField {
            field: "BlockStored.block_size"
        })
    );
    let bare = Mp::new().arr(1).s("BlockRemoved").done();
    assert_eq!(
        decode(&batch3(&[bare], None)),
        Err(DecodeError::MissingField {
            field: "BlockRemoved.block_hashes"
        })
    );
    let empty = Mp::new().arr(0).done();
    assert_eq!(
        decode(&batch3(&[empty], None)),
        Err(DecodeError::MissingField {
            field: "KVCacheEvent.type"
        })
    );
    assert_eq!(
        decode(&Mp::new().arr(1).f(1.0).done()).map_err(|e| e.reason()),
        Err("missing_field")
    );
}

#[test]
fn every_truncation_of_a_valid_payload_is_an_error() {
    let h = [7u8; 32];
    let ev = Mp::new()
        .arr(7)
        .s("BlockStored")
        .arr(2)
        .bin(&h)
        .u64(9)
        .u(1)
        .ints(&[300, 70_000, 5, 1 << 31]);
    let ev = ev.u(2).i(-1).s("GPU").done();
    let removed = Mp::new()
        .map(3)
        .s("type")
        .s("BlockRemoved")
        .s("block_hashes")
        .ints(&[1])
        .s("medium")
        .nil()
        .done();
    let payload = batch3(&[ev, removed], Some(70_000));
    decode(&payload).expect("the whole payload is valid");
    for cut in 0..payload.len() {
        let err = decode(&payload[..cut]).expect_err("a strict prefix is not a batch");
        assert!(
            matches!(err.reason(), "malformed" | "missing_field"),
            "cut {cut}: {err:?}"
        );
    }
    let mut trailing = payload.clone();
    trailing.push(0xc0);
    assert_eq!(decode(&trailing).map_err(|e| e.reason()), Err("malformed"));
}

#[test]
fn huge_claimed_lengths_are_refused_before_allocating() {
    // An events array claiming 2^32 - 1 entries in a few bytes.
    let payload = Mp::new()
        .arr(2)
        .f(1.0)
        .raw(&[0xdd, 0xff, 0xff, 0xff, 0xff])
        .done();
    assert_eq!(decode(&payload).map_err(|e| e.reason()), Err("malformed"));
    // A token array claiming 2^32 - 1 entries, a bin of 4 GiB, a map of 2^32 - 1 entries.
    let tokens = Mp::new()
        .arr(7)
        .s("BlockStored")
        .ints(&[1])
        .nil()
        .raw(&[0xdd, 0xff, 0xff, 0xff, 0xfe])
        .done();
    assert!(decode(&batch3(&[tokens], None)).is_err());
    let bin = Mp::new()
        .arr(3)
        .s("BlockRemoved")
        .arr(1)
        .raw(&[0xc6, 0xff, 0xff, 0xff, 0xff])
        .done();
    assert!(decode(&batch3(&[bin], None)).is_err());
    let map = Mp::new().raw(&[0xdf, 0xff, 0xff, 0xff, 0xff]).done();
    assert!(decode(&map).is_err());
    // Within the input but past the limits.
    let limits = Limits {
        max_events_per_batch: 2,
        max_hashes_per_event: 3,
        max_tokens_per_event: 4,
        ..Limits::default()
    };
    let cleared = Mp::new().arr(1).s("AllBlocksCleared").done();
    let too_many = batch3(&[cleared.clone(), cleared.clone(), cleared], None);
    assert_eq!(
        decode_batch(&too_many, &limits),
        Err(DecodeError::TooLarge {
            what: "KVEventBatch.events"
        })
    );
    let hashes = Mp::new()
        .arr(2)
        .s("BlockRemoved")
        .ints(&[1, 2, 3, 4])
        .done();
    assert_eq!(
        decode_batch(&batch3(&[hashes], None), &limits),
        Err(DecodeError::TooLarge {
            what: "BlockRemoved.block_hashes"
        })
    );
    let tokens = stored_gpu(&[1], None, &[1, 2, 3, 4, 5], 5);
    assert_eq!(
        decode_batch(&batch3(&[tokens], None), &limits),
        Err(DecodeError::TooLarge {
            what: "BlockStored.token_ids"
        })
    );
    let small = Limits {
        max_payload_bytes: 8,
        ..Limits::default()
    };
    assert_eq!(
        decode_batch(&too_many, &small),
        Err(DecodeError::TooLarge { what: "payload" })
    );
    let long_hash = Mp::new()
        .arr(2)
        .s("BlockRemoved")
        .arr(1)
        .bin(&[0; 65])
        .done();
    assert_eq!(
        decode(&batch3(&[long_hash], None)),
        Err(DecodeError::TooLarge {
            what: "BlockRemoved.block_hashes"
        })
    );
}

#[test]
fn messages_frames_sequence_and_replay_terminator() {
    let payload = batch3(&[Mp::new().arr(1).s("AllBlocksCleared").done()], Some(0));
    let limits = Limits::default();
    let seq = 41u64.to_be_bytes();
    let msg = decode_message(&[b"kv@10.0.0.1:5557@m", &seq, &payload], &limits).expect("valid");
    assert_eq!(
        (msg.topic.as_slice(), msg.seq),
        (&b"kv@10.0.0.1:5557@m"[..], 41)
    );
    assert_eq!(msg.batch.events, vec![KvEvent::AllBlocksCleared]);
    let empty_topic = decode_message(&[b"", &seq, &payload], &limits).expect("valid");
    assert!(empty_topic.topic.is_empty());

    let reason =
        |r: Result<_, DecodeError>| r.map(|_: epp_kvevents::Message| ()).map_err(|e| e.reason());
    assert_eq!(
        reason(decode_message(&[&seq, &payload], &limits)),
        Err("bad_frames")
    );
    assert_eq!(
        reason(decode_message(&[b"", &seq, &payload, b""], &limits)),
        Err("bad_frames")
    );
    assert_eq!(
        reason(decode_message(&[b"", &seq[..7], &payload], &limits)),
        Err("bad_seq")
    );
    assert_eq!(
        reason(decode_message(&[b"", &[0xff; 8], b""], &limits)),
        Err("replay_terminator")
    );
    assert_eq!(
        reason(decode_message(&[b"", &seq, b""], &limits)),
        Err("malformed")
    );
    let long_topic = vec![b't'; limits.max_topic_bytes + 1];
    assert_eq!(
        reason(decode_message(&[&long_topic, &seq, &payload], &limits)),
        Err("too_large")
    );

    let replayed = decode_replay_message(&[&seq, &payload], &limits).expect("valid");
    assert_eq!((replayed.seq, replayed.topic.len()), (41, 0));
    assert_eq!(
        reason(decode_replay_message(&[&[0xff; 8], b""], &limits)),
        Err("replay_terminator")
    );
    assert_eq!(
        reason(decode_replay_message(&[b"", &seq, &payload], &limits)),
        Err("bad_frames")
    );
}

#[test]
fn timestamps_as_float32_float64_or_int() {
    for (ts, expect) in [
        (Mp::new().f32(2.5).done(), 2.5),
        (Mp::new().f(1_790_000_000.125).done(), 1_790_000_000.125),
        (Mp::new().u(1_790_000_000).done(), 1_790_000_000.0),
        (Mp::new().i(-2).done(), -2.0),
    ] {
        let payload = Mp::new().arr(2).raw(&ts).arr(0).done();
        assert_eq!(decode(&payload).expect("valid").ts, expect);
    }
}
