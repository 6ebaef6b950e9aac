//! Block hashing of a prompt, byte-compatible in meaning with upstream v1.0.1 `hashPrompt`.
//!
//! A prompt's UTF-8 bytes are cut into blocks of `block_size` bytes (the trailing partial
//! block is ignored, as is everything past `max_blocks` blocks) and each block gets a chained
//! XXH64 (seed 0) hash:
//!
//! * `h0 = xxh64(model ‖ prompt[0..B])` — the model name keeps models apart;
//! * `h_i = xxh64(prompt[iB..(i+1)B] ‖ LE64(h_{i-1}))` for `i ≥ 1`.
//!
//! Hash `i` therefore stands for the whole prefix `prompt[0..(i+1)B]` of that model.

use xxhash_rust::xxh64::{Xxh64, xxh64};

/// Blocks up to this size are hashed from a copy on the stack (one-shot XXH64, the fastest
/// path); larger blocks go through the streaming hasher. Either way nothing is allocated.
const STACK_BLOCK_MAX: usize = 248;

/// Computes the chained block hashes of `prompt` for `model` into `out`.
///
/// `out` is cleared first, then gets one hash per full block of the prompt truncated to
/// `max_blocks * block_size` bytes. A prompt shorter than one block, a `block_size` of 0 or a
/// `max_blocks` of 0 gives no hashes. `out` is reused: no allocation once it has capacity
/// for `max_blocks` hashes.
pub fn hash_prompt(
    model: &str,
    prompt: &[u8],
    block_size: usize,
    max_blocks: usize,
    out: &mut Vec<u64>,
) {
    out.clear();
    if block_size == 0 || max_blocks == 0 || prompt.len() < block_size {
        return;
    }
    let limit = max_blocks.saturating_mul(block_size);
    let prompt = &prompt[..prompt.len().min(limit)];
    let mut blocks = prompt.chunks_exact(block_size);
    out.reserve(blocks.len());

    let mut stream = Xxh64::new(0);
    let Some(first) = blocks.next() else {
        return;
    };
    stream.update(model.as_bytes());
    stream.update(first);
    let mut prev = stream.digest();
    out.push(prev);

    if block_size <= STACK_BLOCK_MAX {
        let mut buf = [0u8; STACK_BLOCK_MAX + 8];
        let len = block_size + 8;
        for block in blocks {
            buf[..block_size].copy_from_slice(block);
            buf[block_size..len].copy_from_slice(&prev.to_le_bytes());
            prev = xxh64(&buf[..len], 0);
            out.push(prev);
        }
    } else {
        for block in blocks {
            stream.reset(0);
            stream.update(block);
            stream.update(&prev.to_le_bytes());
            prev = stream.digest();
            out.push(prev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent reference: upstream's algorithm written with one-shot hashes over
    /// freshly concatenated buffers.
    fn reference(model: &str, prompt: &[u8], b: usize, max: usize) -> Vec<u64> {
        if prompt.len() < b {
            return Vec::new();
        }
        let prompt = &prompt[..prompt.len().min(b * max)];
        let n = prompt.len() / b;
        let mut res = Vec::new();
        let mut first = model.as_bytes().to_vec();
        first.extend_from_slice(&prompt[..b]);
        res.push(xxh64(&first, 0));
        for i in 1..n {
            let mut block = prompt[i * b..(i + 1) * b].to_vec();
            block.extend_from_slice(&res[i - 1].to_le_bytes());
            res.push(xxh64(&block, 0));
        }
        res
    }

    fn hashes(model: &str, prompt: &[u8], b: usize, max: usize) -> Vec<u64> {
        let mut out = vec![42]; // must be cleared
        hash_prompt(model, prompt, b, max, &mut out);
        out
    }

    #[test]
    fn counts_and_exact_values() {
        let long: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        // (model, prompt, block size, max blocks, expected number of hashes)
        let cases: &[(&str, &[u8], usize, usize, usize)] = &[
            ("m1", b"", 4, 256, 0),
            ("m1", b"aaa", 4, 256, 0),
            ("m1", b"aaaa", 4, 256, 1),
            ("m1", b"aaaaaa", 4, 256, 1),
            ("m1", b"aaaabbbb", 4, 256, 2),
            ("m1", b"aaaabbbbcccc", 4, 256, 3),
            ("m1", b"aaaabbbbccccd", 4, 256, 3),
            ("m1", b"aaaabbbbcccc", 4, 2, 2),
            ("m1", b"aaaabbbbcccc", 4, 1, 1),
            ("m1", b"aaaabbbbcccc", 4, 0, 0),
            ("m1", b"aaaabbbbcccc", 0, 256, 0),
            ("", b"aaaabbbb", 4, 256, 2),
            ("llama", &long, 64, 256, 5000 / 64),
            ("llama", &long, 64, 10, 10),
            ("llama", &long, 1, 300, 300),
            ("llama", &long, 248, 256, 5000 / 248),
            ("llama", &long, 249, 256, 5000 / 249),
            ("llama", &long, 1000, 256, 5),
            ("llama", &long, 5000, 256, 1),
            ("llama", &long, 5001, 256, 0),
        ];
        for &(model, prompt, b, max, n) in cases {
            let got = hashes(model, prompt, b, max);
            assert_eq!(
                got.len(),
                n,
                "count for {model:?} len={} b={b} max={max}",
                prompt.len()
            );
            if b > 0 && max > 0 {
                assert_eq!(
                    got,
                    reference(model, prompt, b, max),
                    "values b={b} max={max}"
                );
            }
        }
    }

    #[test]
    fn pinned_first_hash() {
        // h0 is xxh64 over model ‖ first block, computed independently here.
        assert_eq!(hashes("m1", b"aaaaaa", 4, 256), vec![xxh64(b"m1aaaa", 0)]);
        let h0 = xxh64(b"m1aaaa", 0);
        let mut second = b"bbbb".to_vec();
        second.extend_from_slice(&h0.to_le_bytes());
        assert_eq!(
            hashes("m1", b"aaaabbbb", 4, 256),
            vec![h0, xxh64(&second, 0)]
        );
    }

    #[test]
    fn model_changes_whole_chain() {
        let a = hashes("m1", b"aaaabbbbcccc", 4, 256);
        let b = hashes("m2", b"aaaabbbbcccc", 4, 256);
        assert_eq!(a.len(), 3);
        for (x, y) in a.iter().zip(&b) {
            assert_ne!(x, y);
        }
    }

    #[test]
    fn shared_prefix_shares_leading_hashes() {
        let a = hashes("m", b"aaaabbbbccccdddd", 4, 256);
        let b = hashes("m", b"aaaabbbbxxxxdddd", 4, 256);
        assert_eq!(a[..2], b[..2]);
        // Diverging at block 2 changes block 2 and every block after it.
        assert_ne!(a[2], b[2]);
        assert_ne!(a[3], b[3]);
        // Truncation: blocks past the limit do not matter.
        let c = hashes("m", b"aaaabbbbzzzz", 4, 2);
        assert_eq!(c, a[..2]);
    }

    #[test]
    fn partial_block_ignored() {
        assert_eq!(
            hashes("m", b"aaaabbbb", 4, 256),
            hashes("m", b"aaaabbbbc", 4, 256)
        );
        assert_eq!(
            hashes("m", b"aaaabbbb", 4, 256),
            hashes("m", b"aaaabbbbccc", 4, 256)
        );
    }
}
