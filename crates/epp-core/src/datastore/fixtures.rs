//! Endpoint builders for tests and benchmarks: `TestEndpoint::new("10.0.0.1:8000").queue(3).kv(0.4).build()`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::datastore::{Endpoint, EndpointId, EndpointSpec, LoraState, MetricsUpdate};
use crate::time::{Clock, SystemClock};

/// Builds a standalone endpoint with chosen metrics (ids come from a private counter).
#[derive(Debug, Clone)]
pub struct TestEndpoint {
    spec: EndpointSpec,
    metrics: MetricsUpdate,
}

impl TestEndpoint {
    /// `address` must be `ip:port`; a bad literal is a bug in the test itself.
    pub fn new(address: &str) -> Self {
        let address: SocketAddr = address
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        TestEndpoint {
            spec: EndpointSpec::from_address(address),
            metrics: MetricsUpdate::default(),
        }
    }

    pub fn queue(mut self, waiting: u64) -> Self {
        self.metrics.waiting_queue_size = Some(waiting);
        self
    }

    pub fn running(mut self, running: u64) -> Self {
        self.metrics.running_requests = Some(running);
        self
    }

    pub fn kv(mut self, usage: f64) -> Self {
        self.metrics.kv_cache_usage = Some(usage);
        self
    }

    pub fn lora(mut self, active: &[&str], waiting: &[&str], max_active: u32) -> Self {
        self.metrics.lora = Some(LoraState {
            active: active.iter().map(|s| s.to_string()).collect(),
            waiting: waiting.iter().map(|s| s.to_string()).collect(),
            max_active,
        });
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.spec.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The spec, for adding through the datastore API.
    pub fn spec(&self) -> EndpointSpec {
        self.spec.clone()
    }

    /// The metrics update, for applying to a datastore endpoint.
    pub fn metrics(&self) -> MetricsUpdate {
        self.metrics.clone()
    }

    /// A standalone endpoint on the host's clock, its metrics stamped now.
    pub fn build(self) -> Arc<Endpoint> {
        self.build_with_clock(Arc::new(SystemClock))
    }

    /// A standalone endpoint whose metrics are stamped and aged by `clock`.
    pub fn build_with_clock(self, clock: Arc<dyn Clock>) -> Arc<Endpoint> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1 << 40);
        let endpoint = Endpoint::new(
            EndpointId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            self.spec,
            clock,
        );
        endpoint.store_metrics(self.metrics);
        Arc::new(endpoint)
    }
}

/// A datastore on `clock` holding `endpoints`, with their metrics stored (endpoints without
/// any keep their signals unreported).
pub fn datastore_on(
    clock: &Arc<crate::time::ManualClock>,
    endpoints: &[TestEndpoint],
) -> crate::datastore::Datastore {
    let store = crate::datastore::Datastore::with_clock(100, Arc::clone(clock) as Arc<dyn Clock>);
    for e in endpoints {
        let added = store.upsert_endpoint(e.spec()).expect("add");
        if e.metrics() != MetricsUpdate::default() {
            added.store_metrics(e.metrics());
        }
    }
    store
}
