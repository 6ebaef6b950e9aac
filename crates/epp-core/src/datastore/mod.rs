//! The pool, its endpoints and objectives, published as lock-free snapshots.
//!
//! Writers (discovery, tests) serialize on a mutex and publish a new immutable
//! [`EndpointSet`]; readers on the request path load the current set with one atomic
//! operation and never block. Endpoint metrics live inside each [`Endpoint`] as atomics,
//! so scraping updates them without republishing the set.

mod endpoint;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;

use crate::time::{Clock, SystemClock};

pub use endpoint::{
    CacheGeometry, Endpoint, EndpointId, EndpointMeta, EndpointSpec, InFlightGuard, LoadSignal,
    LoraState, MetricsSnapshot, MetricsUpdate,
};

/// The InferencePool this EPP serves, or its standalone stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    pub name: String,
    pub namespace: String,
    /// The model-server ports of each pod (one endpoint per port).
    pub target_ports: Vec<u16>,
}

/// An InferenceObjective: the priority of requests that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objective {
    pub name: String,
    /// Negative priorities are sheddable; unset means 0.
    pub priority: i32,
}

/// An immutable view of the pool's endpoints at one moment.
#[derive(Debug, Default)]
pub struct EndpointSet {
    endpoints: Vec<Arc<Endpoint>>,
    by_address: HashMap<SocketAddr, usize>,
}

impl EndpointSet {
    fn new(endpoints: Vec<Arc<Endpoint>>) -> Self {
        let by_address = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| (e.address(), i))
            .collect();
        EndpointSet {
            endpoints,
            by_address,
        }
    }

    /// Endpoints in the order they were added.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    pub fn get(&self, address: SocketAddr) -> Option<&Arc<Endpoint>> {
        self.by_address.get(&address).map(|&i| &self.endpoints[i])
    }
}

/// Told when endpoints leave the pool, so per-endpoint state (e.g. the prefix index)
/// can be dropped. Called on the writer's thread, after the new set is published.
pub trait EndpointObserver: Send + Sync {
    fn endpoint_removed(&self, endpoint: &Endpoint);
}

/// Why the datastore refused a change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatastoreError {
    /// The change would exceed `--max-endpoints`.
    #[error(
        "the pool would have {requested} endpoints, more than the limit of {limit} (--max-endpoints)"
    )]
    TooManyEndpoints { requested: usize, limit: usize },
}

/// The shared state discovery writes and the request path reads.
pub struct Datastore {
    pool: ArcSwapOption<PoolInfo>,
    endpoints: ArcSwap<EndpointSet>,
    objectives: ArcSwap<HashMap<String, Objective>>,
    /// Serializes writers so read-modify-publish of the endpoint set is atomic.
    write_lock: Mutex<()>,
    next_id: AtomicU64,
    max_endpoints: usize,
    observers: Mutex<Vec<Arc<dyn EndpointObserver>>>,
    /// Bumped each time a new endpoint set is published, for tasks that follow the pool
    /// (scrapers) without polling.
    generation: tokio::sync::watch::Sender<u64>,
    /// Whether discovery has loaded the pool and listed its endpoints: the one source of
    /// readiness (the health service reads it through `subscribe_synced`).
    synced: tokio::sync::watch::Sender<bool>,
    /// Stamps and ages every endpoint's metrics, and gives the director its "now".
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Datastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datastore")
            .field("pool", &self.pool.load())
            .field("endpoints", &self.endpoints.load().len())
            .finish_non_exhaustive()
    }
}

impl Datastore {
    /// An empty, unsynced datastore that holds at most `max_endpoints` endpoints, on the
    /// host's clock.
    pub fn new(max_endpoints: usize) -> Self {
        Datastore::with_clock(max_endpoints, Arc::new(SystemClock))
    }

    /// As [`Datastore::new`], with time read from `clock` (a
    /// [`ManualClock`](crate::time::ManualClock) for tests and simulation).
    pub fn with_clock(max_endpoints: usize, clock: Arc<dyn Clock>) -> Self {
        Datastore {
            pool: ArcSwapOption::empty(),
            endpoints: ArcSwap::from_pointee(EndpointSet::default()),
            objectives: ArcSwap::from_pointee(HashMap::new()),
            write_lock: Mutex::new(()),
            next_id: AtomicU64::new(1),
            max_endpoints,
            observers: Mutex::new(Vec::new()),
            generation: tokio::sync::watch::Sender::new(0),
            synced: tokio::sync::watch::Sender::new(false),
            clock,
        }
    }

