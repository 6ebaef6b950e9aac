//! The bounded prefix index: which endpoints probably hold which prompt-prefix blocks.
//!
//! Conceptually this is upstream's `indexer`: a map `hash → set<EndpointId>` plus, per
//! endpoint, an LRU of the hashes it holds with a fixed capacity. On top of that it enforces a
//! hard bound on the total number of `(hash, endpoint)` entries (and so on memory), which
//! upstream lacked, and it forgets an endpoint completely when asked to.
//!
//! # Layout (about 24 + 5..15 bytes per entry, see [`PrefixIndexLimits::BYTES_PER_ENTRY_BOUND`])
//!
//! * `nodes: Vec<Node>` — a slab with one 24-byte node per entry: the block hash, the links of
//!   the owning endpoint's LRU list, the link to the next node of the same hash (the "chain",
//!   one node per endpoint holding that hash, usually 1–3 long), and the owning endpoint slot.
//!   Freed nodes are kept on a free list threaded through `lru_next`. The slab grows with
//!   `reserve_exact` and never past `max_total_entries`, so it carries no doubling slack at
//!   the bound.
//! * `table: HashTable<u32>` — hash → first node of its chain. The table stores only the
//!   4-byte node index (5 bytes per bucket with the control byte); hashing reads the node.
//!   Block hashes are XXH64 outputs of client-controlled text, so instead of using them
//!   directly as the table hash they go through a keyed folded multiply with per-index random
//!   keys (about a nanosecond): clients cannot aim prompts at one probe sequence.
//! * `slots: Vec<Slot>` plus `by_id: HashMap<EndpointId, u32>` — per endpoint the LRU
//!   head/tail/length; slots of removed endpoints are reused.
//!
//! Table growth is steered by this module rather than left to hashbrown's default, which
//! doubles a table that is over half full whenever deleted-entry tombstones exhaust its spare
//! room: under steady churn at the bound that can leave 4.6 buckets per entry. Here a table that
//! already has room for 1.25 × `max_total_entries` is rebuilt at the same size instead, which
//! keeps the table at ≤ 2.86 buckets per allowed entry.
//!
//! # Latency
//!
//! Every operation is O(hashes × holders) under the lock, with these exceptions that remain:
//! * growing the slab (`reserve_exact`, a realloc/copy of up to 24 B × entries) and growing or
//!   rebuilding the table (an O(buckets) rehash) happen under the write lock — about log2(N)
//!   times while the index fills, and a same-size table rebuild at most once per ~N/4
//!   evictions afterwards. At 1 M entries one such step costs a few milliseconds.
//! * choosing the victim for the global bound scans the endpoint slots (O(endpoints) per
//!   evicted entry; ~100 ns at 100 endpoints).
//! * [`PrefixIndex::remove_endpoint`] frees an endpoint's entries in chunks of
//!   [`REMOVE_CHUNK`] and yields the lock fairly between chunks.
//!
//! During a rebuild or growth both the old and the new allocation exist for a moment, as with
//! any `Vec` or hash table; the bound applies to the steady state.

#[cfg(test)]
mod invariants;
mod slab;
mod table;

use hashbrown::{HashMap, HashTable};
use parking_lot::{RwLock, RwLockWriteGuard};

use crate::datastore::EndpointId;
use crate::prefix::index::slab::{Node, Slot, SlotState};
use crate::prefix::index::table::Mixer;

/// A walk over block hashes that counts per endpoint slot into its last argument.
type CountingWalk = fn(&State, &[u64], &mut Vec<(EndpointId, u32)>);

/// "No node" / "no slot" marker in the u32 links.
const NIL: u32 = u32::MAX;
/// Node indices are u32 and `NIL` is reserved.
const MAX_ENTRIES_LIMIT: usize = (u32::MAX - 1) as usize;
/// First slab allocation, in nodes.
const MIN_SLAB: usize = 64;
/// Entries freed per write-lock hold by [`PrefixIndex::remove_endpoint`].
pub const REMOVE_CHUNK: usize = 4096;
/// `match_prefix` counts holders with a linear search until this many distinct endpoints have
/// matched, then switches to one counter per endpoint slot.
const SPARSE_MAX: usize = 8;
/// Block hashes looked up in the table before their chains are walked.
const LOOKUP_BATCH: usize = 32;

