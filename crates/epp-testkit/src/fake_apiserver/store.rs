//! The in-memory storage: objects keyed by (gvr, namespace, name), one global
//! resourceVersion counter stamped on every write, a bounded event history for watch
//! resumption, and the registry of open watches that live events are pushed to.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::resources::{Gvr, ResourceType};
use super::status::ApiError;

/// Where an object lives; `namespace` is empty for cluster-scoped objects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ObjKey {
    pub(crate) gvr: Gvr,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

/// One write: the object before (`prev`) and after (`cur`); `cur` is None for a delete.
#[derive(Debug)]
pub(crate) struct StoredEvent {
    pub(crate) rv: u64,
    pub(crate) gvr: Gvr,
    pub(crate) namespace: String,
    pub(crate) prev: Option<Value>,
    pub(crate) cur: Option<Value>,
}

/// What the store pushes to an open watch.
#[derive(Debug)]
pub(crate) enum WatchMsg {
    /// A write happened (to any resource: the watch filters, and tracks the rv for bookmarks).
    Event(Arc<StoredEvent>),
    /// The history was compacted under the watch: send a 410 ERROR event and end.
    Expire { requested: u64, oldest: u64 },
    /// End the stream cleanly.
    Close,
}

/// A registered watch: live messages arrive on `rx` after `replay` and `snapshot`.
pub(crate) struct Registration {
    pub(crate) id: u64,
    pub(crate) rx: UnboundedReceiver<WatchMsg>,
    /// History events after the requested resourceVersion, to filter and send first.
    pub(crate) replay: Vec<Arc<StoredEvent>>,
    /// Current objects of the gvr (for initial events), when asked for.
    pub(crate) snapshot: Vec<Value>,
    /// The store's resourceVersion at registration.
    pub(crate) rv: u64,
}

/// The storage itself; callers hold it behind one mutex so that writes, history and
/// watch registration are atomic with respect to each other.
pub(crate) struct Store {
    objects: BTreeMap<ObjKey, Value>,
    rv: u64,
    history: VecDeque<Arc<StoredEvent>>,
    history_limit: usize,
    /// Watches from a resourceVersion below this get 410 Expired.
    oldest: u64,
    watchers: HashMap<u64, (Gvr, UnboundedSender<WatchMsg>)>,
    next_watch_id: u64,
}

impl Store {
    /// An empty store whose history keeps at most `history_limit` events.
    pub(crate) fn new(history_limit: usize) -> Store {
        Store {
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            oldest: 1,
            watchers: HashMap::new(),
            next_watch_id: 1,
        }
    }

    /// The current (latest) resourceVersion.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch may start from.
    pub(crate) fn oldest(&self) -> u64 {
        self.oldest
    }

