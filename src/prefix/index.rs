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

use std::hash::{BuildHasher, RandomState};

use hashbrown::{HashMap, HashTable};
use parking_lot::{RwLock, RwLockWriteGuard};

use crate::datastore::EndpointId;

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

/// One `(hash, endpoint)` entry. Free nodes have `slot == NIL` and link the free list
/// through `lru_next`.
#[derive(Debug, Clone, Copy)]
struct Node {
    hash: u64,
    /// Towards the most recently used end of the owning endpoint's LRU list.
    lru_prev: u32,
    /// Towards the least recently used end.
    lru_next: u32,
    /// Next node with the same hash (another endpoint).
    chain_next: u32,
    slot: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Registered in `by_id`.
    Live,
    /// Removed from `by_id`; its entries are being freed by `remove_endpoint`. Matches
    /// against it are not reported.
    Dying,
    /// On the free list.
    Free,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    id: EndpointId,
    /// Most recently used node.
    head: u32,
    /// Least recently used node (evicted first).
    tail: u32,
    len: u32,
    state: SlotState,
}

impl Slot {
    const FREE: Slot = Slot {
        id: EndpointId(0),
        head: NIL,
        tail: NIL,
        len: 0,
        state: SlotState::Free,
    };
}

/// Keyed mixing of a block hash into the table hash (a folded 64×64→128 multiply).
#[derive(Debug, Clone, Copy)]
struct Mixer {
    k0: u64,
    k1: u64,
}

impl Mixer {
    fn random() -> Self {
        let keys = RandomState::new();
        Self {
            k0: keys.hash_one(0x9e37_79b9_7f4a_7c15_u64),
            k1: keys.hash_one(0x2545_f491_4f6c_dd1d_u64) | 1,
        }
    }

    #[inline]
    fn mix(self, h: u64) -> u64 {
        let m = u128::from(h ^ self.k0) * u128::from(self.k1);
        (m as u64) ^ ((m >> 64) as u64)
    }
}

