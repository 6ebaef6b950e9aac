//! Decoding vLLM's ZMQ messages: the frames, the sequence number and the msgpack batch.
//!
//! Both encodings vLLM has used are accepted, at both levels (batch and event), chosen by the
//! msgpack type of each value:
//! * positional (msgspec `array_like=True`, vLLM before PR #42892): the batch is
//!   `[ts, events, data_parallel_rank?, ...]` and an event `[tag, field, ...]`;
//! * named (after it): maps keyed by field name, the event's tag under `"type"`.
//!
//! Fields an older version did not send default to `None`; fields a newer version adds are
//! skipped. One wrong-typed field fails the whole batch (the caller counts it by
//! [`DecodeError::reason`] and treats the batch as lost); an unknown event tag does not.

use crate::decode_event::{PREALLOCATED, decode_event};
use crate::error::DecodeError;
use crate::event::{EventBatch, KvEvent};
use crate::reader::{Int, Kind, Reader};

/// The sequence number vLLM reserves for "end of replay" (−1 as a signed 64-bit integer).
pub const REPLAY_TERMINATOR_SEQ: u64 = u64::MAX;

/// Bounds on what one message may make the decoder hold. A bound is checked against the
/// length a msgpack header claims before anything is sized from it; a claim the remaining input
/// could not even hold (one byte per element) is `malformed` before it is compared with a bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_payload_bytes: usize,
    pub max_events_per_batch: usize,
    pub max_hashes_per_event: usize,
    pub max_tokens_per_event: usize,
    pub max_topic_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 16 << 20,
            max_events_per_batch: 65_536,
            max_hashes_per_event: 65_536,
            max_tokens_per_event: 1 << 22,
            max_topic_bytes: 4096,
        }
    }
}

/// One decoded message of the PUB socket (or of a replay, whose topic is empty).
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub topic: Vec<u8>,
    pub seq: u64,
    pub batch: EventBatch,
}

/// Decodes `[topic, seq (8 bytes big-endian), payload]`.
///
/// The all-`0xFF` sequence number returns [`DecodeError::ReplayTerminator`] whatever the
/// payload (vLLM sends an empty one): it marks the end of a replay, never a batch, so a caller
/// that expects it matches on that variant.
pub fn decode_message(frames: &[&[u8]], limits: &Limits) -> Result<Message, DecodeError> {
    let [topic, seq, payload] = frames else {
        return Err(DecodeError::BadFrames {
            expected: 3,
            got: frames.len(),
        });
    };
    if topic.len() > limits.max_topic_bytes {
        return Err(DecodeError::TooLarge { what: "topic" });
    }
    let seq = decode_seq(seq)?;
    let batch = decode_batch(payload, limits)?;
    Ok(Message {
        topic: topic.to_vec(),
        seq,
        batch,
    })
}

/// Decodes a reply of vLLM's replay socket, `[seq, payload]` (the ROUTER strips the identity and
/// delimiter). The topic of the returned message is empty. The terminator is
/// [`DecodeError::ReplayTerminator`], as in [`decode_message`].
pub fn decode_replay_message(frames: &[&[u8]], limits: &Limits) -> Result<Message, DecodeError> {
    let [seq, payload] = frames else {
        return Err(DecodeError::BadFrames {
            expected: 2,
            got: frames.len(),
        });
    };
    let seq = decode_seq(seq)?;
    let batch = decode_batch(payload, limits)?;
    Ok(Message {
        topic: Vec::new(),
        seq,
        batch,
    })
}

/// The 8-byte big-endian sequence frame.
pub fn decode_seq(frame: &[u8]) -> Result<u64, DecodeError> {
    let bytes: [u8; 8] = frame
        .try_into()
        .map_err(|_| DecodeError::BadSeq { len: frame.len() })?;
    match u64::from_be_bytes(bytes) {
        REPLAY_TERMINATOR_SEQ => Err(DecodeError::ReplayTerminator),
        seq => Ok(seq),
    }
}

