//! vLLM KV-cache event messages: `decode_batch` on the raw bytes, and `decode_message` /
//! `decode_replay_message` on frames cut from them, under the default and tiny limits.
//!
//! Input: `[n, len_1, frame_1.., len_2, frame_2.., .., rest]` where `n % 4 + 1` is the frame
//! count and the last frame is the rest; the whole input is also decoded as one payload.
//!
//! Invariants: no panic; an error's `reason()` is one of the fixed labels; a decoded batch
//! respects the limits, and re-encoding it in every layout decodes to the same batch.
#![no_main]

use epp_kvevents::{
    DecodeError, EventBatch, KvEvent, Layout, Limits, decode_batch, decode_message,
    decode_replay_message, encode_batch_with,
};
use libfuzzer_sys::fuzz_target;

const REASONS: [&str; 7] = [
    "bad_frames",
    "bad_seq",
    "replay_terminator",
    "too_large",
    "wrong_type",
    "missing_field",
    "malformed",
];

fn limits() -> [Limits; 2] {
    let tiny = Limits {
        max_payload_bytes: 512,
        max_events_per_batch: 3,
        max_hashes_per_event: 2,
        max_tokens_per_event: 8,
        max_topic_bytes: 4,
    };
    [Limits::default(), tiny]
}

fn check(result: Result<EventBatch, DecodeError>, limits: &Limits) {
    let batch = match result {
        Ok(batch) => batch,
        Err(err) => {
            assert!(REASONS.contains(&err.reason()), "{err:?}");
            let _ = err.to_string();
            return;
        }
    };
    assert!(batch.events.len() <= limits.max_events_per_batch);
    for event in &batch.events {
        match event {
            KvEvent::BlockStored(s) => {
                assert!(s.block_hashes.len() <= limits.max_hashes_per_event);
                assert!(s.token_ids.len() <= limits.max_tokens_per_event);
            }
            KvEvent::BlockRemoved(r) => {
                assert!(r.block_hashes.len() <= limits.max_hashes_per_event)
            }
            KvEvent::AllBlocksCleared | KvEvent::Unknown { .. } => {}
        }
    }
    for layout in [Layout::Positional, Layout::NamedEvents, Layout::Named] {
        let payload = encode_batch_with(&batch, layout);
        let again = decode_batch(&payload, &Limits::default()).expect("own encoding decodes");
        // `ts` may be NaN: compare its bits.
        assert_eq!(again.ts.to_bits(), batch.ts.to_bits());
        assert_eq!(again.events, batch.events);
        assert_eq!(again.data_parallel_rank, batch.data_parallel_rank);
    }
}

/// Cuts `data` into frames as the module doc describes.
fn frames(data: &[u8]) -> Vec<&[u8]> {
    let Some((&n, mut rest)) = data.split_first() else {
        return Vec::new();
    };
    let count = usize::from(n % 4) + 1;
    let mut out = Vec::with_capacity(count);
    for _ in 1..count {
        let Some((&len, tail)) = rest.split_first() else {
            break;
        };
        let len = usize::from(len).min(tail.len());
        out.push(&tail[..len]);
        rest = &tail[len..];
    }
    out.push(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    let frames = frames(data);
    for limits in &limits() {
        check(decode_batch(data, limits), limits);
        match decode_message(&frames, limits) {
            Ok(msg) => {
                assert!(msg.topic.len() <= limits.max_topic_bytes);
                assert_ne!(msg.seq, u64::MAX);
                check(Ok(msg.batch), limits);
            }
            Err(err) => assert!(REASONS.contains(&err.reason())),
        }
        match decode_replay_message(&frames, limits) {
            Ok(msg) => check(Ok(msg.batch), limits),
            Err(err) => assert!(REASONS.contains(&err.reason())),
        }
    }
});
