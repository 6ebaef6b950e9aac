//! Structural invariant checks of the index, for the tests.

use crate::prefix::index::slab::SlotState;
use crate::prefix::index::{NIL, State};

impl State {
    /// Checks every structural invariant; used by the tests.
    pub(super) fn check_invariants(&self) {
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