/// Decodes one msgpack `KVEventBatch`, positional or named (see the module docs). The payload
/// must hold exactly one value.
pub fn decode_batch(payload: &[u8], limits: &Limits) -> Result<EventBatch, DecodeError> {
    if payload.len() > limits.max_payload_bytes {
        return Err(DecodeError::TooLarge { what: "payload" });
    }
    let mut r = Reader::new(payload);
    let batch = match r.peek_kind(BATCH)? {
        Kind::Array => positional_batch(&mut r, limits)?,
        Kind::Map => named_batch(&mut r, limits)?,
        _ => {
            return Err(DecodeError::WrongType {
                field: BATCH,
                expected: "array or map",
            });
        }
    };
    if r.remaining() != 0 {
        return Err(DecodeError::Malformed {
            field: BATCH,
            detail: "trailing bytes",
        });
    }
    Ok(batch)
}

const BATCH: &str = "KVEventBatch";
const TS: &str = "KVEventBatch.ts";
const EVENTS: &str = "KVEventBatch.events";
const DP_RANK: &str = "KVEventBatch.data_parallel_rank";

/// `[ts, events, data_parallel_rank?, ...ignored]`.
fn positional_batch(r: &mut Reader<'_>, limits: &Limits) -> Result<EventBatch, DecodeError> {
    let n = r.array_len(BATCH, "array")?;
    if n < 2 {
        return Err(DecodeError::MissingField {
            field: if n == 0 { TS } else { EVENTS },
        });
    }
    let ts = r.number(TS, "float")?;
    let events = events(r, limits)?;
    let data_parallel_rank = if n >= 3 { dp_rank(r)? } else { None };
    for _ in 3..n {
        r.skip(BATCH)?;
    }
    Ok(EventBatch {
        ts,
        events,
        data_parallel_rank,
    })
}

/// `{"ts": .., "events": [..], "data_parallel_rank": ..}`, in any order, unknown keys skipped.
fn named_batch(r: &mut Reader<'_>, limits: &Limits) -> Result<EventBatch, DecodeError> {
    let n = r.map_len(BATCH, "map")?;
    let (mut ts, mut events_seen, mut data_parallel_rank) = (None, None, None);
    for _ in 0..n {
        match map_key(r, BATCH)? {
            Some("ts") => ts = Some(r.number(TS, "float")?),
            Some("events") => events_seen = Some(events(r, limits)?),
            Some("data_parallel_rank") => data_parallel_rank = dp_rank(r)?,
            _ => r.skip(BATCH)?,
        }
    }
    Ok(EventBatch {
        ts: ts.ok_or(DecodeError::MissingField { field: TS })?,
        events: events_seen.ok_or(DecodeError::MissingField { field: EVENTS })?,
        data_parallel_rank,
    })
}

fn events(r: &mut Reader<'_>, limits: &Limits) -> Result<Vec<KvEvent>, DecodeError> {
    let n = r.array_len(EVENTS, "array")?;
    if n > limits.max_events_per_batch {
        return Err(DecodeError::TooLarge { what: EVENTS });
    }
    let mut out = Vec::with_capacity(n.min(PREALLOCATED));
    for _ in 0..n {
        out.push(decode_event(r, limits)?);
    }
    Ok(out)
}

fn dp_rank(r: &mut Reader<'_>) -> Result<Option<i64>, DecodeError> {
    if r.eat_nil() {
        return Ok(None);
    }
    match r.int(DP_RANK, "int or nil")? {
        Int::Signed(v) => Ok(Some(v)),
        Int::Unsigned(v) => i64::try_from(v)
            .map(Some)
            .map_err(|_| DecodeError::WrongType {
                field: DP_RANK,
                expected: "int or nil",
            }),
    }
}

/// A map key: `Some` for a string, `None` (after skipping it) for any other type, whose entry
/// the caller then skips.
pub(crate) fn map_key<'a>(
    r: &mut Reader<'a>,
    field: &'static str,
) -> Result<Option<&'a str>, DecodeError> {
    if r.peek_kind(field)? == Kind::Str {
        r.str(field, "string key").map(Some)
    } else {
        r.skip(field)?;
        Ok(None)
    }
}
