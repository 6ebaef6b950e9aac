//! Per-request state that plugins pass from scoring to pre-request (e.g. prefix hashes).

use std::any::Any;

/// Typed values keyed by the owning plugin's name; lives for one request.
#[derive(Default)]
pub struct CycleState {
    entries: Vec<(std::sync::Arc<str>, Box<dyn Any + Send + Sync>)>,
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
        let boxed: Box<dyn Any + Send + Sync> = Box::new(value);
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = boxed,
            None => self.entries.push((std::sync::Arc::clone(key), boxed)),
        }
    }

    /// The first value of type `T`, whatever its key (for readers that do not know the
    /// plugin's configured name, such as metrics).
    pub fn find<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.entries.iter().find_map(|(_, v)| v.downcast_ref::<T>())
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
}
