//! A datastore holding endpoint fixtures, for benches and tests that schedule or scrape
//! without an EPP around the datastore.

use std::sync::Arc;

use epp_core::datastore::Datastore;
use epp_core::datastore::fixtures::TestEndpoint;

/// A datastore holding `endpoints`, each with its metrics, and room for no more.
pub fn with_endpoints(endpoints: impl IntoIterator<Item = TestEndpoint>) -> Arc<Datastore> {
    let endpoints: Vec<TestEndpoint> = endpoints.into_iter().collect();
    let datastore = Arc::new(Datastore::new(endpoints.len()));
    for endpoint in &endpoints {
        datastore
            .upsert_endpoint(endpoint.spec())
            .expect("room for every endpoint")
            .store_metrics(endpoint.metrics());
    }
    datastore
}
