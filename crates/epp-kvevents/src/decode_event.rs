//! Decoding one event, positional (`[tag, fields...]`) or named (`{"type": tag, field: ..}`).
//!
//! Field order of the positional form (vLLM `BlockStored`): `block_hashes, parent_block_hash,
//! token_ids, block_size, lora_id, medium, lora_name, extra_keys, group_idx, ...`; of
//! `BlockRemoved`: `block_hashes, medium, group_idx, ...`. The first six fields of `BlockStored`
//! and the first two of `BlockRemoved` are type-checked strictly; the later extension fields are
//! taken when their type fits and skipped otherwise, since other publishers (SGLang) put other
//! things at those positions.

use crate::error::DecodeError;
use crate::event::{BlockHash, BlockRemoved, BlockStored, KvEvent, Medium};
use crate::reader::{Int, Kind, Reader};
use crate::wire::{Limits, map_key};

const EVENT: &str = "KVEventBatch.events[]";
const TAG: &str = "KVCacheEvent.type";

/// At most this many hashes or events are allocated for up front: a 72-byte hash or a
/// 200-byte event can be claimed with one byte of input, so a larger claim grows as it is read.
pub(crate) const PREALLOCATED: usize = 1024;

const S_HASHES: &str = "BlockStored.block_hashes";
const S_PARENT: &str = "BlockStored.parent_block_hash";
const S_TOKENS: &str = "BlockStored.token_ids";
const S_BLOCK_SIZE: &str = "BlockStored.block_size";
const S_LORA_ID: &str = "BlockStored.lora_id";
const S_MEDIUM: &str = "BlockStored.medium";
const S_LORA_NAME: &str = "BlockStored.lora_name";
const S_GROUP: &str = "BlockStored.group_idx";
const R_HASHES: &str = "BlockRemoved.block_hashes";
const R_MEDIUM: &str = "BlockRemoved.medium";
const R_GROUP: &str = "BlockRemoved.group_idx";

const HASHES_TYPE: &str = "array of ints or bytes";

pub(crate) fn decode_event(r: &mut Reader<'_>, limits: &Limits) -> Result<KvEvent, DecodeError> {
    match r.peek_kind(EVENT)? {
        Kind::Array => positional_event(r, limits),
        Kind::Map => named_event(r, limits),
        _ => Err(DecodeError::WrongType {
            field: EVENT,
            expected: "array or map",
        }),
    }
}

// === positional ===

fn positional_event(r: &mut Reader<'_>, limits: &Limits) -> Result<KvEvent, DecodeError> {
    let n = r.array_len(EVENT, "array")?;
    if n == 0 {
        return Err(DecodeError::MissingField { field: TAG });
    }
    let tag = r.str(TAG, "string")?;
    let (event, used) = match tag {
        "BlockStored" => positional_stored(r, n - 1, limits)?,
        "BlockRemoved" => positional_removed(r, n - 1, limits)?,
        "AllBlocksCleared" => (KvEvent::AllBlocksCleared, 0),
        other => (
            KvEvent::Unknown {
                tag: other.to_owned(),
            },
            0,
        ),
    };
    for _ in used..n - 1 {
        r.skip(EVENT)?;
    }
    Ok(event)
}

/// Reads the fields present of `n`; returns the event and how many fields it consumed.
fn positional_stored(
    r: &mut Reader<'_>,
    n: usize,
    limits: &Limits,
) -> Result<(KvEvent, usize), DecodeError> {
    let required = [S_HASHES, S_PARENT, S_TOKENS, S_BLOCK_SIZE];
    if n < required.len() {
        return Err(DecodeError::MissingField { field: required[n] });
    }
    let mut event = BlockStored {
        block_hashes: hashes(r, S_HASHES, limits)?,
        parent_block_hash: opt_hash(r, S_PARENT)?,
        token_ids: tokens(r, S_TOKENS, limits)?,
        block_size: block_size(r)?,
        lora_id: None,
        medium: None,
        lora_name: None,
        group_idx: None,
    };
    let mut used = 4;
    if n > used {
        event.lora_id = opt_i64(r, S_LORA_ID)?;
        used += 1;
    }
    if n > used {
        event.medium = opt_medium(r, S_MEDIUM)?;
        used += 1;
    }
    if n > used {
        event.lora_name = lenient_str(r, S_LORA_NAME)?;
        used += 1;
    }
    if n > used + 1 {
        r.skip(EVENT)?; // extra_keys
        event.group_idx = lenient_i64(r, S_GROUP)?;
        used += 2;
    }
    Ok((KvEvent::BlockStored(event), used))
}

