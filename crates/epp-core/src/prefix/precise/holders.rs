//! Who holds one router block key: usually one endpoint, sometimes many (a shared system
//! prompt is on every endpoint), so the common case is stored inline.

/// The block is in the endpoint's GPU cache.
pub(super) const GPU: u8 = 1;
/// The block is in the endpoint's CPU offload tier.
pub(super) const CPU: u8 = 1 << 1;
/// The block is in another tier (disk, remote); weighted by `other`.
pub(super) const OTHER: u8 = 1 << 2;
/// Written at pick time, before the engine reported it; valid until `speculative_until_ms`.
pub(super) const SPECULATIVE: u8 = 1 << 3;
/// Tiers the engine reported (everything but the speculative bit).
pub(super) const REPORTED: u8 = GPU | CPU | OTHER;

/// One endpoint's claim on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Holder {
    pub slot: u32,
    pub tiers: u8,
    /// Milliseconds of the index's clock; meaningful only with [`SPECULATIVE`].
    pub speculative_until_ms: u64,
}

/// The holders of one key, inline when there is one.
#[derive(Debug, Clone)]
pub(super) enum Holders {
    One(Holder),
    Many(Vec<Holder>),
}

impl Holders {
    pub fn as_slice(&self) -> &[Holder] {
        match self {
            Holders::One(h) => std::slice::from_ref(h),
            Holders::Many(v) => v,
        }
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Holder> {
        match self {
            Holders::One(h) => (h.slot == slot).then_some(h),
            Holders::Many(v) => v.iter_mut().find(|h| h.slot == slot),
        }
    }

    pub fn push(&mut self, holder: Holder) {
        match self {
            Holders::One(first) => *self = Holders::Many(vec![*first, holder]),
            Holders::Many(v) => v.push(holder),
        }
    }

    /// Removes `slot`'s claim; true when no holder is left (the key should go).
    pub fn remove(&mut self, slot: u32) -> bool {
        match self {
            Holders::One(h) => h.slot == slot,
            Holders::Many(v) => {
                v.retain(|h| h.slot != slot);
                match v.as_slice() {
                    [] => true,
                    [only] => {
                        *self = Holders::One(*only);
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    /// Heap bytes beyond the inline value.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Holders::One(_) => 0,
            Holders::Many(v) => v.capacity() * std::mem::size_of::<Holder>(),
        }
    }
}
