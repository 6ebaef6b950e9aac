//! Starting the endpoint source the flags chose: Kubernetes watchers (with leader
//! election), a static list, an endpoints file, or simulated servers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::StartError;
use crate::cli::{EndpointSource, Options};
use epp_core::datastore::Datastore;
use epp_discovery::kube::leader::{self, LeaderElector};
use epp_discovery::kube::{self as kube_discovery, PoolRef};
use epp_discovery::objectives_file::{ObjectivesFile, ObjectivesFileWatcher};
use epp_discovery::static_endpoints::{self, EndpointsFile, EndpointsFileWatcher};
use epp_net::health::HealthState;
use epp_sim::{self, RunningSim};

/// How often `--endpoints-file` and `--objectives-file` are checked for changes.
const FILE_POLL: Duration = Duration::from_secs(1);

/// What the source started: background tasks, the leader elector (which must be
/// allowed to release its lease on shutdown), and simulated servers.
#[derive(Default)]
pub(super) struct Sources {
    pub tasks: Vec<JoinHandle<()>>,
    pub elector: Option<JoinHandle<()>>,
    pub simulated: Vec<RunningSim>,
    /// The API client of Kubernetes discovery (also used to protect `/metrics`).
    pub kube_client: Option<kube::Client>,
}

/// Starts the endpoint source; with a standalone source the pool is synced at once.
pub(super) async fn start(
    options: &Options,
    datastore: &Arc<Datastore>,
    health: &HealthState,
    shutdown: &watch::Receiver<bool>,
) -> Result<Sources, StartError> {
    let mut sources = Sources::default();
    match &options.endpoint_source {
        EndpointSource::Static(addresses) => static_endpoints::load_static(datastore, addresses)?,
        EndpointSource::File(path) => {
            let watcher = EndpointsFileWatcher::load(path, EndpointsFile(Arc::clone(datastore)))?;
            sources.tasks.push(tokio::spawn(watcher.watch(FILE_POLL)));
        }
        EndpointSource::Simulated(count) => {
            sources.simulated = start_simulated(options, *count).await?;
            let addresses: Vec<SocketAddr> =
                sources.simulated.iter().map(RunningSim::address).collect();
            static_endpoints::load_static(datastore, &addresses)?;
        }
        EndpointSource::Kubernetes {
            pool_name,
            namespace,
            group,
        } => {
            let pool = PoolRef {
                name: pool_name.clone(),
                namespace: namespace.clone(),
                group: group.clone(),
            };
            start_kubernetes(options, &pool, datastore, health, shutdown, &mut sources).await?;
            return Ok(sources);
        }
        EndpointSource::None => return Err(StartError::NoEndpointSource),
    }
    if let Some(path) = &options.objectives_file {
        let watcher = ObjectivesFileWatcher::load(path, ObjectivesFile(Arc::clone(datastore)))?;
        sources.tasks.push(tokio::spawn(watcher.watch(FILE_POLL)));
    }
    datastore.set_synced(datastore.pool_synced());
    Ok(sources)
}

async fn start_simulated(options: &Options, count: usize) -> Result<Vec<RunningSim>, StartError> {
    let sims = epp_sim::start_many(
        options.simulator_config.clone(),
        IpAddr::from([127, 0, 0, 1]),
        0,
        count,
    )
    .await?;
    for sim in &sims {
        tracing::info!(address = %sim.address(), "simulated vLLM server started");
    }
    Ok(sims)
}

/// Watches the pool, its pods and objectives; with `--ha-enable-leader-election`, also
/// campaigns for the lease (followers keep watching, so they are warm when they lead).
async fn start_kubernetes(
    options: &Options,
    pool: &PoolRef,
    datastore: &Arc<Datastore>,
    health: &HealthState,
    shutdown: &watch::Receiver<bool>,
    sources: &mut Sources,
) -> Result<(), StartError> {
    let client = kube_discovery::client(options.kubeconfig.as_deref())
        .await
        .map_err(StartError::Kubernetes)?;
    sources.kube_client = Some(client.clone());
    sources.tasks.extend(kube_discovery::start(
        client.clone(),
        pool,
        Arc::clone(datastore),
    ));
    if options.ha_enable_leader_election {
        let elector = LeaderElector::new(
            client,
            &pool.namespace,
            leader::lease_name(&pool.namespace, &pool.name),
            leader::identity(),
            options.lease_timings,
        );
        tracing::info!(identity = elector.identity(), "leader election enabled");
        sources.elector = Some(tokio::spawn(elector.run(
            {
                let health = health.clone();
                move |leading| health.set_leader(leading)
            },
            shutdown.clone(),
        )));
    }
    Ok(())
}
