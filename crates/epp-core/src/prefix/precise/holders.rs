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

/// One endpoint's claim on a key (12 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Holder {
    pub slot: u32,
    /// Deciseconds of the index's clock (13 years of range in 32 bits); meaningful only with
    /// [`SPECULATIVE`].
    pub speculative_until: u32,
    pub tiers: u8,
}

/// The holders of one key: inline when there is one (the common case), else boxed, so a
/// key-table entry stays 24 bytes.
#[derive(Debug, Clone)]
#[expect(
    clippy::box_collection,
    reason = "a thin pointer keeps the enum, and so every key-table entry, at 16 + 8 bytes; the extra allocation is only for keys with several holders"
)]
pub(super) enum Holders {
    One(Holder),
    Many(Box<Vec<Holder>>),
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
            Holders::One(first) => *self = Holders::Many(Box::new(vec![*first, holder])),
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
            Holders::Many(v) => {
                std::mem::size_of::<Vec<Holder>>() + v.capacity() * std::mem::size_of::<Holder>()
            }
        }
    }
}
