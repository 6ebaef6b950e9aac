//! A bounded LRU of token ids, keyed by a 64-bit hash of (model, prompt).

use std::collections::BTreeMap;

use epp_core::tokens::Tokens;
use hashbrown::HashMap;
use serde_json::Value;
use xxhash_rust::xxh64::Xxh64;

use crate::body::Prompt;

/// Bytes charged per entry on top of its ids (map and order slots, the `Arc` header).
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// The cache key of a prompt for `model` (token ids need no cache, but have a key too).
/// Chats are keyed by their messages, tools, template arguments and flags, with object keys
/// in sorted order, so the same chat gives the same key however the client ordered its
/// fields. A 64-bit
/// collision would hand one prompt another's tokens: a worse score, never a failed request.
pub fn key(model: &str, prompt: &Prompt) -> u64 {
    let mut hasher = Xxh64::new(0);
    hasher.update(&(model.len() as u64).to_le_bytes());
    hasher.update(model.as_bytes());
    match prompt {
        Prompt::Text(text) => {
            hasher.update(b"t");
            hasher.update(text.as_bytes());
        }
        Prompt::Chat(chat) => {
            hasher.update(b"c");
            hasher.update(&[
                u8::from(chat.add_generation_prompt),
                u8::from(chat.continue_final_message),
            ]);
            for message in &chat.messages {
                hash_value(&mut hasher, message);
            }
            hasher.update(b"tools");
            hash_value(&mut hasher, chat.tools.as_ref().unwrap_or(&Value::Null));
            hasher.update(b"kwargs");
            match &chat.template_kwargs {
                Some(kwargs) => hash_object(&mut hasher, kwargs),
                None => hash_value(&mut hasher, &Value::Null),
            }
        }
        Prompt::Tokens(ids) => {
            hasher.update(b"k");
            for id in ids.iter() {
                hasher.update(&id.to_le_bytes());
            }
        }
    }
    hasher.digest()
}

/// Feeds `value` to `hasher` with a type tag and length before each part, so no two values
/// feed the same bytes, and with object keys sorted.
fn hash_value(hasher: &mut Xxh64, value: &Value) {
    fn part(hasher: &mut Xxh64, tag: &[u8], s: &str) {
        hasher.update(tag);
        hasher.update(&(s.len() as u64).to_le_bytes());
        hasher.update(s.as_bytes());
    }
    match value {
        Value::Null => part(hasher, b"n", ""),
        Value::Bool(b) => part(hasher, b"b", if *b { "1" } else { "0" }),
        Value::Number(n) => part(hasher, b"d", &n.to_string()),
        Value::String(s) => part(hasher, b"s", s),
        Value::Array(items) => {
            part(hasher, b"a", &items.len().to_string());
            for item in items {
                hash_value(hasher, item);
            }
        }
        Value::Object(fields) => hash_object(hasher, fields),
    }
}

fn hash_object(hasher: &mut Xxh64, fields: &serde_json::Map<String, Value>) {
    hasher.update(b"o");
    hasher.update(&(fields.len() as u64).to_le_bytes());
    let mut names: Vec<&String> = fields.keys().collect();
    names.sort_unstable();
    for name in names {
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        if let Some(field) = fields.get(name) {
            hash_value(hasher, field);
        }
    }
}

/// Least-recently-used entries go first once either bound is passed.
#[derive(Debug)]
pub struct TokenCache {
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    /// Key → (ids, last-use stamp).
    entries: HashMap<u64, (Tokens, u64)>,
    /// Last-use stamp → key, oldest first.
    order: BTreeMap<u64, u64>,
    next_stamp: u64,
}

impl TokenCache {
    /// At most `max_entries` prompts and about `max_bytes` of ids and bookkeeping.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        TokenCache {
            max_entries,
            max_bytes,
            bytes: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_stamp: 0,
        }
    }

    /// The ids cached under `key`, now the most recently used.
    pub fn get(&mut self, key: u64) -> Option<Tokens> {
        let stamp = self.stamp();
        let (tokens, last_used) = self.entries.get_mut(&key)?;
        self.order.remove(last_used);
        *last_used = stamp;
        self.order.insert(stamp, key);
        Some(Tokens::clone(tokens))
    }

    /// Caches `tokens` under `key`, evicting the least recently used past either bound. A
    /// prompt too large for the whole cache is not kept.
    pub fn insert(&mut self, key: u64, tokens: Tokens) {
        let size = entry_bytes(&tokens);
        if self.max_entries == 0 || size > self.max_bytes {
            return;
        }
        self.remove(key);
        let stamp = self.stamp();
        self.entries.insert(key, (tokens, stamp));
        self.order.insert(stamp, key);
        self.bytes += size;
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.order.first_key_value() else {
                break;
            };
            let oldest = *oldest;
            self.remove(oldest);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes charged for the cached entries.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, key: u64) {
        if let Some((tokens, stamp)) = self.entries.remove(&key) {
            self.order.remove(&stamp);
            self.bytes -= entry_bytes(&tokens);
        }
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }
}

