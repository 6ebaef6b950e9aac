//! The node slab with its free list, and the endpoint slots with their LRU lists.

use crate::datastore::EndpointId;
use crate::prefix::index::{MIN_SLAB, NIL, State};

/// One `(hash, endpoint)` entry. Free nodes have `slot == NIL` and link the free list
/// through `lru_next`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Node {
    pub(super) hash: u64,
    /// Towards the most recently used end of the owning endpoint's LRU list.
    pub(super) lru_prev: u32,
    /// Towards the least recently used end.
    pub(super) lru_next: u32,
    /// Next node with the same hash (another endpoint).
    pub(super) chain_next: u32,
    pub(super) slot: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SlotState {
    /// Registered in `by_id`.
    Live,
    /// Removed from `by_id`; its entries are being freed by `remove_endpoint`. Matches
    /// against it are not reported.
    Dying,
    /// On the free list.
    Free,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) id: EndpointId,
    /// Most recently used node.
    pub(super) head: u32,
    /// Least recently used node (evicted first).
    pub(super) tail: u32,
    pub(super) len: u32,
    pub(super) state: SlotState,
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

impl State {
    pub(super) fn slot_for(&mut self, id: EndpointId) -> u32 {
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

    /// The endpoint slot to evict from under the global bound: the one holding the most
    /// entries, ties broken by the smallest id, then the smallest slot.
    pub(super) fn victim(&self) -> u32 {
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

    pub(super) fn alloc_node(&mut self, hash: u64, slot: u32) -> u32 {
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

    pub(super) fn lru_push_front(&mut self, s: u32, n: u32) {
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

    pub(super) fn lru_bump(&mut self, s: u32, n: u32) {
        if self.slots[s as usize].head != n {
            self.lru_unlink(s, n);
            self.lru_push_front(s, n);
        }
    }

    /// Evicts the least recently used entry of slot `s` (which must hold one).
    pub(super) fn evict_lru(&mut self, s: u32) {
        let n = self.slots[s as usize].tail;
        if n == NIL {
            debug_assert!(false, "evict from an empty slot");
            return;
        }
        self.free_entry(s, n);
    }

    /// Unlinks node `n` of slot `s` from its LRU list and its hash chain and frees it.
    pub(super) fn free_entry(&mut self, s: u32, n: u32) {
        self.lru_unlink(s, n);
        self.chain_remove(n);
        self.free_node(n);
        self.total -= 1;
    }

    /// Frees up to `chunk` entries of the dying slot `s`; returns true (and frees the slot)
    /// once it is empty.
    pub(super) fn drain_slot(&mut self, s: u32, chunk: usize) -> bool {
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
}
