//! Per-request state that plugins pass from scoring to pre-request (e.g. prefix hashes).

use std::any::Any;

use crate::scheduling::PrefixMatchReport;

type Value = Box<dyn Any + Send + Sync>;

/// Sees an entry as the prefix-match report it was stored as.
type ReportView = fn(&Value) -> Option<&dyn PrefixMatchReport>;

/// Typed values keyed by the owning plugin's name; lives for one request.
#[derive(Default)]
pub struct CycleState {
    entries: Vec<(std::sync::Arc<str>, Value)>,
    /// The entry (an index into `entries`, which only grow) that reports prefix matches.
    prefix_match: Option<(usize, ReportView)>,
}

impl std::fmt::Debug for CycleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(k, _)| k))
            .finish()
    }
}

impl CycleState {
    pub fn new() -> Self {
        CycleState::default()
    }

    /// Stores `value` under `key`, replacing an earlier value of any type.
    pub fn insert<T: Any + Send + Sync>(&mut self, key: &std::sync::Arc<str>, value: T) {
        self.insert_at(key, Box::new(value));
    }

    /// As [`CycleState::insert`], and makes `value` this cycle's prefix-match report (for
    /// the prefix-match metrics) unless an earlier entry already is.
    pub fn insert_prefix_match<T: PrefixMatchReport + Any + Send + Sync>(
        &mut self,
        key: &std::sync::Arc<str>,
        value: T,
    ) {
        let index = self.insert_at(key, Box::new(value));
        if self.prefix_match.is_none() {
            let view: ReportView = |v| v.downcast_ref::<T>().map(|r| r as &dyn PrefixMatchReport);
            self.prefix_match = Some((index, view));
        }
    }

    /// The prefix-match report of the first plugin that stored one, whatever its name.
    pub fn prefix_match(&self) -> Option<&dyn PrefixMatchReport> {
        let (index, view) = self.prefix_match?;
        self.entries.get(index).and_then(|(_, v)| view(v))
    }

    /// Stores `value` under `key` and returns its index in `entries`.
    fn insert_at(&mut self, key: &std::sync::Arc<str>, value: Value) -> usize {
        match self.entries.iter().position(|(k, _)| k == key) {
            Some(index) => {
                self.entries[index].1 = value;
                index
            }
            None => {
                self.entries.push((std::sync::Arc::clone(key), value));
                self.entries.len() - 1
            }
        }
    }

    /// The value stored under `key`, if it has type `T`.
    pub fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<&T> {
        self.entries
            .iter()
            .find(|(k, _)| &**k == key)
            .and_then(|(_, v)| v.downcast_ref::<T>())
    }

    /// Mutable access to the value under `key`, if it has type `T`.
    pub fn get_mut<T: Any + Send + Sync>(&mut self, key: &str) -> Option<&mut T> {
        self.entries
            .iter_mut()
            .find(|(k, _)| &**k == key)
            .and_then(|(_, v)| v.downcast_mut::<T>())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn typed_slots_by_plugin_name() {
        let mut state = CycleState::new();
        let a: Arc<str> = Arc::from("prefix-a");
        state.insert(&a, vec![1u64, 2]);
        state.insert(&Arc::from("other"), 7u32);
        assert_eq!(state.get::<Vec<u64>>("prefix-a"), Some(&vec![1, 2]));
        assert_eq!(state.get::<u32>("prefix-a"), None, "wrong type");
        state.insert(&a, 3u32);
        assert_eq!(state.get::<u32>("prefix-a"), Some(&3));
        assert_eq!(state.get::<u32>("missing"), None);
    }

    struct Matched(u64);

    impl PrefixMatchReport for Matched {
        fn matched_bytes(&self, _: crate::datastore::EndpointId) -> (u64, u64) {
            (self.0, 100)
        }
    }

    #[test]
    fn the_first_prefix_match_report_is_found_without_its_name() {
        let mut state = CycleState::new();
        assert!(state.prefix_match().is_none());
        state.insert(&Arc::from("other"), 7u32);
        state.insert_prefix_match(&Arc::from("prefix-a"), Matched(10));
        state.insert_prefix_match(&Arc::from("prefix-b"), Matched(20));
        let id = crate::datastore::EndpointId(1);
        let report = state.prefix_match().expect("reported");
        assert_eq!(report.matched_bytes(id), (10, 100));
    }
}