fn entry_bytes(tokens: &Tokens) -> usize {
    tokens.len() * size_of::<u32>() + ENTRY_OVERHEAD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Chat;

    fn ids(n: usize) -> Tokens {
        (0..n as u32).collect()
    }

    #[test]
    fn evicts_the_least_recently_used_entry() {
        let mut cache = TokenCache::new(2, usize::MAX);
        cache.insert(1, ids(1));
        cache.insert(2, ids(2));
        assert!(cache.get(1).is_some(), "1 is now the most recent");
        cache.insert(3, ids(3));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(2).is_none(), "2 was the least recently used");
        assert_eq!(cache.get(1).as_deref(), Some(&[0][..]));
        assert_eq!(cache.get(3).as_deref(), Some(&[0, 1, 2][..]));
    }

    #[test]
    fn keeps_within_the_byte_cap() {
        let one = entry_bytes(&ids(10));
        let mut cache = TokenCache::new(100, 2 * one);
        for key in 0..5 {
            cache.insert(key, ids(10));
            assert!(cache.bytes() <= 2 * one);
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(4).is_some() && cache.get(3).is_some());
        cache.insert(9, ids(1000));
        assert!(
            cache.get(9).is_none(),
            "an entry over the whole cap is not kept"
        );
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn replacing_a_key_keeps_the_byte_count_right() {
        let mut cache = TokenCache::new(4, usize::MAX);
        cache.insert(1, ids(10));
        cache.insert(1, ids(3));
        assert_eq!((cache.len(), cache.bytes()), (1, entry_bytes(&ids(3))));
    }

    #[test]
    fn zero_entries_caches_nothing() {
        let mut cache = TokenCache::new(0, usize::MAX);
        cache.insert(1, ids(1));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn keys_differ_by_model_kind_and_text_but_not_field_order() {
        let text = |s: &str| Prompt::Text(s.to_owned());
        let chat = |json: &str| {
            let Ok(serde_json::Value::Array(messages)) = serde_json::from_str(json) else {
                panic!("bad test JSON {json}");
            };
            Prompt::Chat(Chat::new(messages))
        };
        assert_ne!(key("a", &text("x")), key("b", &text("x")));
        assert_ne!(key("ab", &text("c")), key("a", &text("bc")));
        assert_ne!(key("m", &text("x")), key("m", &text("y")));
        assert_eq!(
            key("m", &chat(r#"[{"role":"user","content":"x"}]"#)),
            key("m", &chat(r#"[{"content":"x","role":"user"}]"#)),
        );
        assert_ne!(
            key("m", &chat(r#"[{"role":"user","content":"x"}]"#)),
            key("m", &chat(r#"[{"role":"user","content":"y"}]"#)),
        );
        let user = r#"[{"role":"user","content":"x"}]"#;
        let thinking = |on: bool| {
            let Prompt::Chat(mut chat) = chat(user) else {
                panic!("a chat");
            };
            chat.template_kwargs = serde_json::json!({ "enable_thinking": on })
                .as_object()
                .cloned();
            Prompt::Chat(chat)
        };
        assert_ne!(key("m", &thinking(true)), key("m", &thinking(false)));
        assert_ne!(key("m", &thinking(true)), key("m", &chat(user)));
        let Prompt::Chat(mut prefill) = chat(user) else {
            panic!("a chat");
        };
        prefill.add_generation_prompt = false;
        assert_ne!(key("m", &Prompt::Chat(prefill)), key("m", &chat(user)));
        assert_ne!(
            key("m", &Prompt::Tokens(ids(3))),
            key("m", &Prompt::Tokens(ids(2)))
        );
    }
}
