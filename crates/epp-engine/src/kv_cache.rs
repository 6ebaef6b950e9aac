//! The KV block pool with prefix caching, after vLLM V1's `BlockPool` and `KVCacheManager`.
//!
//! * Blocks hold `block_size` tokens and are refcounted. A block whose refcount drops to 0 stays
//!   cached (its hash still maps to it) and joins the tail of an LRU free queue; allocation pops
//!   the queue's head, evicting that block's hash.
//! * A request's blocks are freed tail first, so its tail blocks are evicted first.
//! * Block hashes chain: `h_i = xxh64(LE64(h_{i-1}) ‖ block bytes)` with `h_{-1}` = xxh64 of the
//!   model or adapter name, so equal text under different adapters never shares blocks.
//! * Usage = 1 − free/total, where "free" includes cached blocks with refcount 0 (vLLM
//!   `BlockPool.get_usage`).
//!
//! * With events on ([`KvCache::enable_events`]), indexing and eviction are reported as
//!   [`CacheEvent`]s, as vLLM's `BlockPool` reports them; off, the only cost is one `Option`
//!   check per call.
//!
//! Invariant: every block is either in the free queue (refcount 0) or allocated (refcount ≥ 1),
//! so allocated + free = total; [`KvCache::check_invariants`] verifies it.

use std::collections::{BTreeSet, HashMap};

use xxhash_rust::xxh64::{Xxh64, xxh64};

use crate::events::{CacheEvent, EventBuffer};

/// Index of a block in the pool.
pub type BlockId = u32;

const NIL: BlockId = BlockId::MAX;

/// The hash chain's starting value for a model or adapter name.
pub fn hash_seed(model: &str) -> u64 {
    xxh64(model.as_bytes(), 0)
}

/// The hash of a block of token bytes, chained on the previous block's hash.
pub fn chain_hash(previous: u64, block: &[u8]) -> u64 {
    let mut hasher = Xxh64::new(0);
    hasher.update(&previous.to_le_bytes());
    hasher.update(block);
    hasher.digest()
}

/// The hash of a block of token ids (each as 4 little-endian bytes), chained on the previous
/// block's hash: equal to [`chain_hash`] over the same bytes.
pub fn chain_hash_tokens(previous: u64, block: &[u32]) -> u64 {
    let mut hasher = Xxh64::new(0);
    hasher.update(&previous.to_le_bytes());
    let mut buffer = [0u8; 256];
    for chunk in block.chunks(64) {
        for (bytes, token) in buffer.chunks_exact_mut(4).zip(chunk) {
            bytes.copy_from_slice(&token.to_le_bytes());
        }
        hasher.update(&buffer[..chunk.len() * 4]);
    }
    hasher.digest()
}

#[derive(Clone, Debug)]
struct Block {
    hash: Option<u64>,
    ref_count: u32,
    prev: BlockId,
    next: BlockId,
}

/// A fixed pool of KV blocks with a prefix-hash index and an LRU free queue.
#[derive(Debug)]
pub struct KvCache {
    block_size: usize,
    blocks: Vec<Block>,
    head: BlockId,
    tail: BlockId,
    num_free: usize,
    cached: HashMap<u64, BlockId>,
    evictions: u64,
    events: Option<EventBuffer>,
}

impl KvCache {
    /// A pool of `num_blocks` empty blocks of `block_size` tokens (both ≥ 1, and
    /// `num_blocks < u32::MAX`).
    pub fn new(num_blocks: usize, block_size: usize) -> Self {
        let num_blocks = num_blocks.min(NIL as usize - 1);
        let blocks = (0..num_blocks)
            .map(|i| Block {
                hash: None,
                ref_count: 0,
                prev: if i == 0 { NIL } else { i as BlockId - 1 },
                next: if i + 1 == num_blocks {
                    NIL
                } else {
                    i as BlockId + 1
                },
            })
            .collect();
        let last = num_blocks.checked_sub(1).map_or(NIL, |l| l as BlockId);
        Self {
            block_size,
            blocks,
            head: if num_blocks == 0 { NIL } else { 0 },
            tail: last,
            num_free: num_blocks,
            cached: HashMap::new(),
            evictions: 0,
            events: None,
        }
    }

    /// Tokens per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks in the pool.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Blocks with refcount 0 (empty or cached).
    pub fn num_free(&self) -> usize {
        self.num_free
    }

    /// Blocks whose hash is still indexed (allocated or free).
    pub fn num_cached(&self) -> usize {
        self.cached.len()
    }

