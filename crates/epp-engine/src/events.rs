//! KV-cache events, as vLLM's `BlockPool` queues them for its event publisher.
//!
//! * [`CacheEvent::Stored`]: full blocks were committed to the prefix index — one event per
//!   sequence per step for the consecutive blocks newly indexed (`cache_full_blocks`).
//! * [`CacheEvent::Removed`]: a cached block was popped for reuse while still holding its hash
//!   (`_maybe_evict_cached_block`, one event per evicted block).
//! * [`CacheEvent::AllCleared`]: the index was reset (`reset_prefix_cache`), or events were
//!   lost because nobody drained the buffer: a consumer drops everything it knows.
//!
//! Replaying the stream (insert on `Stored`, delete on `Removed`, clear on `AllCleared`) gives
//! exactly the set of hashes the index holds, as long as no event was dropped.

/// One change to the prefix index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheEvent {
    /// Blocks newly indexed, oldest first (a chain: each hash covers its parent).
    Stored {
        /// The blocks' hashes.
        block_hashes: Vec<u64>,
        /// The hash of the block before the first one; `None` at the start of a sequence.
        parent_hash: Option<u64>,
        /// The tokens of exactly these blocks (`block_size × block_hashes.len()`).
        token_ids: Vec<u32>,
        /// Tokens per block.
        block_size: usize,
    },
    /// Hashes evicted from the index.
    Removed {
        /// The evicted hashes.
        block_hashes: Vec<u64>,
    },
    /// Every hash is gone (a reset, or lost events: resynchronise).
    AllCleared,
}

/// Events buffered when nobody drains them, before the oldest are discarded.
pub const DEFAULT_EVENT_CAPACITY: usize = 65_536;

/// A bounded event queue. On overflow it discards what it holds and starts again with
/// [`CacheEvent::AllCleared`], so the stream a consumer reads stays consistent: it forgets
/// what it knew and learns again from the following events.
#[derive(Debug)]
pub(crate) struct EventBuffer {
    events: Vec<CacheEvent>,
    capacity: usize,
    dropped: u64,
}

impl EventBuffer {
    /// A buffer of at most `capacity` events (at least 2: the reset marker and one event).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            events: Vec::new(),
            capacity: capacity.max(2),
            dropped: 0,
        }
    }

    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(2);
    }

    pub(crate) fn push(&mut self, event: CacheEvent) {
        if self.events.len() >= self.capacity {
            self.dropped += self.events.len() as u64;
            self.events.clear();
            self.events.push(CacheEvent::AllCleared);
        }
        self.events.push(event);
    }

    /// Events discarded on overflow so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn drain(&mut self) -> std::vec::Drain<'_, CacheEvent> {
        self.events.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removed(h: u64) -> CacheEvent {
        CacheEvent::Removed {
            block_hashes: vec![h],
        }
    }

    #[test]
    fn overflow_discards_the_buffer_and_restarts_with_all_cleared() {
        let mut buffer = EventBuffer::new(3);
        for h in 0..3 {
            buffer.push(removed(h));
        }
        assert_eq!(buffer.dropped(), 0);
        buffer.push(removed(3));
        assert_eq!(buffer.dropped(), 3);
        assert_eq!(buffer.len(), 2);
        let events: Vec<_> = buffer.drain().collect();
        assert_eq!(events, vec![CacheEvent::AllCleared, removed(3)]);
        buffer.push(removed(4));
        assert_eq!(buffer.drain().collect::<Vec<_>>(), vec![removed(4)]);
    }
}
