//! The engine's cache events in vLLM's wire types: `BlockStored` with its blocks' tokens,
//! `medium: "GPU"`, no LoRA id; `BlockRemoved`; `AllBlocksCleared`.

use epp_engine::CacheEvent;
use epp_kvevents::{BlockHash, BlockRemoved, BlockStored, KvEvent, Medium};

use crate::kv_events::config::HashForm;

/// One engine event as vLLM's `BlockPool` would have queued it.
pub(crate) fn to_wire(event: CacheEvent, form: HashForm) -> KvEvent {
    match event {
        CacheEvent::Stored {
            block_hashes,
            parent_hash,
            token_ids,
            block_size,
        } => KvEvent::BlockStored(BlockStored {
            block_hashes: hashes(&block_hashes, form),
            parent_block_hash: parent_hash.map(|h| hash(h, form)),
            token_ids,
            block_size: u32::try_from(block_size).unwrap_or(u32::MAX),
            lora_id: None,
            medium: Some(Medium::Gpu),
            lora_name: None,
            group_idx: None,
        }),
        CacheEvent::Removed { block_hashes } => KvEvent::BlockRemoved(BlockRemoved {
            block_hashes: hashes(&block_hashes, form),
            medium: Some(Medium::Gpu),
            group_idx: None,
        }),
        CacheEvent::AllCleared => KvEvent::AllBlocksCleared,
    }
}

fn hashes(values: &[u64], form: HashForm) -> Vec<BlockHash> {
    values.iter().map(|&h| hash(h, form)).collect()
}

/// See [`HashForm`] for the bytes form.
pub(crate) fn hash(value: u64, form: HashForm) -> BlockHash {
    match form {
        HashForm::Int => BlockHash::Int(value),
        HashForm::Bytes32 => {
            let mut bytes = [0u8; 32];
            bytes[24..].copy_from_slice(&value.to_be_bytes());
            BlockHash::from_bytes(&bytes).unwrap_or(BlockHash::Int(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_keeps_tokens_and_marks_the_gpu() {
        let event = CacheEvent::Stored {
            block_hashes: vec![7, 8],
            parent_hash: Some(6),
            token_ids: vec![1, 2, 3, 4],
            block_size: 2,
        };
        let KvEvent::BlockStored(stored) = to_wire(event, HashForm::Int) else {
            panic!("a BlockStored");
        };
        assert_eq!(stored.block_hashes, [BlockHash::Int(7), BlockHash::Int(8)]);
        assert_eq!(stored.parent_block_hash, Some(BlockHash::Int(6)));
        assert_eq!((stored.token_ids, stored.block_size), (vec![1, 2, 3, 4], 2));
        assert_eq!((stored.lora_id, stored.medium), (None, Some(Medium::Gpu)));
    }

    #[test]
    fn bytes_form_is_the_value_as_a_256_bit_big_endian_integer() {
        let BlockHash::Bytes(bytes) = hash(0x0102_0304_0506_0708, HashForm::Bytes32) else {
            panic!("bytes");
        };
        let bytes = bytes.as_bytes();
        assert_eq!(bytes.len(), 32);
        assert!(bytes[..24].iter().all(|&b| b == 0));
        assert_eq!(bytes[24..], [1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
