//! `grpc.health.v1.Health` for the health port and the ext_proc port, with upstream semantics.
//!
//! Health port (`--grpc-health-port`, plaintext), as upstream v1.0.1:
//! - leader election off: every service name is SERVING iff the pool is synced;
//! - leader election on: `liveness` is always SERVING; `readiness`, `""` and
//!   `envoy.service.ext_proc.v3.ExternalProcessor` are SERVING iff synced and leader;
//!   any other name is SERVICE_UNKNOWN (a response status, not a gRPC error);
//! - `List` reports the ext_proc service (plus `liveness` and `readiness` with HA).
//!
//! Improvements: `Watch` streams status changes (upstream: UNIMPLEMENTED), and a
//! draining state (SIGTERM) turns every status NOT_SERVING except `liveness` with leader
//! election on (with it off, names are not distinguished, so all of them turn).
//! [`HealthState::shutdown`] then ends open `Watch` streams so a graceful server
//! shutdown does not wait for them.
//!
//! Ext_proc port (`--health-checking`): `""` and the ext_proc service report the same
//! readiness; other names are SERVICE_UNKNOWN.

#[cfg(test)]
pub(crate) mod tests;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

/// Generated `grpc.health.v1` messages, client and server.
#[allow(missing_docs, clippy::all, rustdoc::bare_urls)]
pub mod pb {
    tonic::include_proto!("grpc.health.v1");
}

pub use pb::health_check_response::ServingStatus;
pub use pb::health_server;

/// Service name of the Envoy external processor.
pub const EXT_PROC_SERVICE: &str = "envoy.service.ext_proc.v3.ExternalProcessor";
/// Liveness service name (meaningful with leader election).
pub const LIVENESS_SERVICE: &str = "liveness";
/// Readiness service name (meaningful with leader election).
pub const READINESS_SERVICE: &str = "readiness";

struct Inner {
    /// Owned by the datastore (discovery sets it); read here, never stored twice.
    synced: watch::Receiver<bool>,
    leader: AtomicBool,
    draining: AtomicBool,
    shut_down: AtomicBool,
    ha_enabled: bool,
    changed: watch::Sender<()>,
}

/// Readiness inputs shared by the rest of the program; cheap to clone.
#[derive(Clone)]
pub struct HealthState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthState")
            .field("ha_enabled", &self.inner.ha_enabled)
            .field("synced", &self.is_synced())
            .field("leader", &self.is_leader())
            .field("draining", &self.is_draining())
            .finish()
    }
}

/// Which port a [`HealthService`] answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthScope {
    /// The dedicated `--grpc-health-port` (upstream semantics, see the module docs).
    HealthPort,
    /// The ext_proc port with `--health-checking`: `""` and the ext_proc service only.
    ExtProcPort,
}

impl HealthState {
    /// A new state: not leader, not draining. `ha_enabled` is
    /// `--ha-enable-leader-election`; `synced` says whether the pool and its endpoints
    /// have been loaded (the datastore's `subscribe_synced`).
    pub fn new(ha_enabled: bool, synced: watch::Receiver<bool>) -> Self {
        let (changed, _) = watch::channel(());
        Self {
            inner: Arc::new(Inner {
                synced,
                leader: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                shut_down: AtomicBool::new(false),
                ha_enabled,
                changed,
            }),
        }
    }

    fn set_flag(&self, flag: &AtomicBool, value: bool) {
        if flag.swap(value, Ordering::SeqCst) != value {
            self.inner.changed.send_replace(());
        }
    }

    /// Records whether this replica currently holds the leader lease.
    pub fn set_leader(&self, leader: bool) {
        self.set_flag(&self.inner.leader, leader);
    }

    /// Enters the draining state (SIGTERM): every non-`liveness` status becomes
    /// NOT_SERVING. Irreversible.
    pub fn set_draining(&self) {
        self.set_flag(&self.inner.draining, true);
    }

    /// Ends every open `Watch` stream (after it sends its latest status) so a graceful
    /// server shutdown does not wait for them; also enters draining. Irreversible.
    pub fn shutdown(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
        self.set_flag(&self.inner.shut_down, true);
    }

    /// Whether the pool and its endpoints have been loaded.
    pub fn is_synced(&self) -> bool {
        *self.inner.synced.borrow()
    }

    /// Whether this replica is the leader.
    pub fn is_leader(&self) -> bool {
        self.inner.leader.load(Ordering::SeqCst)
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Whether leader election is enabled.
    pub fn ha_enabled(&self) -> bool {
        self.inner.ha_enabled
    }

    /// Whether this replica should receive traffic: synced, leader (with HA), not draining.
    pub fn is_ready(&self) -> bool {
        self.is_synced() && (!self.ha_enabled() || self.is_leader()) && !self.is_draining()
    }

    /// Status of `service` on the health port (upstream semantics).
    pub fn status(&self, service: &str) -> ServingStatus {
        self.status_in(HealthScope::HealthPort, service)
    }

    /// Status of `service` as answered on the given port.
    pub fn status_in(&self, scope: HealthScope, service: &str) -> ServingStatus {
        let ready = if self.is_ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        match scope {
            HealthScope::HealthPort if !self.ha_enabled() => ready,
            HealthScope::HealthPort => match service {
                LIVENESS_SERVICE => ServingStatus::Serving,
                READINESS_SERVICE | "" | EXT_PROC_SERVICE => ready,
                _ => ServingStatus::ServiceUnknown,
            },
            HealthScope::ExtProcPort => match service {
                "" | EXT_PROC_SERVICE => ready,
                _ => ServingStatus::ServiceUnknown,
            },
        }
    }

    /// Service names reported by `List` on the given port.
    pub fn listed_services(&self, scope: HealthScope) -> &'static [&'static str] {
        match scope {
            HealthScope::HealthPort if self.ha_enabled() => {
                &[EXT_PROC_SERVICE, LIVENESS_SERVICE, READINESS_SERVICE]
            }
            HealthScope::HealthPort => &[EXT_PROC_SERVICE],
            HealthScope::ExtProcPort => &["", EXT_PROC_SERVICE],
        }
    }

