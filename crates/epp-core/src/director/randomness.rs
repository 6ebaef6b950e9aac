//! Where the director's random choices come from (the pickers' draws and the endpoint of
//! a bodyless request).

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

/// The director's source of randomness (why two kinds: see
/// [`Director::with_seed`](super::Director::with_seed)).
///
/// Production uses [`Randomness::Thread`]: each worker thread draws from its own
/// thread-local generator (`rand::rng()`), without a lock or shared state. A seeded
/// director draws every choice from one `SmallRng` behind a mutex, so a run of decisions
/// replays exactly.
#[derive(Debug)]
pub(super) enum Randomness {
    /// The calling thread's generator: fast, lock-free, not reproducible.
    Thread,
    /// One seeded generator for every decision: reproducible.
    Seeded(Mutex<SmallRng>),
}

impl Randomness {
    pub(super) fn seeded(seed: u64) -> Self {
        Randomness::Seeded(Mutex::new(SmallRng::seed_from_u64(seed)))
    }

    /// Runs `draw` with this source's generator.
    pub(super) fn with<R>(&self, draw: impl FnOnce(&mut dyn RngCore) -> R) -> R {
        match self {
            Randomness::Thread => draw(&mut rand::rng()),
            Randomness::Seeded(rng) => draw(&mut *rng.lock()),
        }
    }
}
