//! Kubernetes discovery: the InferencePool, its pods and its InferenceObjectives, watched
//! with kube-rs, and leader election.
//!
//! Watches survive API-server restarts, expired resource versions (410) and dropped
//! connections: kube-rs's watcher relists and the pod watch replaces the endpoint set on
//! every complete list, keeping unchanged endpoints' identity, metrics and counters.

pub mod leader;
mod objectives;
mod pods;
mod pool;
pub mod resources;

use std::path::Path;
use std::sync::Arc;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::task::JoinHandle;

use epp_core::datastore::Datastore;

pub use objectives::for_pool as objective_for_pool;
pub use pods::pod_endpoints;

use resources::{PoolView, X_K8S_GROUP, v1, v1alpha2};

/// Which pool to serve (`--pool-name`, `--pool-namespace`, `--pool-group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRef {
    pub name: String,
    pub namespace: String,
    pub group: String,
}

/// A client from `--kubeconfig`, else `KUBECONFIG`/`~/.kube/config`, else in-cluster.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, kube::Error> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(kube::Error::InferKubeconfig)?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(kube::Error::InferKubeconfig)?
        }
        None => kube::Config::infer()
            .await
            .map_err(kube::Error::InferConfig)?,
    };
    Client::try_from(config)
}

/// Starts the pool and objective watches; the returned tasks run until aborted.
pub fn start(client: Client, pool: &PoolRef, datastore: Arc<Datastore>) -> Vec<JoinHandle<()>> {
    let pool_task = if pool.group == X_K8S_GROUP {
        tokio::spawn(pool::watch_pool::<v1alpha2::InferencePool>(
            client.clone(),
            pool.namespace.clone(),
            pool.name.clone(),
            PoolView::from_v1alpha2,
            Arc::clone(&datastore),
        ))
    } else {
        tokio::spawn(pool::watch_pool::<v1::InferencePool>(
            client.clone(),
            pool.namespace.clone(),
            pool.name.clone(),
            PoolView::from_v1,
            Arc::clone(&datastore),
        ))
    };
    let objectives = kube::Api::namespaced(client, &pool.namespace);
    let objectives_task = tokio::spawn(objectives::watch_objectives(
        objectives,
        pool.name.clone(),
        pool.group.clone(),
        datastore,
    ));
    vec![pool_task, objectives_task]
}
