//! Leader election on a `coordination.k8s.io/v1` Lease, with controller-runtime's name
//! and timings. Only the leader reports ready; unlike upstream, followers keep watching and
//! scraping, so a failover serves warm at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

/// controller-runtime's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a lease is valid without renewal (15s).
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it steps down (10s).
    pub renew_deadline: Duration,
    /// Time between attempts (2s).
    pub retry_period: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        LeaseTimings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The lease name upstream uses: `epp-<namespace>-<pool>.gateway-api-inference-extension.sigs.k8s.io`.
pub fn lease_name(namespace: &str, pool: &str) -> String {
    format!("epp-{namespace}-{pool}.gateway-api-inference-extension.sigs.k8s.io")
}

/// This replica's identity: the host (pod) name plus a random suffix, as controller-runtime.
pub fn identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "epp".to_owned());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// One replica's view of the lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: LeaseTimings,
    /// The lease as last read, and when we saw it change (local clock: no cross-host skew).
    observed: Option<(Lease, Instant)>,
}

impl LeaderElector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: String,
        identity: String,
        timings: LeaseTimings,
    ) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name,
            identity,
            timings,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Campaigns until `shutdown` turns true, calling `report` with each change of
    /// leadership (the wiring passes it to the health service); on shutdown a held lease is
    /// released so another replica takes over at once.
    pub async fn run(mut self, report: impl Fn(bool) + Send, mut shutdown: watch::Receiver<bool>) {
        let mut last_renewal: Option<Instant> = None;
        let mut is_leader = false;
        loop {
            let leading = match self.try_acquire_or_renew().await {
                Ok(held) => {
                    if held {
                        last_renewal = Some(Instant::now());
                    }
                    held
                }
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.name, "lease update failed");
                    // A leader that cannot renew keeps leading until the renew deadline.
                    last_renewal.is_some_and(|at| at.elapsed() < self.timings.renew_deadline)
                }
            };
            if !leading {
                last_renewal = None;
            }
            if leading != is_leader {
                tracing::info!(identity = %self.identity, leader = leading, "leadership changed");
                is_leader = leading;
                report(leading);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timings.retry_period) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        if is_leader {
            report(false);
            self.release().await;
        }
    }

    /// One round: create the lease, renew ours, or take over an expired one.
    /// Returns whether we hold it now.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Instant::now();
        let Some(current) = self.api.get_opt(&self.name).await? else {
            let created = self
                .api
                .create(&PostParams::default(), &self.lease(None, 0))
                .await?;
            self.observed = Some((created, now));
            return Ok(true);
        };
        self.observe(&current, now);
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        let ours = holder == self.identity;
        if !ours && !holder.is_empty() && !self.expired(now) {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquired_at = if ours {
            spec.acquire_time.clone()
        } else {
            None
        };
        let mut next = self.lease(acquired_at, transitions);
        next.metadata.resource_version = current.metadata.resource_version.clone();
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(updated) => {
                self.observed = Some((updated, now));
                Ok(true)
            }
            // Someone else wrote first: they hold it.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Remembers when the lease last changed, by our clock.
    fn observe(&mut self, lease: &Lease, now: Instant) {
        let changed = self.observed.as_ref().is_none_or(|(seen, _)| {
            seen.metadata.resource_version != lease.metadata.resource_version
        });
        if changed {
            self.observed = Some((lease.clone(), now));
        }
    }

    /// Whether the holder failed to renew for a whole lease duration.
    fn expired(&self, now: Instant) -> bool {
        self.observed.as_ref().is_none_or(|(lease, seen)| {
            let seconds = lease
                .spec
                .as_ref()
                .and_then(|s| s.lease_duration_seconds)
                .unwrap_or(0);
            let duration = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
            now.saturating_duration_since(*seen) > duration
        })
    }

    fn lease(&self, acquired: Option<MicroTime>, transitions: i32) -> Lease {
        let now = MicroTime(Timestamp::now());
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(
                    i32::try_from(self.timings.lease_duration.as_secs()).unwrap_or(15),
                ),
                acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..Default::default()
            }),
        }
    }

    /// Gives the lease up (empty holder, 1 s duration), as controller-runtime's
    /// `LeaderElectionReleaseOnCancel`.
    async fn release(&mut self) {
        let Ok(Some(current)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let holder = current
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref());
        if holder != Some(self.identity.as_str()) {
            return;
        }
        let mut released = current.clone();
        if let Some(spec) = released.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match self
            .api
            .replace(&self.name, &PostParams::default(), &released)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "lease released"),
            Err(e) => tracing::warn!(error = %e, "could not release the lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_name_matches_upstream() {
        assert_eq!(
            lease_name("default", "mistral"),
            "epp-default-mistral.gateway-api-inference-extension.sigs.k8s.io"
        );
        let id = identity();
        assert!(id.contains('_') && id.len() > 36, "{id}");
    }
}