fn positional_removed(
    r: &mut Reader<'_>,
    n: usize,
    limits: &Limits,
) -> Result<(KvEvent, usize), DecodeError> {
    if n == 0 {
        return Err(DecodeError::MissingField { field: R_HASHES });
    }
    let mut event = BlockRemoved {
        block_hashes: hashes(r, R_HASHES, limits)?,
        medium: None,
        group_idx: None,
    };
    let mut used = 1;
    if n > used {
        event.medium = opt_medium(r, R_MEDIUM)?;
        used += 1;
    }
    if n > used {
        event.group_idx = lenient_i64(r, R_GROUP)?;
        used += 1;
    }
    Ok((KvEvent::BlockRemoved(event), used))
}

// === named ===

fn named_event(r: &mut Reader<'_>, limits: &Limits) -> Result<KvEvent, DecodeError> {
    let start = r.position();
    let n = r.map_len(EVENT, "map")?;
    if n == 0 {
        return Err(DecodeError::MissingField { field: TAG });
    }
    let body = r.position();
    // msgspec writes the tag first; when another producer did not, find it and come back.
    let (tag, remaining) = match map_key(r, EVENT)? {
        Some("type") => (r.str(TAG, "string")?, n - 1),
        _ => {
            r.seek(start);
            let tag = find_tag(r)?;
            r.seek(body);
            (tag, n)
        }
    };
    match tag {
        "BlockStored" => named_stored(r, remaining, limits),
        "BlockRemoved" => named_removed(r, remaining, limits),
        other => {
            let event = match other {
                "AllBlocksCleared" => KvEvent::AllBlocksCleared,
                _ => KvEvent::Unknown {
                    tag: other.to_owned(),
                },
            };
            for _ in 0..remaining {
                r.skip(EVENT)?;
                r.skip(EVENT)?;
            }
            Ok(event)
        }
    }
}

/// Scans a whole map for its `"type"` entry; leaves the reader after the map.
fn find_tag<'a>(r: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
    let n = r.map_len(EVENT, "map")?;
    let mut tag = None;
    for _ in 0..n {
        match map_key(r, EVENT)? {
            Some("type") => tag = Some(r.str(TAG, "string")?),
            _ => r.skip(EVENT)?,
        }
    }
    tag.ok_or(DecodeError::MissingField { field: TAG })
}

fn named_stored(r: &mut Reader<'_>, n: usize, limits: &Limits) -> Result<KvEvent, DecodeError> {
    let (mut block_hashes, mut token_ids, mut size) = (None, None, None);
    let mut event = BlockStored {
        block_hashes: Vec::new(),
        parent_block_hash: None,
        token_ids: Vec::new(),
        block_size: 0,
        lora_id: None,
        medium: None,
        lora_name: None,
        group_idx: None,
    };
    for _ in 0..n {
        match map_key(r, EVENT)? {
            Some("block_hashes") => block_hashes = Some(hashes(r, S_HASHES, limits)?),
            Some("parent_block_hash") => event.parent_block_hash = opt_hash(r, S_PARENT)?,
            Some("token_ids") => token_ids = Some(tokens(r, S_TOKENS, limits)?),
            Some("block_size") => size = Some(block_size(r)?),
            Some("lora_id") => event.lora_id = opt_i64(r, S_LORA_ID)?,
            Some("medium") => event.medium = opt_medium(r, S_MEDIUM)?,
            Some("lora_name") => event.lora_name = lenient_str(r, S_LORA_NAME)?,
            Some("group_idx") => event.group_idx = lenient_i64(r, S_GROUP)?,
            _ => r.skip(EVENT)?,
        }
    }
    event.block_hashes = block_hashes.ok_or(DecodeError::MissingField { field: S_HASHES })?;
    event.token_ids = token_ids.ok_or(DecodeError::MissingField { field: S_TOKENS })?;
    event.block_size = size.ok_or(DecodeError::MissingField {
        field: S_BLOCK_SIZE,
    })?;
    Ok(KvEvent::BlockStored(event))
}

fn named_removed(r: &mut Reader<'_>, n: usize, limits: &Limits) -> Result<KvEvent, DecodeError> {
    let mut block_hashes = None;
    let mut event = BlockRemoved {
        block_hashes: Vec::new(),
        medium: None,
        group_idx: None,
    };
    for _ in 0..n {
        match map_key(r, EVENT)? {
            Some("block_hashes") => block_hashes = Some(hashes(r, R_HASHES, limits)?),
            Some("medium") => event.medium = opt_medium(r, R_MEDIUM)?,
            Some("group_idx") => event.group_idx = lenient_i64(r, R_GROUP)?,
            _ => r.skip(EVENT)?,
        }
    }
    event.block_hashes = block_hashes.ok_or(DecodeError::MissingField { field: R_HASHES })?;
    Ok(KvEvent::BlockRemoved(event))
}