    /// The clock endpoints and decisions read time from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Wakes on every change of the endpoint set (the value is a change counter).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Publishes `set` as the current endpoints and tells subscribers.
    fn store_set(&self, set: EndpointSet) {
        self.endpoints.store(Arc::new(set));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Registers a plugin (or anything) that must forget departed endpoints.
    pub fn add_observer(&self, observer: Arc<dyn EndpointObserver>) {
        self.observers.lock().push(observer);
    }

    // === pool ===

    /// Sets the pool; the pool counts as synced from now on.
    pub fn set_pool(&self, pool: PoolInfo) {
        self.pool.store(Some(Arc::new(pool)));
    }

    pub fn pool(&self) -> Option<Arc<PoolInfo>> {
        self.pool.load_full()
    }

    /// True once the pool has been loaded (v1.0.1 `PoolHasSynced`).
    pub fn pool_synced(&self) -> bool {
        self.pool.load().is_some()
    }

    /// Records whether the pool and its endpoints have been loaded (pods listed, or the
    /// static endpoints read). Readiness follows it.
    pub fn set_synced(&self, synced: bool) {
        self.synced.send_if_modified(|current| {
            let changed = *current != synced;
            *current = synced;
            changed
        });
    }

    /// Whether the pool and its endpoints have been loaded (see [`Datastore::set_synced`]).
    pub fn synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Wakes on every change of [`Datastore::synced`].
    pub fn subscribe_synced(&self) -> tokio::sync::watch::Receiver<bool> {
        self.synced.subscribe()
    }

    /// Drops the pool, its endpoints and objectives (pool deleted); no longer synced.
    pub fn clear(&self) {
        self.set_synced(false);
        self.pool.store(None);
        let removed = {
            let _writer = self.write_lock.lock();
            self.publish(|all| (all, Vec::new()))
        };
        self.notify_removed(&removed);
        self.objectives.store(Arc::new(HashMap::new()));
    }

    // === endpoints ===

    /// The current endpoints; one atomic load, never blocks.
    pub fn snapshot(&self) -> Arc<EndpointSet> {
        self.endpoints.load_full()
    }

    /// Adds an endpoint, or updates the name and labels of the one at that address
    /// (keeping its id, metrics and in-flight count).
    pub fn upsert_endpoint(&self, spec: EndpointSpec) -> Result<Arc<Endpoint>, DatastoreError> {
        let _writer = self.write_lock.lock();
        let current = self.endpoints.load_full();
        if let Some(existing) = current.get(spec.address) {
            if !existing.matches_spec(&spec) {
                existing.set_meta(spec);
            }
            return Ok(Arc::clone(existing));
        }
        self.check_limit(current.len() + 1)?;
        let added = Arc::new(Endpoint::new(
            self.allocate_id(),
            spec,
            Arc::clone(&self.clock),
        ));
        let mut endpoints = current.endpoints.clone();
        endpoints.push(Arc::clone(&added));
        self.store_set(EndpointSet::new(endpoints));
        Ok(added)
    }

    /// Removes the endpoint at `address`; returns whether it existed.
    pub fn remove_endpoint(&self, address: SocketAddr) -> bool {
        let removed = {
            let _writer = self.write_lock.lock();
            self.publish(|endpoints| {
                let (gone, kept) = endpoints.into_iter().partition(|e| e.address() == address);
                (gone, kept)
            })
        };
        self.notify_removed(&removed);
        !removed.is_empty()
    }

    /// Makes the endpoint set exactly `specs` (a full resync): unchanged endpoints keep
    /// their identity, metrics and in-flight counts; the rest are added or removed.
    pub fn replace_endpoints(&self, specs: Vec<EndpointSpec>) -> Result<(), DatastoreError> {
        self.check_limit(specs.len())?;
        let removed = {
            let _writer = self.write_lock.lock();
            let current = self.endpoints.load_full();
            let mut next = Vec::with_capacity(specs.len());
            for spec in specs {
                let endpoint = match current.get(spec.address) {
                    Some(existing) => {
                        if !existing.matches_spec(&spec) {
                            existing.set_meta(spec);
                        }
                        Arc::clone(existing)
                    }
                    None => Arc::new(Endpoint::new(
                        self.allocate_id(),
                        spec,
                        Arc::clone(&self.clock),
                    )),
                };
                next.push(endpoint);
            }
            let kept: std::collections::HashSet<EndpointId> = next.iter().map(|e| e.id()).collect();
            let removed: Vec<Arc<Endpoint>> = current
                .endpoints
                .iter()
                .filter(|e| !kept.contains(&e.id()))
                .cloned()
                .collect();
            self.store_set(EndpointSet::new(next));
            removed
        };
        self.notify_removed(&removed);
        Ok(())
    }

    // === objectives ===

    pub fn set_objective(&self, objective: Objective) {
        self.objectives.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.insert(objective.name.clone(), objective.clone());
            next
        });
    }

    pub fn remove_objective(&self, name: &str) {
        self.objectives.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.remove(name);
            next
        });
    }

    /// Makes the objectives exactly `objectives` (a relist).
    pub fn replace_objectives(&self, objectives: Vec<Objective>) {
        let map = objectives
            .into_iter()
            .map(|o| (o.name.clone(), o))
            .collect();
        self.objectives.store(Arc::new(map));
    }

    /// The objective with this name (v1.0.1 looks objectives up by `metadata.name`).
    pub fn objective(&self, name: &str) -> Option<Objective> {
        self.objectives.load().get(name).cloned()
    }

    // === internals ===

    fn allocate_id(&self) -> EndpointId {
        EndpointId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn check_limit(&self, requested: usize) -> Result<(), DatastoreError> {
        if requested > self.max_endpoints {
            return Err(DatastoreError::TooManyEndpoints {
                requested,
                limit: self.max_endpoints,
            });
        }
        Ok(())
    }

    /// Applies `split` (which returns removed and kept endpoints) and publishes the kept ones.
    /// The caller holds the write lock.
    fn publish(
        &self,
        split: impl FnOnce(Vec<Arc<Endpoint>>) -> (Vec<Arc<Endpoint>>, Vec<Arc<Endpoint>>),
    ) -> Vec<Arc<Endpoint>> {
        let current = self.endpoints.load_full();
        let (removed, kept) = split(current.endpoints.clone());
        if !removed.is_empty() {
            self.store_set(EndpointSet::new(kept));
        }
        removed
    }

    fn notify_removed(&self, removed: &[Arc<Endpoint>]) {
        if removed.is_empty() {
            return;
        }
        let observers = self.observers.lock().clone();
        for endpoint in removed {
            for observer in &observers {
                observer.endpoint_removed(endpoint);
            }
        }
    }
}

#[cfg(test)]
mod tests;
