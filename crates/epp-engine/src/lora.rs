//! LoRA adapter slots, after vLLM V1's scheduler: at most `max_loras` distinct adapters have
//! running requests. An adapter is "loaded" while it has running requests; one without any may
//! be swapped out for another, so a request for a new adapter runs as soon as a slot is free.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Running-request counts per adapter, bounded by `max_loras` distinct adapters.
#[derive(Debug)]
pub struct LoraSlots {
    max_loras: usize,
    running: BTreeMap<Arc<str>, usize>,
}

impl LoraSlots {
    /// Slots for `max_loras` adapters at once.
    pub fn new(max_loras: usize) -> Self {
        Self {
            max_loras,
            running: BTreeMap::new(),
        }
    }

    /// The `max_lora` label value.
    pub fn max_loras(&self) -> usize {
        self.max_loras
    }

    /// Whether a request for `adapter` (`None` = the base model) may start now.
    pub fn can_start(&self, adapter: Option<&Arc<str>>) -> bool {
        match adapter {
            None => true,
            Some(name) => self.running.contains_key(name) || self.running.len() < self.max_loras,
        }
    }

    /// Records a request for `adapter` starting to run.
    pub fn start(&mut self, adapter: Option<&Arc<str>>) {
        if let Some(name) = adapter {
            *self.running.entry(Arc::clone(name)).or_default() += 1;
        }
    }

    /// Records a request for `adapter` leaving the running set (finished or preempted).
    pub fn stop(&mut self, adapter: Option<&Arc<str>>) {
        let Some(name) = adapter else { return };
        if let Some(count) = self.running.get_mut(name) {
            *count -= 1;
            if *count == 0 {
                self.running.remove(name);
            }
        }
    }

    /// Adapters with running requests, sorted.
    pub fn running(&self) -> impl Iterator<Item = &Arc<str>> {
        self.running.keys()
    }
}

/// Joins adapter names with commas, the label format of `vllm:lora_requests_info`.
pub fn join<'a>(names: impl IntoIterator<Item = &'a Arc<str>>) -> String {
    let mut out = String::new();
    for name in names {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_frees_when_its_last_request_stops() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut slots = LoraSlots::new(1);
        assert!(slots.can_start(Some(&a)));
        slots.start(Some(&a));
        slots.start(Some(&a));
        assert!(slots.can_start(Some(&a)), "a is loaded");
        assert!(!slots.can_start(Some(&b)), "the only slot is busy");
        assert!(slots.can_start(None), "the base model needs no slot");
        slots.stop(Some(&a));
        assert!(!slots.can_start(Some(&b)));
        slots.stop(Some(&a));
        assert!(slots.can_start(Some(&b)), "a has no running request left");
        assert_eq!(join(slots.running()), "");
        slots.start(Some(&b));
        assert_eq!(join(slots.running()), "b");
    }
}