    /// Receivers notified whenever any input changes: the local flags, and sync.
    fn subscribe(&self) -> (watch::Receiver<()>, watch::Receiver<bool>) {
        (self.inner.changed.subscribe(), self.inner.synced.clone())
    }

    fn is_shut_down(&self) -> bool {
        self.inner.shut_down.load(Ordering::SeqCst)
    }
}

/// The `grpc.health.v1.Health` implementation.
#[derive(Debug, Clone)]
pub struct HealthService {
    state: HealthState,
    scope: HealthScope,
}

impl HealthService {
    /// The service for the dedicated health port.
    pub fn new(state: HealthState) -> Self {
        Self {
            state,
            scope: HealthScope::HealthPort,
        }
    }

    /// The service registered on the ext_proc port with `--health-checking`.
    pub fn for_ext_proc_port(state: HealthState) -> Self {
        Self {
            state,
            scope: HealthScope::ExtProcPort,
        }
    }

    fn check_and_log(&self, service: &str) -> ServingStatus {
        let status = self.state.status_in(self.scope, service);
        match status {
            ServingStatus::Serving => {
                tracing::trace!(service, "gRPC health check serving");
            }
            ServingStatus::ServiceUnknown => {
                tracing::info!(
                    requested_service = service,
                    available_services = ?self.state.listed_services(self.scope),
                    "gRPC health check requested unknown service"
                );
            }
            _ => {
                tracing::info!(
                    service,
                    is_live = self.state.is_synced(),
                    is_leader = self.state.is_leader(),
                    draining = self.state.is_draining(),
                    "gRPC health check not serving"
                );
            }
        }
        status
    }
}

/// The health-port server (`--grpc-health-port`).
pub fn health_server(state: HealthState) -> health_server::HealthServer<HealthService> {
    health_server::HealthServer::new(HealthService::new(state))
}

/// The health server added to the ext_proc port with `--health-checking`.
pub fn ext_proc_health_server(state: HealthState) -> health_server::HealthServer<HealthService> {
    health_server::HealthServer::new(HealthService::for_ext_proc_port(state))
}

fn response(status: ServingStatus) -> pb::HealthCheckResponse {
    pb::HealthCheckResponse {
        status: status as i32,
    }
}

/// Stream type of `Watch`.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl health_server::Health for HealthService {
    async fn check(
        &self,
        request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<pb::HealthCheckResponse>, Status> {
        let status = self.check_and_log(&request.get_ref().service);
        Ok(Response::new(response(status)))
    }

    async fn list(
        &self,
        _request: Request<pb::HealthListRequest>,
    ) -> Result<Response<pb::HealthListResponse>, Status> {
        let statuses = self
            .state
            .listed_services(self.scope)
            .iter()
            .map(|name| {
                (
                    (*name).to_owned(),
                    response(self.state.status_in(self.scope, name)),
                )
            })
            .collect();
        Ok(Response::new(pb::HealthListResponse { statuses }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        // Subscribe before reading the first status so no change is missed.
        let (changes, mut synced_changes) = self.state.subscribe();
        synced_changes.mark_unchanged();
        let first = self.state.status_in(self.scope, &service);
        let watcher = Watcher {
            state: self.state.clone(),
            scope: self.scope,
            service,
            changes,
            synced_changes,
            last: None,
            pending: Some(first),
        };
        let stream = futures_util::stream::unfold(watcher, Watcher::next);
        Ok(Response::new(Box::pin(stream)))
    }
}

/// State of one `Watch` call.
struct Watcher {
    state: HealthState,
    scope: HealthScope,
    service: String,
    changes: watch::Receiver<()>,
    synced_changes: watch::Receiver<bool>,
    last: Option<ServingStatus>,
    pending: Option<ServingStatus>,
}

impl Watcher {
    async fn next(mut self) -> Option<(Result<pb::HealthCheckResponse, Status>, Self)> {
        loop {
            if let Some(status) = self.pending.take() {
                self.last = Some(status);
                return Some((Ok(response(status)), self));
            }
            if self.state.is_shut_down() {
                return None;
            }
            let changed = tokio::select! {
                changed = self.changes.changed() => changed,
                changed = self.synced_changes.changed() => changed,
            };
            if changed.is_err() {
                return None;
            }
            let status = self.state.status_in(self.scope, &self.service);
            if self.last != Some(status) {
                self.pending = Some(status);
            }
        }
    }
}