/// Size limits of a [`PrefixIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixIndexLimits {
    /// Entries kept per endpoint (upstream `lruCapacityPerServer`); its least recently used
    /// entry is evicted beyond this. 0 stores nothing.
    pub lru_capacity_per_endpoint: usize,
    /// Hard bound on `(hash, endpoint)` entries over all endpoints. Beyond it the least
    /// recently used entry of the endpoint holding the most entries is evicted (ties: the
    /// smallest `EndpointId`). 0 stores nothing. Values above `u32::MAX - 1` are clamped.
    pub max_total_entries: usize,
}

impl PrefixIndexLimits {
    /// Upper bound of [`PrefixIndex::memory_bytes`] per allowed entry at steady state: 24 bytes
    /// of slab node plus at most 2.86 table buckets of 5 bytes (14.3 bytes), rounded up with
    /// room for endpoint bookkeeping.
    pub const BYTES_PER_ENTRY_BOUND: usize = 40;
    /// Fixed part of the memory budget set aside by [`Self::from_memory_budget`] for the index
    /// header, minimum table sizes and the bookkeeping of up to about a hundred endpoints.
    pub const FIXED_OVERHEAD_BYTES: usize = 16 * 1024;

    /// Limits whose `max_total_entries` keeps [`PrefixIndex::memory_bytes`] within
    /// `budget_bytes` (steady state; see [`Self::BYTES_PER_ENTRY_BOUND`]).
    pub fn from_memory_budget(lru_capacity_per_endpoint: usize, budget_bytes: usize) -> Self {
        Self {
            lru_capacity_per_endpoint,
            max_total_entries: budget_bytes.saturating_sub(Self::FIXED_OVERHEAD_BYTES)
                / Self::BYTES_PER_ENTRY_BOUND,
        }
    }
}

#[derive(Debug)]
struct State {
    nodes: Vec<Node>,
    free_node: u32,
    table: HashTable<u32>,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    by_id: HashMap<EndpointId, u32>,
    /// Live nodes (= entries), including those of dying slots.
    total: usize,
    lru_cap: u32,
    max_entries: usize,
    mixer: Mixer,
}

/// The shared prefix index of one `prefix-cache-scorer` instance. Share it as
/// `Arc<PrefixIndex>`; all methods take `&self`.
pub struct PrefixIndex {
    limits: PrefixIndexLimits,
    state: RwLock<State>,
}

impl std::fmt::Debug for PrefixIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.read();
        f.debug_struct("PrefixIndex")
            .field("limits", &self.limits)
            .field("entries", &st.total)
            .field("distinct_hashes", &st.table.len())
            .field("endpoints", &st.by_id.len())
            .finish()
    }
}

impl PrefixIndex {
    /// An empty index. Nothing is allocated until the first entry is added.
    pub fn new(limits: PrefixIndexLimits) -> Self {
        let limits = PrefixIndexLimits {
            lru_capacity_per_endpoint: limits.lru_capacity_per_endpoint.min(MAX_ENTRIES_LIMIT),
            max_total_entries: limits.max_total_entries.min(MAX_ENTRIES_LIMIT),
        };
        let state = State {
            nodes: Vec::new(),
            free_node: NIL,
            table: HashTable::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::new(),
            total: 0,
            // Clamped above, so the conversion cannot fail.
            lru_cap: u32::try_from(limits.lru_capacity_per_endpoint).unwrap_or(NIL - 1),
            max_entries: limits.max_total_entries,
            mixer: Mixer::random(),
        };
        Self {
            limits,
            state: RwLock::new(state),
        }
    }

    /// The limits in force (after clamping).
    pub fn limits(&self) -> PrefixIndexLimits {
        self.limits
    }

    /// Records that `endpoint` now holds the blocks `hashes` (in prompt order): each hash is
    /// inserted for the endpoint if absent, else made its most recently used. Evicts the
    /// endpoint's least recently used entry when its LRU is full, and the least recently used
    /// entry of the fullest endpoint when the global bound is reached.
    pub fn add(&self, hashes: &[u64], endpoint: EndpointId) {
        if hashes.is_empty()
            || self.limits.lru_capacity_per_endpoint == 0
            || self.limits.max_total_entries == 0
        {
            return;
        }
        let mut st = self.state.write();
        let slot = st.slot_for(endpoint);
        for &h in hashes {
            st.touch(h, slot);
        }
    }

