//! Following the datastore: one subscriber task per endpoint, started when it appears,
//! restarted when its rank changes, stopped (and forgotten by the index) when it leaves.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use epp_core::datastore::{Endpoint, EndpointId};
use tokio::task::JoinHandle;

use crate::endpoint::{self, Shared, Target};

/// A task that is aborted when this is dropped (so dropping the follower stops them all).
struct AbortOnDrop(Option<JoinHandle<()>>);

impl AbortOnDrop {
    /// Aborts the task and waits until it has stopped, so it cannot touch the index after.
    async fn stop(mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
            let _ = handle.await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            handle.abort();
        }
    }
}

/// The rank of each endpoint: endpoints grouped by IP, sorted by port within one IP; the
/// N-th is rank N (its publisher listens on the subscription's port + N).
pub(crate) fn targets(endpoints: &[Arc<Endpoint>]) -> Vec<Target> {
    let mut by_ip: HashMap<IpAddr, Vec<(u16, EndpointId)>> = HashMap::new();
    for e in endpoints {
        let address = e.address();
        by_ip
            .entry(address.ip())
            .or_default()
            .push((address.port(), e.id()));
    }
    let mut out = Vec::with_capacity(endpoints.len());
    for (ip, mut ports) in by_ip {
        ports.sort_unstable();
        for (rank, (port, id)) in ports.into_iter().enumerate() {
            out.push(Target {
                id,
                address: std::net::SocketAddr::new(ip, port),
                rank: u16::try_from(rank).unwrap_or(u16::MAX),
            });
        }
    }
    out
}

/// Runs until aborted or the datastore is dropped.
pub(crate) async fn follow(shared: Arc<Shared>) {
    let mut changes = shared.datastore.subscribe();
    let mut running: HashMap<EndpointId, (Target, AbortOnDrop)> = HashMap::new();
    loop {
        changes.borrow_and_update();
        let snapshot = shared.datastore.snapshot();
        let wanted: HashMap<EndpointId, Target> = targets(snapshot.endpoints())
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let stale: Vec<EndpointId> = running
            .iter()
            .filter(|(id, (target, _))| wanted.get(id) != Some(target))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some((_, task)) = running.remove(&id) {
                task.stop().await;
            }
            let index = &shared.subscription.index;
            if wanted.contains_key(&id) {
                // Same endpoint, other rank: another publisher from now on.
                let now = shared.datastore.clock().now();
                index.mark_unreliable(id, epp_core::prefix::precise::Unreliable::Reconnect, now);
            } else {
                index.forget_endpoint(id);
            }
        }
        for (id, target) in wanted {
            running.entry(id).or_insert_with(|| {
                let task = tokio::spawn(endpoint::run(Arc::clone(&shared), target));
                (target, AbortOnDrop(Some(task)))
            });
        }
        shared
            .counters
            .endpoints
            .store(running.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if changes.changed().await.is_err() {
            return;
        }
    }
}
