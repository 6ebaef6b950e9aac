//! The InferencePool: its selector and target ports decide which pods are endpoints.
//! A selector or port change restarts the pod watch (a full resync); deleting the pool
//! clears everything.

use std::fmt::Debug;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use crate::kube::pods::watch_pods;
use crate::kube::resources::PoolView;
use epp_core::datastore::{Datastore, PoolInfo};

/// Follows one pool (by name) of type `K`, converted to a [`PoolView`] by `view`.
pub async fn watch_pool<K>(
    client: Client,
    namespace: String,
    name: String,
    view: fn(&K) -> PoolView,
    datastore: Arc<Datastore>,
) where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut pods = PodWatch::new(client, namespace, datastore);
    let mut listed: Option<PoolView> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(pool)) => pods.pool_changed(Some(view(&pool))),
            Ok(Event::Delete(_)) => pods.pool_changed(None),
            Ok(Event::Init) => listed = None,
            Ok(Event::InitApply(pool)) => listed = Some(view(&pool)),
            // After a (re)list, the pool is whatever the list held: absent means deleted.
            Ok(Event::InitDone) => pods.pool_changed(listed.take()),
            Err(e) => {
                tracing::warn!(error = %e, pool = %name, "InferencePool watch error; retrying")
            }
        }
    }
}

/// The pod watch of the current pool, restarted when the selector or ports change.
struct PodWatch {
    client: Client,
    namespace: String,
    datastore: Arc<Datastore>,
    current: Option<PoolView>,
    task: Option<JoinHandle<()>>,
}

impl PodWatch {
    fn new(client: Client, namespace: String, datastore: Arc<Datastore>) -> Self {
        PodWatch {
            client,
            namespace,
            datastore,
            current: None,
            task: None,
        }
    }

    fn pool_changed(&mut self, pool: Option<PoolView>) {
        if pool == self.current {
            return;
        }
        let Some(pool) = pool else {
            tracing::info!("InferencePool deleted or absent: no endpoints");
            self.stop();
            self.current = None;
            self.datastore.clear();
            return;
        };
        self.datastore.set_pool(PoolInfo {
            name: pool.name.clone(),
            namespace: pool.namespace.clone(),
            target_ports: pool.target_ports.clone(),
        });
        let resync = self.current.as_ref().is_none_or(|old| {
            old.selector != pool.selector || old.target_ports != pool.target_ports
        });
        if resync {
            tracing::info!(selector = ?pool.selector, ports = ?pool.target_ports, "InferencePool loaded: watching its pods");
            self.start(pool.clone());
        }
        self.current = Some(pool);
    }

    fn start(&mut self, pool: PoolView) {
        self.stop();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let datastore = Arc::clone(&self.datastore);
        let synced = Arc::clone(&self.datastore);
        self.task = Some(tokio::spawn(watch_pods(api, pool, datastore, move || {
            synced.set_synced(true)
        })));
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.stop();
    }
}
