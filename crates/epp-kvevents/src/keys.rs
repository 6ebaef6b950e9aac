//! Engine-independent block keys: a router's own chained hash over token blocks, so its index
//! does not depend on vLLM's hash function or `PYTHONHASHSEED`.
//!
//! The values equal `epp_engine::kv_cache`'s block hashes for the same seed and tokens
//! (`h_i = xxh64(LE64(h_{i-1}) ‖ block tokens as LE u32)`, `h_{-1}` = the seed), so a router index
//! built from these keys and our simulated engines agree.

use xxhash_rust::xxh64::{Xxh64, xxh64};

/// The chain's starting value: xxh64 of the adapter's name when the request names one, else of
/// the model's (the simulated engine's rule), so equal text under different adapters or models
/// never shares keys.
pub fn key_seed(model: &str, lora: Option<&str>) -> u64 {
    xxh64(lora.unwrap_or(model).as_bytes(), 0)
}

/// Replaces `out` with one key per full block of `tokens`; a partial tail block has no key
/// (engines cache only full blocks), nor does anything when `block_size` is 0.
pub fn block_keys(seed: u64, tokens: &[u32], block_size: usize, out: &mut Vec<u64>) {
    out.clear();
    if block_size == 0 {
        return;
    }
    let mut previous = seed;
    for block in tokens.chunks_exact(block_size) {
        previous = chain_key(previous, block);
        out.push(previous);
    }
}

/// One link of the chain: the key of `block` after the block whose key is `previous`.
pub fn chain_key(previous: u64, block: &[u32]) -> u64 {
    let mut hasher = Xxh64::new(0);
    hasher.update(&previous.to_le_bytes());
    let mut buffer = [0u8; 256];
    for chunk in block.chunks(buffer.len() / 4) {
        let bytes = &mut buffer[..chunk.len() * 4];
        for (slot, token) in bytes.chunks_exact_mut(4).zip(chunk) {
            slot.copy_from_slice(&token.to_le_bytes());
        }
        hasher.update(bytes);
    }
    hasher.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seed: u64, tokens: &[u32], block_size: usize) -> Vec<u64> {
        let mut out = vec![7, 7, 7]; // stale contents are replaced
        block_keys(seed, tokens, block_size, &mut out);
        out
    }

    #[test]
    fn a_partial_tail_block_has_no_key() {
        let tokens: Vec<u32> = (0..70).collect();
        assert_eq!(keys(1, &tokens, 16).len(), 4);
        assert_eq!(keys(1, &tokens[..64], 16), keys(1, &tokens, 16));
        assert!(keys(1, &tokens[..15], 16).is_empty());
        assert!(keys(1, &tokens, 0).is_empty());
    }

    #[test]
    fn keys_are_prefix_stable_and_chained() {
        let tokens: Vec<u32> = (0..128).map(|i| i * 7919).collect();
        let long = keys(9, &tokens, 16);
        let short = keys(9, &tokens[..48], 16);
        assert_eq!(&long[..3], &short[..]);
        // The same block after a different prefix gets a different key.
        let mut other = tokens.clone();
        other[0] += 1;
        let changed = keys(9, &other, 16);
        assert!(long.iter().zip(&changed).all(|(a, b)| a != b));
    }

    #[test]
    fn the_seed_separates_models_and_adapters() {
        let tokens: Vec<u32> = (0..64).collect();
        let a = keys(key_seed("llama", None), &tokens, 16);
        let b = keys(key_seed("qwen", None), &tokens, 16);
        let c = keys(key_seed("llama", Some("sql-lora")), &tokens, 16);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            key_seed("llama", Some("sql-lora")),
            key_seed("qwen", Some("sql-lora"))
        );
    }

    #[test]
    fn keys_equal_the_engine_block_hashes() {
        use epp_engine::kv_cache::{chain_hash_tokens, hash_seed};
        let tokens: Vec<u32> = (0..1000u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        for block_size in [1, 16, 64, 100] {
            let seed = key_seed("meta-llama/Llama-3.1-8B", None);
            assert_eq!(seed, hash_seed("meta-llama/Llama-3.1-8B"));
            let mut previous = seed;
            let engine: Vec<u64> = tokens
                .chunks_exact(block_size)
                .map(|block| {
                    previous = chain_hash_tokens(previous, block);
                    previous
                })
                .collect();
            assert_eq!(
                keys(seed, &tokens, block_size),
                engine,
                "block size {block_size}"
            );
        }
    }
}
