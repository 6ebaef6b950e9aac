//! An engine's cache event as vLLM publishes it: `epp_engine`'s [`CacheEvent`] → the
//! [`KvEvent`] a precise index applies (GPU medium, base model, integer block hashes).

use epp_engine::CacheEvent;
use epp_kvevents::{BlockHash, BlockRemoved, BlockStored, KvEvent, Medium};

/// The event vLLM would publish for `event`.
pub fn to_kv_event(event: CacheEvent) -> KvEvent {
    match event {
        CacheEvent::Stored {
            block_hashes,
            parent_hash,
            token_ids,
            block_size,
        } => KvEvent::BlockStored(BlockStored {
            block_hashes: block_hashes.into_iter().map(BlockHash::Int).collect(),
            parent_block_hash: parent_hash.map(BlockHash::Int),
            token_ids,
            block_size: u32::try_from(block_size).unwrap_or(u32::MAX),
            lora_id: None,
            medium: Some(Medium::Gpu),
            lora_name: None,
            group_idx: None,
        }),
        CacheEvent::Removed { block_hashes } => KvEvent::BlockRemoved(BlockRemoved {
            block_hashes: block_hashes.into_iter().map(BlockHash::Int).collect(),
            medium: Some(Medium::Gpu),
            group_idx: None,
        }),
        CacheEvent::AllCleared => KvEvent::AllBlocksCleared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_removed_and_cleared_map_field_for_field() {
        let stored = to_kv_event(CacheEvent::Stored {
            block_hashes: vec![7, 8],
            parent_hash: Some(6),
            token_ids: vec![1, 2, 3, 4],
            block_size: 2,
        });
        let KvEvent::BlockStored(s) = stored else {
            panic!("a BlockStored: {stored:?}");
        };
        assert_eq!(s.block_hashes, vec![BlockHash::Int(7), BlockHash::Int(8)]);
        assert_eq!(s.parent_block_hash, Some(BlockHash::Int(6)));
        assert_eq!(s.token_ids, vec![1, 2, 3, 4]);
        assert_eq!(s.block_size, 2);
        assert_eq!(s.medium, Some(Medium::Gpu));
        assert_eq!((s.lora_id, s.lora_name.as_deref()), (None, None));
        let removed = to_kv_event(CacheEvent::Removed {
            block_hashes: vec![9],
        });
        assert_eq!(
            removed,
            KvEvent::BlockRemoved(BlockRemoved {
                block_hashes: vec![BlockHash::Int(9)],
                medium: Some(Medium::Gpu),
                group_idx: None,
            })
        );
        assert_eq!(
            to_kv_event(CacheEvent::AllCleared),
            KvEvent::AllBlocksCleared
        );
    }
}