    /// Upstream `matchLongestPrefix`: walks `hashes` in order, stops at the first hash no
    /// endpoint holds, and credits every endpoint holding each hash before that with one
    /// block. `out` is cleared, then gets `(endpoint, matched blocks)` for every endpoint with
    /// at least one block, in no particular order.
    ///
    /// Nothing is allocated while the read lock is held; `out` is grown beforehand (outside
    /// the lock) to the number of endpoint slots if it is smaller, so a reused `out` makes the
    /// call allocation-free.
    pub fn match_prefix(&self, hashes: &[u64], out: &mut Vec<(EndpointId, u32)>) {
        self.count_matches(hashes, out, State::match_into);
    }

    /// For each endpoint, how many leading blocks of `hashes` it holds without a gap (the
    /// precise scorer's "longest consecutive matched prefix"; unlike [`Self::match_prefix`],
    /// another endpoint holding a block does not carry this one's count past its own gap).
    /// `out` is cleared, then gets `(endpoint, blocks)` for every endpoint with at least one.
    /// Allocation-free under the lock when `out` is reused, as `match_prefix`.
    pub fn match_consecutive(&self, hashes: &[u64], out: &mut Vec<(EndpointId, u32)>) {
        self.count_matches(hashes, out, State::consecutive_into);
    }

    /// Runs a counting walk under the read lock with `out` cleared and grown beforehand
    /// (outside the lock) to one entry per endpoint slot, so the walk never allocates.
    fn count_matches(&self, hashes: &[u64], out: &mut Vec<(EndpointId, u32)>, walk: CountingWalk) {
        out.clear();
        if hashes.is_empty() {
            return;
        }
        loop {
            let need = {
                let st = self.state.read();
                let need = st.slots.len();
                if out.capacity() >= need {
                    walk(&st, hashes, out);
                    return;
                }
                need
            };
            out.reserve(need);
        }
    }

    /// Forgets that `endpoint` holds `hashes` (a server reported evicting them); hashes it
    /// does not hold are ignored. Other endpoints' entries for the same hashes stay.
    pub fn remove(&self, hashes: &[u64], endpoint: EndpointId) {
        if hashes.is_empty() {
            return;
        }
        let mut st = self.state.write();
        let Some(&slot) = st.by_id.get(&endpoint) else {
            return;
        };
        for &h in hashes {
            st.remove_entry(h, slot);
        }
    }

    /// Forgets everything `endpoint` holds (it left the pool). Entries are freed in chunks of
    /// [`REMOVE_CHUNK`], yielding the write lock to waiting threads between chunks; matches
    /// stop reporting the endpoint from the first chunk on, and a concurrent `add` for the
    /// same id starts a fresh, empty LRU.
    pub fn remove_endpoint(&self, endpoint: EndpointId) {
        let mut st = self.state.write();
        let Some(slot) = st.by_id.remove(&endpoint) else {
            return;
        };
        st.slots[slot as usize].state = SlotState::Dying;
        while !st.drain_slot(slot, REMOVE_CHUNK) {
            RwLockWriteGuard::bump(&mut st);
        }
    }

    /// Total `(hash, endpoint)` entries.
    pub fn len(&self) -> usize {
        self.state.read().total
    }

    /// Whether the index holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Distinct block hashes held by at least one endpoint.
    pub fn distinct_hashes(&self) -> usize {
        self.state.read().table.len()
    }

    /// Endpoints known to the index (added and not removed; possibly with no entries left).
    pub fn endpoint_count(&self) -> usize {
        self.state.read().by_id.len()
    }

    /// Entries held by `endpoint` (0 if unknown).
    pub fn endpoint_entries(&self, endpoint: EndpointId) -> usize {
        let st = self.state.read();
        st.by_id
            .get(&endpoint)
            .map_or(0, |&s| st.slots[s as usize].len as usize)
    }

    /// Bytes occupied by the index: its header plus the capacity of every allocation it owns
    /// (slab nodes, table buckets and control bytes, endpoint slots and id map).
    pub fn memory_bytes(&self) -> usize {
        let st = self.state.read();
        std::mem::size_of::<Self>()
            + st.nodes.capacity() * std::mem::size_of::<Node>()
            + st.table.allocation_size()
            + st.slots.capacity() * std::mem::size_of::<Slot>()
            + st.free_slots.capacity() * std::mem::size_of::<u32>()
            + st.by_id.allocation_size()
    }
}

impl State {
    /// Insert `(h, slot)` or make it the slot's most recently used entry.
    fn touch(&mut self, h: u64, slot: u32) {
        let mut n = self.head_of(h).unwrap_or(NIL);
        while n != NIL {
            let node = self.nodes[n as usize];
            if node.slot == slot {
                self.lru_bump(slot, n);
                return;
            }
            n = node.chain_next;
        }
        // A new entry: make room first (this may change the chain of `h`).
        if self.slots[slot as usize].len >= self.lru_cap {
            self.evict_lru(slot);
        } else if self.total >= self.max_entries {
            let victim = self.victim();
            self.evict_lru(victim);
        }
        let n = self.alloc_node(h, slot);
        self.lru_push_front(slot, n);
        self.chain_insert(h, n);
        self.total += 1;
    }

