//! Prefix-cache affinity: the data behind upstream's `prefix-cache-scorer`.
//!
//! * [`hash_prompt`] cuts a prompt's bytes into blocks and gives each a chained XXH64 hash
//!   that stands for the whole prefix up to and including that block (model name mixed into
//!   the first).
//! * [`PrefixIndex`] remembers which endpoints were recently sent which block hashes (an LRU
//!   per endpoint plus a hard bound on total entries) and answers, for a new prompt's hashes,
//!   how many leading blocks each endpoint probably has cached.
//!
//! The scorer plugin divides an endpoint's matched block count by the prompt's block count.

mod hash;
mod index;
pub mod precise;

pub use hash::hash_prompt;
pub use index::{PrefixIndex, PrefixIndexLimits, REMOVE_CHUNK};
pub use precise::{PreciseIndex, PreciseIndexConfig};