    /// Cached blocks reused for a new allocation so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Fraction of blocks in use, 1 − free/total, in [0, 1].
    pub fn usage(&self) -> f64 {
        if self.blocks.is_empty() {
            return 0.0;
        }
        1.0 - self.num_free as f64 / self.blocks.len() as f64
    }

    /// The refcount of a block (0 when free).
    pub fn ref_count(&self, id: BlockId) -> u32 {
        self.blocks.get(id as usize).map_or(0, |b| b.ref_count)
    }

    /// The cached blocks of the longest prefix of `hashes` that is in the index, in order.
    pub fn find_cached(&self, hashes: &[u64], out: &mut Vec<BlockId>) {
        out.clear();
        out.extend(hashes.iter().map_while(|h| self.cached.get(h).copied()));
    }

    /// Grows `table` to cover `num_tokens` tokens: first takes `hits` (cached prefix blocks,
    /// only when `table` is empty), then new blocks from the free queue. All or nothing: on
    /// `false` nothing changed.
    pub fn allocate_slots(
        &mut self,
        table: &mut Vec<BlockId>,
        hits: &[BlockId],
        num_tokens: usize,
    ) -> bool {
        let needed = num_tokens.div_ceil(self.block_size);
        let new = needed.saturating_sub(table.len() + hits.len());
        let revived = hits.iter().filter(|&&id| self.ref_count(id) == 0).count();
        if new + revived > self.num_free {
            return false;
        }
        for &id in hits {
            self.acquire(id);
            table.push(id);
        }
        for _ in 0..new {
            match self.pop_free() {
                Some(id) => table.push(id),
                None => return false, // unreachable: counted above
            }
        }
        true
    }

    /// Releases a request's blocks, tail first; blocks reaching refcount 0 join the LRU tail.
    pub fn free(&mut self, table: &[BlockId]) {
        for &id in table.iter().rev() {
            let Some(block) = self.blocks.get_mut(id as usize) else {
                continue;
            };
            if block.ref_count == 0 {
                continue; // already free: a double free changes nothing
            }
            block.ref_count -= 1;
            if block.ref_count == 0 {
                self.push_free(id);
            }
        }
    }

    /// Indexes a full, computed block under `hash`. A block that already has a hash, or a hash
    /// already held by another block, is left alone (the duplicate stays uncached). Records no
    /// event: the engine indexes through [`KvCache::cache_blocks`].
    pub fn cache_block(&mut self, id: BlockId, hash: u64) {
        self.try_cache(id, hash);
    }

    /// Indexes consecutive full, computed blocks of one sequence (vLLM `cache_full_blocks`):
    /// `hashes[i]` for `blocks[i]`, `parent` the hash of the block before the first (`None` at
    /// the start of the sequence), `tokens` the tokens of exactly these blocks. With events on,
    /// records one [`CacheEvent::Stored`] for the run; a duplicate left uncached splits it,
    /// so every event is a chain whose parent is indexed.
    pub fn cache_blocks(
        &mut self,
        blocks: &[BlockId],
        hashes: &[u64],
        parent: Option<u64>,
        tokens: &[u32],
    ) {
        let n = blocks.len().min(hashes.len());
        if self.events.is_none() {
            for (&id, &hash) in blocks.iter().zip(hashes) {
                self.try_cache(id, hash);
            }
            return;
        }
        let mut start = 0;
        for i in 0..n {
            if !self.try_cache(blocks[i], hashes[i]) {
                self.record_stored(hashes, start..i, parent, tokens);
                start = i + 1;
            }
        }
        self.record_stored(hashes, start..n, parent, tokens);
    }

    /// Forgets every cached hash (vLLM `reset_prefix_cache`). Refused, changing nothing, while
    /// any block is in use, as vLLM refuses; records [`CacheEvent::AllCleared`] on success.
    pub fn reset_prefix_cache(&mut self) -> bool {
        if self.num_free != self.blocks.len() {
            return false;
        }
        self.cached.clear();
        for block in &mut self.blocks {
            block.hash = None;
        }
        self.record(CacheEvent::AllCleared);
        true
    }

    /// Starts recording [`CacheEvent`]s, keeping at most `capacity` undrained ones (when
    /// already recording, only the capacity changes).
    pub fn enable_events(&mut self, capacity: usize) {
        match &mut self.events {
            Some(events) => events.set_capacity(capacity),
            None => self.events = Some(EventBuffer::new(capacity)),
        }
    }