    /// One object.
    pub(crate) fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// All objects of a gvr, in one namespace or all, sorted by namespace and name.
    pub(crate) fn list(&self, gvr: &Gvr, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| &k.gvr == gvr && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Creates an object; 409 AlreadyExists if its name is taken.
    pub(crate) fn create(&mut self, rt: &ResourceType, mut obj: Value) -> Result<Value, ApiError> {
        let key = key_of(rt, &obj);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&rt.gvr, &key.name));
        }
        let rv = self.rv + 1;
        stamp_new(&mut obj, rv);
        Ok(self.commit(key, None, Some(obj)))
    }

    /// Replaces an object: 404 if absent, 409 Conflict if the body carries a
    /// resourceVersion other than the stored one (an empty one is unconditional).
    pub(crate) fn replace(&mut self, rt: &ResourceType, mut obj: Value) -> Result<Value, ApiError> {
        let key = key_of(rt, &obj);
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(&rt.gvr, &key.name));
        };
        let sent_rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if !sent_rv.is_empty() && sent_rv != old["metadata"]["resourceVersion"] {
            return Err(ApiError::conflict(&rt.gvr, &key.name));
        }
        let rv = self.rv + 1;
        stamp_update(&mut obj, &old, rv);
        Ok(self.commit(key, Some(old), Some(obj)))
    }

    /// Creates or replaces without preconditions (the test handle's `apply`).
    pub(crate) fn upsert(&mut self, rt: &ResourceType, mut obj: Value) -> Value {
        if let Some(meta) = obj["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
        }
        let key = key_of(rt, &obj);
        let result = if self.objects.contains_key(&key) {
            self.replace(rt, obj)
        } else {
            self.create(rt, obj)
        };
        result.expect("an unconditional create-or-replace cannot fail")
    }

    /// Deletes an object, returning its last state (with the delete's resourceVersion).
    pub(crate) fn delete(&mut self, key: &ObjKey) -> Result<Value, ApiError> {
        let Some(old) = self.objects.get(key).cloned() else {
            return Err(ApiError::not_found(&key.gvr, &key.name));
        };
        let rv = self.rv + 1;
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.commit(key.clone(), Some(old), None);
        Ok(gone)
    }

    /// Records a write: bumps the rv, stores, appends to the history, notifies watches.
    fn commit(&mut self, key: ObjKey, prev: Option<Value>, cur: Option<Value>) -> Value {
        self.rv += 1;
        match &cur {
            Some(obj) => self.objects.insert(key.clone(), obj.clone()),
            None => self.objects.remove(&key),
        };
        let event = Arc::new(StoredEvent {
            rv: self.rv,
            gvr: key.gvr,
            namespace: key.namespace,
            prev: prev.clone(),
            cur: cur.clone(),
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest = dropped.rv;
            }
        }
        self.watchers
            .retain(|_, (_, tx)| tx.send(WatchMsg::Event(event.clone())).is_ok());
        cur.or(prev).unwrap_or(Value::Null)
    }

    /// Forgets the whole history: watches from any older resourceVersion now get 410.
    pub(crate) fn compact(&mut self) -> u64 {
        self.history.clear();
        self.oldest = self.rv;
        self.rv
    }

    /// Registers a watch of `gvr`: from `since` (None: from now), with a snapshot of
    /// the current objects if `initial`. 410 Expired if `since` predates the history.
    pub(crate) fn watch(
        &mut self,
        gvr: &Gvr,
        since: Option<u64>,
        initial: bool,
    ) -> Result<Registration, ApiError> {
        let replay = match since {
            Some(n) if n < self.oldest => return Err(ApiError::expired(n, self.oldest)),
            Some(n) => self.history.iter().filter(|e| e.rv > n).cloned().collect(),
            None => Vec::new(),
        };
        let snapshot = if initial {
            self.list(gvr, None)
        } else {
            Vec::new()
        };
        let (tx, rx) = unbounded_channel();
        let id = self.next_watch_id;
        self.next_watch_id += 1;
        self.watchers.insert(id, (gvr.clone(), tx));
        Ok(Registration {
            id,
            rx,
            replay,
            snapshot,
            rv: self.rv,
        })
    }

    /// Forgets a watch whose stream ended.
    pub(crate) fn unregister(&mut self, id: u64) {
        self.watchers.remove(&id);
    }

    /// How many watches of this gvr are open.
    pub(crate) fn open_watches(&self, gvr: &Gvr) -> usize {
        self.watchers.values().filter(|(g, _)| g == gvr).count()
    }

    /// Compacts, then tells every open watch it expired (410 in the stream).
    pub(crate) fn expire_watches(&mut self) {
        let oldest = self.compact();
        for (_, (_, tx)) in self.watchers.drain() {
            let _ = tx.send(WatchMsg::Expire {
                requested: oldest.saturating_sub(1),
                oldest,
            });
        }
    }

    /// Ends every open watch cleanly (as the server's own watch timeout would).
    pub(crate) fn close_watches(&mut self) {
        for (_, (_, tx)) in self.watchers.drain() {
            let _ = tx.send(WatchMsg::Close);
        }
    }
}

/// The key of an object of this type, from its metadata.
pub(crate) fn key_of(rt: &ResourceType, obj: &Value) -> ObjKey {
    let meta = &obj["metadata"];
    let namespace = if rt.namespaced {
        meta["namespace"].as_str().unwrap_or("default").to_string()
    } else {
        String::new()
    };
    ObjKey {
        gvr: rt.gvr.clone(),
        namespace,
        name: meta["name"].as_str().unwrap_or("").to_string(),
    }
}

/// Server-set metadata of a new object (uid and creationTimestamp kept if given).
fn stamp_new(obj: &mut Value, rv: u64) {
    let meta = &mut obj["metadata"];
    if meta["uid"].as_str().is_none_or(str::is_empty) {
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
    }
    if meta["creationTimestamp"].as_str().is_none_or(str::is_empty) {
        meta["creationTimestamp"] = json!(now_rfc3339());
    }
    meta["generation"] = json!(1);
    meta["resourceVersion"] = json!(rv.to_string());
}

/// Server-set metadata of a replaced object: identity kept, generation bumped on a
/// change outside metadata and status (as for CRDs and most built-in types).
fn stamp_update(obj: &mut Value, old: &Value, rv: u64) {
    let old_gen = old["metadata"]["generation"].as_i64().unwrap_or(1);
    let generation = if spec_of(obj) == spec_of(old) {
        old_gen
    } else {
        old_gen + 1
    };
    let meta = &mut obj["metadata"];
    meta["uid"] = old["metadata"]["uid"].clone();
    meta["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
    meta["generation"] = json!(generation);
    meta["resourceVersion"] = json!(rv.to_string());
}

/// Everything but `metadata` and `status`.
fn spec_of(obj: &Value) -> Value {
    let mut rest = obj.clone();
    if let Some(map) = rest.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    rest
}

/// Now, in the seconds-precision RFC 3339 form of `metav1.Time`.
pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formatting of the current time")
}
