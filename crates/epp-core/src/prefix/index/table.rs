//! The hash table from block hash to chain head, its keyed hashing and its growth policy.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use crate::prefix::index::{NIL, State};

/// Keyed mixing of a block hash into the table hash (a folded 64×64→128 multiply).
#[derive(Debug, Clone, Copy)]
pub(super) struct Mixer {
    k0: u64,
    k1: u64,
}

impl Mixer {
    pub(super) fn random() -> Self {
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

impl State {
    #[inline]
    pub(super) fn head_of(&self, h: u64) -> Option<u32> {
        let nodes = &self.nodes;
        self.table
            .find(self.mixer.mix(h), |&i| nodes[i as usize].hash == h)
            .copied()
    }

    /// Puts node `n` (hash `h`, `chain_next == NIL`) at the front of the chain of `h`.
    pub(super) fn chain_insert(&mut self, h: u64, n: u32) {
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
    pub(super) fn chain_remove(&mut self, n: u32) {
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
}