    /// Removes the entry `(h, slot)` if there is one.
    fn remove_entry(&mut self, h: u64, slot: u32) {
        let mut n = self.head_of(h).unwrap_or(NIL);
        while n != NIL {
            let node = self.nodes[n as usize];
            if node.slot == slot {
                self.free_entry(slot, n);
                return;
            }
            n = node.chain_next;
        }
    }

    /// The body of `match_prefix`; `out` is empty with capacity ≥ `slots.len()`.
    fn match_into(&self, hashes: &[u64], out: &mut Vec<(EndpointId, u32)>) {
        // While counting, the id field holds the slot index.
        let mut dense = false;
        let mut heads = [NIL; LOOKUP_BATCH];
        for batch in hashes.chunks(LOOKUP_BATCH) {
            // The table lookups of a batch do not depend on each other, so their cache
            // misses overlap; each chain walk is a run of dependent loads, done after.
            let mut found = 0;
            for (head, &h) in heads.iter_mut().zip(batch) {
                let Some(n) = self.head_of(h) else { break };
                *head = n;
                found += 1;
            }
            for &head in &heads[..found] {
                self.count_chain(head, out, &mut dense);
            }
            if found < batch.len() {
                break; // the first block no endpoint holds ends every match
            }
        }
        self.slot_counts_to_ids(out);
    }

    /// The body of `match_consecutive`; `out` is empty with capacity ≥ `slots.len()`.
    fn consecutive_into(&self, hashes: &[u64], out: &mut Vec<(EndpointId, u32)>) {
        // One counter per slot (the id field holds the slot index while counting); a slot
        // advances at block i only if it held every block before.
        out.extend((0..self.slots.len()).map(|s| (EndpointId(s as u64), 0)));
        for (i, &h) in hashes.iter().enumerate() {
            let Some(mut n) = self.head_of(h) else { break };
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let mut advanced = false;
            while n != NIL {
                let node = &self.nodes[n as usize];
                let count = &mut out[node.slot as usize].1;
                if *count == i {
                    *count = i + 1;
                    advanced = true;
                }
                n = node.chain_next;
            }
            if !advanced {
                break;
            }
        }
        self.slot_counts_to_ids(out);
    }

    /// Turns `(slot index, count)` pairs into `(endpoint, count)`, dropping zero counts and
    /// slots that are no longer live.
    fn slot_counts_to_ids(&self, out: &mut Vec<(EndpointId, u32)>) {
        for e in out.iter_mut() {
            let slot = &self.slots[e.0.0 as usize];
            if slot.state != SlotState::Live {
                e.1 = 0;
            }
            e.0 = slot.id;
        }
        out.retain(|e| e.1 > 0);
    }

    /// Adds one to the count of every endpoint slot on the chain that starts at `n`.
    fn count_chain(&self, mut n: u32, out: &mut Vec<(EndpointId, u32)>, dense: &mut bool) {
        while n != NIL {
            let node = &self.nodes[n as usize];
            let s = node.slot;
            if *dense {
                out[s as usize].1 += 1;
            } else if let Some(e) = out.iter_mut().find(|e| e.0.0 == u64::from(s)) {
                e.1 += 1;
            } else if out.len() < SPARSE_MAX {
                out.push((EndpointId(u64::from(s)), 1));
            } else {
                self.densify(out);
                *dense = true;
                out[s as usize].1 += 1;
            }
            n = node.chain_next;
        }
    }

    /// Switches `out` from a short list of `(slot, count)` to one counter per slot.
    fn densify(&self, out: &mut Vec<(EndpointId, u32)>) {
        let mut saved = [(0u64, 0u32); SPARSE_MAX];
        let k = out.len();
        for (dst, e) in saved.iter_mut().zip(out.iter()) {
            *dst = (e.0.0, e.1);
        }
        out.clear();
        // Within capacity (≥ slots.len()): no allocation.
        out.extend((0..self.slots.len()).map(|s| (EndpointId(s as u64), 0)));
        for &(s, c) in &saved[..k] {
            out[s as usize].1 = c;
        }
    }
}

#[cfg(test)]
mod tests;