// === fields ===

fn hash(
    r: &mut Reader<'_>,
    field: &'static str,
    expected: &'static str,
) -> Result<BlockHash, DecodeError> {
    match r.peek_kind(field)? {
        Kind::Bin => {
            let bytes = r.bin(field, expected)?;
            BlockHash::from_bytes(bytes).ok_or(DecodeError::TooLarge { what: field })
        }
        _ => match r.int(field, expected)? {
            Int::Unsigned(v) => Ok(BlockHash::Int(v)),
            Int::Signed(v) => Ok(BlockHash::Int(v as u64)),
        },
    }
}

fn opt_hash(r: &mut Reader<'_>, field: &'static str) -> Result<Option<BlockHash>, DecodeError> {
    if r.eat_nil() {
        return Ok(None);
    }
    hash(r, field, "int, bytes or nil").map(Some)
}

fn hashes(
    r: &mut Reader<'_>,
    field: &'static str,
    limits: &Limits,
) -> Result<Vec<BlockHash>, DecodeError> {
    let n = r.array_len(field, HASHES_TYPE)?;
    if n > limits.max_hashes_per_event {
        return Err(DecodeError::TooLarge { what: field });
    }
    let mut out = Vec::with_capacity(n.min(PREALLOCATED));
    for _ in 0..n {
        out.push(hash(r, field, HASHES_TYPE)?);
    }
    Ok(out)
}

fn tokens(
    r: &mut Reader<'_>,
    field: &'static str,
    limits: &Limits,
) -> Result<Vec<u32>, DecodeError> {
    const EXPECTED: &str = "array of ints in 0..2^32";
    let n = r.array_len(field, EXPECTED)?;
    if n > limits.max_tokens_per_event {
        return Err(DecodeError::TooLarge { what: field });
    }
    let mut out = Vec::with_capacity(n);
    if !r.u32s(n, &mut out) {
        // Truncation reads as malformed, anything else as the wrong type.
        r.int(field, EXPECTED)?;
        return Err(DecodeError::WrongType {
            field,
            expected: EXPECTED,
        });
    }
    Ok(out)
}

fn block_size(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    const EXPECTED: &str = "int in 0..2^32";
    match r.int(S_BLOCK_SIZE, EXPECTED)? {
        Int::Unsigned(v) => u32::try_from(v).ok(),
        Int::Signed(_) => None,
    }
    .ok_or(DecodeError::WrongType {
        field: S_BLOCK_SIZE,
        expected: EXPECTED,
    })
}

fn opt_i64(r: &mut Reader<'_>, field: &'static str) -> Result<Option<i64>, DecodeError> {
    const EXPECTED: &str = "64-bit int or nil";
    if r.eat_nil() {
        return Ok(None);
    }
    match r.int(field, EXPECTED)? {
        Int::Signed(v) => Ok(Some(v)),
        Int::Unsigned(v) => i64::try_from(v)
            .map(Some)
            .map_err(|_| DecodeError::WrongType {
                field,
                expected: EXPECTED,
            }),
    }
}

fn opt_medium(r: &mut Reader<'_>, field: &'static str) -> Result<Option<Medium>, DecodeError> {
    if r.eat_nil() {
        return Ok(None);
    }
    r.str(field, "string or nil")
        .map(|s| Some(Medium::parse(s)))
}

/// An extension field: a string when it is one, `None` (skipped) otherwise.
fn lenient_str(r: &mut Reader<'_>, field: &'static str) -> Result<Option<String>, DecodeError> {
    if r.peek_kind(field)? == Kind::Str {
        return r.str(field, "string").map(|s| Some(s.to_owned()));
    }
    r.skip(field)?;
    Ok(None)
}

/// An extension field: a 64-bit int when it is one, `None` (skipped) otherwise.
fn lenient_i64(r: &mut Reader<'_>, field: &'static str) -> Result<Option<i64>, DecodeError> {
    if r.peek_kind(field)? == Kind::Int {
        return Ok(match r.int(field, "int")? {
            Int::Signed(v) => Some(v),
            Int::Unsigned(v) => i64::try_from(v).ok(),
        });
    }
    r.skip(field)?;
    Ok(None)
}