    /// The events recorded since the last call, oldest first (none when events are off).
    pub fn take_events(&mut self) -> impl Iterator<Item = CacheEvent> + '_ {
        self.events.iter_mut().flat_map(EventBuffer::drain)
    }

    /// Events discarded because the buffer overflowed.
    pub fn events_dropped(&self) -> u64 {
        self.events.as_ref().map_or(0, EventBuffer::dropped)
    }

    /// Every hash in the index (allocated or free blocks), in order.
    pub fn cached_hashes(&self) -> BTreeSet<u64> {
        self.cached.keys().copied().collect()
    }

    /// The free queue from LRU head to tail (for tests and debugging).
    pub fn free_queue(&self) -> Vec<BlockId> {
        let mut order = Vec::with_capacity(self.num_free);
        let mut cursor = self.head;
        while cursor != NIL {
            order.push(cursor);
            cursor = self.blocks[cursor as usize].next;
        }
        order
    }

    /// Checks the pool's invariants; the error names the first one broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        let queue = self.free_queue();
        if queue.len() != self.num_free {
            return Err(format!(
                "queue has {} blocks, num_free {}",
                queue.len(),
                self.num_free
            ));
        }
        let zero = self.blocks.iter().filter(|b| b.ref_count == 0).count();
        if zero != self.num_free || queue.iter().any(|&id| self.ref_count(id) != 0) {
            return Err(format!(
                "{zero} blocks at refcount 0 but {} free",
                self.num_free
            ));
        }
        let allocated = self.blocks.len() - zero;
        if allocated + self.num_free != self.blocks.len() {
            return Err("allocated + free != total".to_owned());
        }
        for (&hash, &id) in &self.cached {
            if self.blocks[id as usize].hash != Some(hash) {
                return Err(format!(
                    "index maps {hash:x} to block {id} with another hash"
                ));
            }
        }
        Ok(())
    }

    /// Indexes one block; `false` when it stays uncached (a duplicate or an already hashed
    /// block).
    fn try_cache(&mut self, id: BlockId, hash: u64) -> bool {
        if self.cached.contains_key(&hash) {
            return false;
        }
        match self.blocks.get_mut(id as usize) {
            Some(block) if block.hash.is_none() => {
                block.hash = Some(hash);
                self.cached.insert(hash, id);
                true
            }
            _ => false,
        }
    }

    /// Records a `Stored` event for `hashes[run]`, if the run is not empty.
    fn record_stored(
        &mut self,
        hashes: &[u64],
        run: std::ops::Range<usize>,
        parent: Option<u64>,
        tokens: &[u32],
    ) {
        if run.is_empty() {
            return;
        }
        let block_size = self.block_size;
        let parent_hash = match run.start {
            0 => parent,
            i => Some(hashes[i - 1]),
        };
        let token_ids = tokens
            .get(run.start * block_size..run.end * block_size)
            .unwrap_or_default()
            .to_vec();
        self.record(CacheEvent::Stored {
            block_hashes: hashes[run].to_vec(),
            parent_hash,
            token_ids,
            block_size,
        });
    }

    fn record(&mut self, event: CacheEvent) {
        if let Some(events) = &mut self.events {
            events.push(event);
        }
    }

    fn acquire(&mut self, id: BlockId) {
        if self.ref_count(id) == 0 {
            self.unlink(id);
        }
        self.blocks[id as usize].ref_count += 1;
    }

    fn pop_free(&mut self) -> Option<BlockId> {
        let id = self.head;
        if id == NIL {
            return None;
        }
        self.unlink(id);
        let block = &mut self.blocks[id as usize];
        block.ref_count = 1;
        if let Some(hash) = block.hash.take() {
            self.cached.remove(&hash);
            self.evictions += 1;
            self.record(CacheEvent::Removed {
                block_hashes: vec![hash],
            });
        }
        Some(id)
    }

    fn push_free(&mut self, id: BlockId) {
        let tail = self.tail;
        let block = &mut self.blocks[id as usize];
        block.prev = tail;
        block.next = NIL;
        match tail {
            NIL => self.head = id,
            t => self.blocks[t as usize].next = id,
        }
        self.tail = id;
        self.num_free += 1;
    }

    fn unlink(&mut self, id: BlockId) {
        let Block { prev, next, .. } = self.blocks[id as usize];
        match prev {
            NIL => self.head = next,
            p => self.blocks[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.blocks[n as usize].prev = prev,
        }
        let block = &mut self.blocks[id as usize];
        block.prev = NIL;
        block.next = NIL;
        self.num_free -= 1;
    }
}

#[cfg(test)]
mod tests;
