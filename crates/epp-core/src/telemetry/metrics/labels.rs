//! Bounded caches of per-label-set metric handles.
//!
//! Label values such as `model_name` come from client requests, so each cache holds at most
//! `limit` label sets; later sets share one handle whose values are all [`OTHER`]. Known sets
//! cost a read lock and one hash lookup by `&str` (no allocation); only a new set takes the
//! write lock and allocates.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hashbrown::{Equivalent, HashMap};
use parking_lot::RwLock;

use crate::telemetry::metrics::primitives::Counter;

/// The label value that stands for every label set beyond a cache's limit.
pub const OTHER: &str = "other";

/// An owned label set of `N` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelKey<const N: usize>([Box<str>; N]);

impl<const N: usize> LabelKey<N> {
    pub fn values(&self) -> [&str; N] {
        std::array::from_fn(|i| &*self.0[i])
    }
}

impl<const N: usize> Hash for LabelKey<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for value in &self.0 {
            value.as_ref().hash(state);
        }
    }
}

/// A borrowed label set, for lookups without allocating.
#[derive(Debug, Clone, Copy)]
struct LabelRef<'a, const N: usize>(&'a [&'a str; N]);

impl<const N: usize> Hash for LabelRef<'_, N> {
    // Must hash exactly as `LabelKey` does.
    fn hash<H: Hasher>(&self, state: &mut H) {
        for value in self.0 {
            value.hash(state);
        }
    }
}

impl<const N: usize> Equivalent<LabelKey<N>> for LabelRef<'_, N> {
    fn equivalent(&self, key: &LabelKey<N>) -> bool {
        self.0.iter().zip(&key.0).all(|(a, b)| *a == &**b)
    }
}

/// Handles of type `V` per label set of `N` values, at most `limit` sets.
#[derive(Debug)]
pub struct LabelCache<const N: usize, V> {
    map: RwLock<HashMap<LabelKey<N>, Arc<V>>>,
    limit: usize,
    /// The handle of the `other` label set; in `map` (outside the limit) once used.
    other: Arc<V>,
    /// Whether `other` was handed out, i.e. whether its series exists.
    other_used: AtomicBool,
    /// Set once `limit` label sets exist (they are never removed): unknown sets then go to
    /// `other` without the write lock, so a flood of new model names does not serialize.
    full: AtomicBool,
    /// Lookups answered with `other` because the cache was full.
    overflowed: Counter,
    make: fn() -> V,
}

impl<const N: usize, V> LabelCache<N, V> {
    /// A cache of at most `limit` label sets (plus `other`) whose handles `make` creates.
    pub fn new(limit: usize, make: fn() -> V) -> Self {
        LabelCache {
            map: RwLock::new(HashMap::new()),
            limit,
            other: Arc::new(make()),
            other_used: AtomicBool::new(false),
            full: AtomicBool::new(limit == 0),
            overflowed: Counter::default(),
            make,
        }
    }

    /// Runs `f` on the handle of `values`, creating it if the cache has room, else on the
    /// `other` handle. No allocation and no write lock for a known label set.
    pub fn with<R>(&self, values: [&str; N], f: impl FnOnce(&V) -> R) -> R {
        if let Some(handle) = self.map.read().get(&LabelRef(&values)) {
            return f(handle);
        }
        f(&self.insert(values))
    }

    /// The handle of `values` (or `other`), for callers that record several times.
    pub fn get(&self, values: [&str; N]) -> Arc<V> {
        if let Some(handle) = self.map.read().get(&LabelRef(&values)) {
            return Arc::clone(handle);
        }
        self.insert(values)
    }

    #[cold]
    fn insert(&self, values: [&str; N]) -> Arc<V> {
        let is_other = values.iter().all(|v| *v == OTHER);
        if self.full.load(Ordering::Relaxed) && !is_other {
            return self.overflow();
        }
        let mut map = self.map.write();
        // Another thread may have added it between the two locks.
        if let Some(handle) = map.get(&LabelRef(&values)) {
            return Arc::clone(handle);
        }
        if is_other {
            // A client may name its model "other": share the one `other` series rather than
            // export two series with the same labels. Keyed in `map` for the fast path.
            self.other_used.store(true, Ordering::Relaxed);
            map.insert(LabelKey(values.map(Box::from)), Arc::clone(&self.other));
            return Arc::clone(&self.other);
        }
        // The `other` key, if present, does not count against the limit.
        let other_in_map = usize::from(map.contains_key(&LabelRef(&[OTHER; N])));
        if map.len() - other_in_map >= self.limit {
            self.full.store(true, Ordering::Relaxed);
            return self.overflow();
        }
        let handle = Arc::new((self.make)());
        let key = LabelKey(values.map(Box::from));
        map.insert(key, Arc::clone(&handle));
        handle
    }

    fn overflow(&self) -> Arc<V> {
        self.overflowed.inc();
        self.other_used.store(true, Ordering::Relaxed);
        Arc::clone(&self.other)
    }

    /// How many lookups were folded into `other`.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.get()
    }

    /// Every label set used and its handle, sorted by label values (Go's exposition
    /// order); `other` is included once it was handed out.
    pub fn entries(&self) -> Vec<(LabelKey<N>, Arc<V>)> {
        let mut entries: Vec<_> = {
            let map = self.map.read();
            let mut entries: Vec<_> = map
                .iter()
                .map(|(k, v)| (k.clone(), Arc::clone(v)))
                .collect();
            let other_key = LabelRef(&[OTHER; N]);
            if self.other_used.load(Ordering::Relaxed) && !map.contains_key(&other_key) {
                let key = LabelKey(std::array::from_fn(|_| Box::from(OTHER)));
                entries.push((key, Arc::clone(&self.other)));
            }
            entries
        };
        entries.sort_by(|a, b| a.0.0.cmp(&b.0.0));
        entries
    }
}