/// The number of items a hashbrown table with `buckets` buckets holds before it must grow
/// (hashbrown's `bucket_mask_to_capacity`).
fn full_capacity(buckets: usize) -> usize {
    if buckets < 8 {
        buckets.saturating_sub(1)
    } else {
        buckets / 8 * 7
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
        out.clear();
        if hashes.is_empty() {
            return;
        }
        loop {
            let need = {
                let st = self.state.read();
                let need = st.slots.len();
                if out.capacity() >= need {
                    st.match_into(hashes, out);
                    return;
                }
                need
            };
            out.reserve(need);
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
    #[inline]
    fn head_of(&self, h: u64) -> Option<u32> {
        let nodes = &self.nodes;
        self.table
            .find(self.mixer.mix(h), |&i| nodes[i as usize].hash == h)
            .copied()
    }

    fn slot_for(&mut self, id: EndpointId) -> u32 {
        if let Some(&s) = self.by_id.get(&id) {
            return s;
        }
        let slot = Slot {
            id,
            state: SlotState::Live,
            ..Slot::FREE
        };
        let s = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s as usize] = slot;
                s
            }
            None => {
                self.slots.push(slot);
                // Endpoint counts are far below u32::MAX.
                u32::try_from(self.slots.len() - 1).unwrap_or(NIL)
            }
        };
        self.by_id.insert(id, s);
        s
    }

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

    /// The endpoint slot to evict from under the global bound: the one holding the most
    /// entries, ties broken by the smallest id, then the smallest slot.
    fn victim(&self) -> u32 {
        let mut best = NIL;
        let mut best_key = (0u32, EndpointId(0));
        for (i, s) in self.slots.iter().enumerate() {
            if s.len == 0 {
                continue;
            }
            if best == NIL || s.len > best_key.0 || (s.len == best_key.0 && s.id < best_key.1) {
                best = i as u32;
                best_key = (s.len, s.id);
            }
        }
        best
    }

    fn alloc_node(&mut self, hash: u64, slot: u32) -> u32 {
        let node = Node {
            hash,
            lru_prev: NIL,
            lru_next: NIL,
            chain_next: NIL,
            slot,
        };
        if self.free_node != NIL {
            let n = self.free_node;
            self.free_node = self.nodes[n as usize].lru_next;
            self.nodes[n as usize] = node;
            return n;
        }
        let len = self.nodes.len();
        if len == self.nodes.capacity() {
            // Grow toward the bound, never past it (len < max_entries here).
            let target = len
                .saturating_mul(2)
                .max(MIN_SLAB)
                .min(self.max_entries)
                .max(len + 1);
            self.nodes.reserve_exact(target - len);
        }
        self.nodes.push(node);
        len as u32
    }

    fn free_node(&mut self, n: u32) {
        let node = &mut self.nodes[n as usize];
        node.slot = NIL;
        node.chain_next = NIL;
        node.lru_prev = NIL;
        node.lru_next = self.free_node;
        self.free_node = n;
    }

    fn lru_push_front(&mut self, s: u32, n: u32) {
        let head = self.slots[s as usize].head;
        {
            let node = &mut self.nodes[n as usize];
            node.lru_prev = NIL;
            node.lru_next = head;
        }
        if head != NIL {
            self.nodes[head as usize].lru_prev = n;
        } else {
            self.slots[s as usize].tail = n;
        }
        let slot = &mut self.slots[s as usize];
        slot.head = n;
        slot.len += 1;
    }

    fn lru_unlink(&mut self, s: u32, n: u32) {
        let Node {
            lru_prev: prev,
            lru_next: next,
            ..
        } = self.nodes[n as usize];
        if prev != NIL {
            self.nodes[prev as usize].lru_next = next;
        } else {
            self.slots[s as usize].head = next;
        }
        if next != NIL {
            self.nodes[next as usize].lru_prev = prev;
        } else {
            self.slots[s as usize].tail = prev;
        }
        self.slots[s as usize].len -= 1;
    }

    fn lru_bump(&mut self, s: u32, n: u32) {
        if self.slots[s as usize].head != n {
            self.lru_unlink(s, n);
            self.lru_push_front(s, n);
        }
    }

    /// Evicts the least recently used entry of slot `s` (which must hold one).
    fn evict_lru(&mut self, s: u32) {
        let n = self.slots[s as usize].tail;
        if n == NIL {
            debug_assert!(false, "evict from an empty slot");
            return;
        }
        self.lru_unlink(s, n);
        self.chain_remove(n);
        self.free_node(n);
        self.total -= 1;
    }

    /// Puts node `n` (hash `h`, `chain_next == NIL`) at the front of the chain of `h`.
    fn chain_insert(&mut self, h: u64, n: u32) {
        let th = self.mixer.mix(h);
        let nodes = &mut self.nodes;
        if let Some(head) = self.table.find_mut(th, |&i| nodes[i as usize].hash == h) {
            nodes[n as usize].chain_next = *head;
            *head = n;
            return;
        }
        self.ensure_table_room();
        let nodes = &self.nodes;
        let mixer = self.mixer;
        self.table
            .insert_unique(th, n, |&i| mixer.mix(nodes[i as usize].hash));
    }

    /// Unlinks node `n` from the chain of its hash, dropping the hash when no node is left.
    fn chain_remove(&mut self, n: u32) {
        let node = self.nodes[n as usize];
        let h = node.hash;
        let nodes = &mut self.nodes;
        match self
            .table
            .find_entry(self.mixer.mix(h), |&i| nodes[i as usize].hash == h)
        {
            Ok(mut entry) => {
                let head = *entry.get();
                if head == n {
                    if node.chain_next == NIL {
                        entry.remove();
                    } else {
                        *entry.get_mut() = node.chain_next;
                    }
                    return;
                }
                let mut p = head;
                while p != NIL {
                    let next = nodes[p as usize].chain_next;
                    if next == n {
                        nodes[p as usize].chain_next = node.chain_next;
                        return;
                    }
                    p = next;
                }
                debug_assert!(false, "node missing from its chain");
            }
            Err(_) => debug_assert!(false, "hash of a live node missing from the table"),
        }
    }

    /// Makes room for one more item in the table without letting it grow past what
    /// `max_entries` needs (see the module docs).
    fn ensure_table_room(&mut self) {
        let items = self.table.len();
        if items < self.table.capacity() {
            return;
        }
        let full = full_capacity(self.table.num_buckets());
        let nodes = &self.nodes;
        let mixer = self.mixer;
        let hasher = |&i: &u32| mixer.mix(nodes[i as usize].hash);
        let roomy = self.max_entries.saturating_add(self.max_entries / 4);
        if items < full / 2 || full < roomy {
            // hashbrown either rehashes in place (tombstones, at most half full) or grows
            // to the next size (the table is not yet big enough for the bound).
            self.table.reserve(1, hasher);
        } else {
            // Big enough for the bound but clogged by tombstones: rebuild at the same size
            // rather than doubling.
            let mut fresh = HashTable::with_capacity(full);
            for i in self.table.drain() {
                fresh.insert_unique(hasher(&i), i, hasher);
            }
            self.table = fresh;
        }
    }

    /// Frees up to `chunk` entries of the dying slot `s`; returns true (and frees the slot)
    /// once it is empty.
    fn drain_slot(&mut self, s: u32, chunk: usize) -> bool {
        for _ in 0..chunk {
            if self.slots[s as usize].len == 0 {
                break;
            }
            self.evict_lru(s);
        }
        if self.slots[s as usize].len != 0 {
            return false;
        }
        self.slots[s as usize] = Slot::FREE;
        self.free_slots.push(s);
        true
    }

    /// The body of `match_prefix`; `out` is empty with capacity ≥ `slots.len()`.
    fn match_into(&self, hashes: &[u64], out: &mut Vec<(EndpointId, u32)>) {
        // While counting, the id field holds the slot index.
        let mut dense = false;
        for &h in hashes {
            let Some(mut n) = self.head_of(h) else {
                break;
            };
            while n != NIL {
                let node = &self.nodes[n as usize];
                let s = node.slot;
                if dense {
                    out[s as usize].1 += 1;
                } else if let Some(e) = out.iter_mut().find(|e| e.0.0 == u64::from(s)) {
                    e.1 += 1;
                } else if out.len() < SPARSE_MAX {
                    out.push((EndpointId(u64::from(s)), 1));
                } else {
                    self.densify(out);
                    dense = true;
                    out[s as usize].1 += 1;
                }
                n = node.chain_next;
            }
        }
        for e in out.iter_mut() {
            let slot = &self.slots[e.0.0 as usize];
            if slot.state != SlotState::Live {
                e.1 = 0;
            }
            e.0 = slot.id;
        }
        out.retain(|e| e.1 > 0);
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

    /// Checks every structural invariant; used by the tests.
    #[cfg(test)]
    fn check_invariants(&self) {
        let mut live_nodes = 0usize;
        let mut seen = vec![false; self.nodes.len()];
        for (s, slot) in self.slots.iter().enumerate() {
            let mut n = slot.head;
            let mut prev = NIL;
            let mut count = 0u32;
            while n != NIL {
                let node = &self.nodes[n as usize];
                assert_eq!(node.slot as usize, s, "node in the wrong slot list");
                assert_eq!(node.lru_prev, prev, "broken lru_prev");
                assert!(!seen[n as usize], "node on two lists");
                seen[n as usize] = true;
                prev = n;
                n = node.lru_next;
                count += 1;
            }
            assert_eq!(slot.tail, prev, "tail");
            assert_eq!(slot.len, count, "slot len");
            assert!(slot.len <= self.lru_cap, "lru capacity exceeded");
            if slot.state == SlotState::Free {
                assert_eq!(slot.len, 0);
                assert!(self.free_slots.contains(&(s as u32)));
            }
            if slot.state == SlotState::Live {
                assert_eq!(self.by_id.get(&slot.id), Some(&(s as u32)));
            }
            live_nodes += count as usize;
        }
        assert_eq!(live_nodes, self.total, "total");
        assert!(self.total <= self.max_entries, "global bound exceeded");
        assert!(
            self.nodes.capacity() <= self.max_entries,
            "slab past the bound"
        );
        assert_eq!(self.by_id.len(), {
            self.slots
                .iter()
                .filter(|s| s.state == SlotState::Live)
                .count()
        });
        let mut chained = 0usize;
        for &head in &self.table {
            let h = self.nodes[head as usize].hash;
            assert_eq!(self.head_of(h), Some(head), "table entry not findable");
            let mut n = head;
            let mut slots_seen = Vec::new();
            while n != NIL {
                let node = &self.nodes[n as usize];
                assert_eq!(node.hash, h, "chain mixes hashes");
                assert!(seen[n as usize], "free node on a chain");
                assert!(!slots_seen.contains(&node.slot), "slot twice in a chain");
                slots_seen.push(node.slot);
                chained += 1;
                n = node.chain_next;
            }
        }
        assert_eq!(chained, self.total, "chains cover every live node");
        let mut free = 0usize;
        let mut n = self.free_node;
        while n != NIL {
            assert_eq!(self.nodes[n as usize].slot, NIL);
            free += 1;
            n = self.nodes[n as usize].lru_next;
        }
        assert_eq!(free + self.total, self.nodes.len(), "free list");
    }
}

#[cfg(test)]
mod tests;
