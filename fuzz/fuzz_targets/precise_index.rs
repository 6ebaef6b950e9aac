//! The precise prefix index under hostile KV-event streams: arbitrary batches (decoded from
//! the input with tiny limits, or built structurally) applied to three endpoints with
//! arbitrary sequence numbers and times, interleaved with picks and scoring.
//!
//! Invariants: no panic; scores are fractions in [0, 1]; the entry count stays within the
//! budget; forgetting every endpoint leaves the index empty (no leaked claim or key).
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use epp_core::datastore::EndpointId;
use epp_core::prefix::precise::{MediumWeights, PreciseIndex, PreciseIndexConfig, Unreliable};
use epp_kvevents::{
    BlockHash, BlockRemoved, BlockStored, EventBatch, KvEvent, Limits, Medium, decode_batch,
};
use libfuzzer_sys::fuzz_target;

const BLOCK: usize = 2;
const ENDPOINTS: [EndpointId; 3] = [EndpointId(1), EndpointId(2), EndpointId(3)];

#[derive(Debug, Arbitrary)]
enum Op {
    /// Raw msgpack bytes decoded as a batch.
    Raw {
        endpoint: u8,
        seq: u8,
        at: u16,
        bytes: Vec<u8>,
    },
    Stored {
        endpoint: u8,
        seq: u8,
        at: u16,
        first: u8,
        parent: Option<u8>,
        tokens: Vec<u8>,
        cpu: bool,
        lora: bool,
    },
    Removed {
        endpoint: u8,
        seq: u8,
        at: u16,
        hashes: Vec<u8>,
        cpu: bool,
    },
    Cleared {
        endpoint: u8,
        seq: u8,
        at: u16,
    },
    Pick {
        endpoint: u8,
        at: u16,
        tokens: Vec<u8>,
    },
    Score {
        at: u16,
        tokens: Vec<u8>,
    },
    Reconnect {
        endpoint: u8,
        at: u16,
    },
    Forget {
        endpoint: u8,
    },
}

fn endpoint(e: u8) -> EndpointId {
    ENDPOINTS[usize::from(e) % ENDPOINTS.len()]
}

fn at(ms: u16) -> Duration {
    Duration::from_millis(u64::from(ms) * 10)
}

fn tokens(raw: &[u8]) -> Vec<u32> {
    raw.iter().map(|&t| u32::from(t % 8)).collect()
}

fn keys(index: &PreciseIndex, raw: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    epp_kvevents::block_keys(index.seed_for("m"), &tokens(raw), BLOCK, &mut out);
    out
}

fn batch(events: Vec<KvEvent>) -> EventBatch {
    EventBatch {
        ts: 0.0,
        events,
        data_parallel_rank: None,
    }
}

fn medium(cpu: bool) -> Option<Medium> {
    Some(if cpu { Medium::Cpu } else { Medium::Gpu })
}

fuzz_target!(|ops: Vec<Op>| {
    let config = PreciseIndexConfig {
        block_size: BLOCK,
        weights: MediumWeights::default(),
        max_bytes: 64 * PreciseIndexConfig::BYTES_PER_ENTRY,
        speculative_ttl: Duration::from_millis(500),
        silence_timeout: Duration::from_secs(1),
        recovery: Duration::from_millis(100),
    };
    let index = PreciseIndex::new(config);
    let limits = Limits {
        max_payload_bytes: 4096,
        max_events_per_batch: 8,
        max_hashes_per_event: 8,
        max_tokens_per_event: 16,
        max_topic_bytes: 4,
    };
    let mut out = Vec::new();
    for op in ops.into_iter().take(256) {
        match op {
            Op::Raw {
                endpoint: e,
                seq,
                at: t,
                bytes,
            } => {
                if let Ok(b) = decode_batch(&bytes, &limits) {
                    index.apply_batch(endpoint(e), u64::from(seq), &b, at(t));
                }
            }
            Op::Stored {
                endpoint: e,
                seq,
                at: t,
                first,
                parent,
                tokens: raw,
                cpu,
                lora,
            } => {
                let tokens = tokens(&raw);
                let blocks = tokens.len() / BLOCK;
                let event = KvEvent::BlockStored(BlockStored {
                    block_hashes: (0..blocks as u64)
                        .map(|b| BlockHash::Int(u64::from(first) + b))
                        .collect(),
                    parent_block_hash: parent.map(|p| BlockHash::Int(u64::from(p))),
                    token_ids: tokens,
                    block_size: BLOCK as u32,
                    lora_id: None,
                    medium: medium(cpu),
                    lora_name: lora.then(|| "m".to_owned()),
                    group_idx: None,
                });
                index.apply_batch(endpoint(e), u64::from(seq), &batch(vec![event]), at(t));
            }
            Op::Removed {
                endpoint: e,
                seq,
                at: t,
                hashes,
                cpu,
            } => {
                let event = KvEvent::BlockRemoved(BlockRemoved {
                    block_hashes: hashes
                        .iter()
                        .map(|&h| BlockHash::Int(u64::from(h)))
                        .collect(),
                    medium: medium(cpu),
                    group_idx: None,
                });
                index.apply_batch(endpoint(e), u64::from(seq), &batch(vec![event]), at(t));
            }
            Op::Cleared {
                endpoint: e,
                seq,
                at: t,
            } => {
                index.apply_batch(
                    endpoint(e),
                    u64::from(seq),
                    &batch(vec![KvEvent::AllBlocksCleared]),
                    at(t),
                );
            }
            Op::Pick {
                endpoint: e,
                at: t,
                tokens: raw,
            } => {
                index.add_speculative(&keys(&index, &raw), endpoint(e), at(t));
            }
            Op::Score { at: t, tokens: raw } => {
                for trust in [true, false] {
                    index.score(&keys(&index, &raw), &ENDPOINTS, at(t), trust, &mut out);
                    assert_eq!(out.len(), ENDPOINTS.len());
                    for s in out.iter().flatten() {
                        assert!((0.0..=1.0).contains(s), "score {s}");
                    }
                }
            }
            Op::Reconnect { endpoint: e, at: t } => {
                index.mark_unreliable(endpoint(e), Unreliable::Reconnect, at(t));
            }
            Op::Forget { endpoint: e } => index.forget_endpoint(endpoint(e)),
        }
        assert!(index.stats(Duration::ZERO).entries <= 64, "over the budget");
    }
    for e in ENDPOINTS {
        index.forget_endpoint(e);
    }
    let stats = index.stats(Duration::ZERO);
    assert_eq!(
        (stats.entries, stats.keys, stats.endpoints),
        (0, 0, 0),
        "{stats:?}"
    );
});
