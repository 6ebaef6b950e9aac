//! An EPP started in the test's own process on ephemeral loopback ports, plaintext:
//! [`loopback_epp!`](crate::loopback_epp) defines `TestEpp` (static endpoints) and `KubeEpp`
//! (discovery through a [`FakeApiServer`]) in the calling test binary; this module holds
//! what they share that does not need the `epp` package.
//!
//! Why a macro: the EPP's wiring (`epp::app`) lives in the `epp` package, which depends on
//! `epp-bench`, which depends on this crate; a crate here depending on `epp` would close a
//! cycle Cargo refuses (even as an optional dependency). The macro expands in the test
//! binaries and benches of `epp`, where `epp::app` is at hand.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use epp_core::config::EndpointPickerConfig;
use epp_core::datastore::{Datastore, LoraState, MetricsUpdate, Objective};

use crate::fake_apiserver::FakeApiServer;

/// The scorers of the upstream hermetic test: kv, queue, prefix, lora (weight 1), max-score picker.
pub const HERMETIC_CONFIG: &str = r#"
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: kv-cache-utilization-scorer
- type: queue-scorer
- type: prefix-cache-scorer
- type: lora-affinity-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: kv-cache-utilization-scorer
  - pluginRef: queue-scorer
  - pluginRef: prefix-cache-scorer
  - pluginRef: lora-affinity-scorer
  - pluginRef: max-score-picker
"#;

/// The config of a `KubeEpp`: queue and KV-cache scorers.
pub const KUBE_CONFIG: &str = "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n";

/// How long a `KubeEpp` waits for discovery: long enough for watches on a busy 2-core
/// machine, short enough to fail fast.
pub const KUBE_WAIT: Duration = Duration::from_secs(10);

/// Metrics for `TestEpp::set_metrics`: waiting queue, KV usage, active LoRA adapters.
pub fn metrics(queue: u64, kv: f64, active: &[&str]) -> MetricsUpdate {
    MetricsUpdate {
        waiting_queue_size: Some(queue),
        kv_cache_usage: Some(kv),
        lora: Some(LoraState {
            active: active.iter().map(|s| s.to_string()).collect(),
            waiting: Vec::new(),
            max_active: 0,
        }),
        ..Default::default()
    }
}

/// `ip:port` literals as addresses.
pub fn addresses(endpoints: &[&str]) -> Vec<SocketAddr> {
    endpoints
        .iter()
        .map(|a| a.parse().expect("endpoint address"))
        .collect()
}

/// Parses a test's config YAML.
pub fn config(yaml: &str) -> EndpointPickerConfig {
    EndpointPickerConfig::from_text(yaml).expect("test config")
}

/// Sets the metrics of the endpoint at `address`, which must exist.
pub fn set_metrics(datastore: &Datastore, address: &str, update: MetricsUpdate) {
    let address: SocketAddr = address.parse().expect("address");
    let snapshot = datastore.snapshot();
    let endpoint = snapshot.get(address).expect("endpoint exists");
    endpoint.store_metrics(update);
}

/// Adds or replaces the objective `name`.
pub fn set_objective(datastore: &Datastore, name: &str, priority: i32) {
    datastore.set_objective(Objective {
        name: name.to_owned(),
        priority,
    });
}

/// The datastore's endpoints as `ip:port` strings.
pub fn endpoint_addresses(datastore: &Datastore) -> BTreeSet<String> {
    datastore
        .snapshot()
        .endpoints()
        .iter()
        .map(|e| e.address_text().to_owned())
        .collect()
}

/// A kubeconfig file for `server`, namespace `default`, kept while the directory lives.
pub fn kubeconfig(server: &FakeApiServer) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    namespace: default\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
        server.url()
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    (dir, path)
}

/// Waits until `condition` holds, polling every 20 ms for at most [`KUBE_WAIT`]; on a
/// timeout the panic names `what` and shows `state`.
pub async fn until(what: &str, condition: impl Fn() -> bool, state: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + KUBE_WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}; {}",
            state()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Types the macro's expansion names, reached through `$crate` so that a test binary
/// needs no dependency of its own on them.
#[doc(hidden)]
pub mod reexports {
    pub use epp_core::datastore::{Datastore, MetricsUpdate};
    pub use epp_net::health::ServingStatus;
    pub use tempfile::TempDir;
}

/// Defines, in the calling crate, `TestEpp` and `KubeEpp`: an EPP started in this process
/// on ephemeral loopback ports (plaintext) over static endpoints, or over pool `pool` in
/// `default` found through a [`FakeApiServer`](crate::fake_apiserver::FakeApiServer).
/// The crate must depend on `epp` (see [`loopback`](crate::loopback) for why this is a
/// macro). Invoke it once, at the root of a test binary or bench:
///
/// ```ignore
/// epp_testkit::loopback_epp!();
///
/// let epp = TestEpp::start(&["10.0.0.1:8000"], epp_testkit::HERMETIC_CONFIG).await;
/// epp.set_metrics("10.0.0.1:8000", epp_testkit::metrics(0, 0.1, &[]));
/// let mut stream = epp.stream().await;
/// ```
#[macro_export]
macro_rules! loopback_epp {
    () => {
        /// An EPP running in this process on ephemeral loopback ports, plaintext.
        #[allow(dead_code)]
        pub struct TestEpp {
            pub running: ::epp::app::RunningEpp,
        }

        #[allow(dead_code)]
        impl TestEpp {
            /// Starts an EPP over `endpoints` (`ip:port`) with `config` (YAML).
            pub async fn start(endpoints: &[&str], config: &str) -> TestEpp {
                Self::start_with(endpoints, config, |_| {}).await
            }

            /// Like [`TestEpp::start`], letting the test adjust the flags first.
            pub async fn start_with(
                endpoints: &[&str],
                config: &str,
                adjust: impl FnOnce(&mut ::epp::cli::Options),
            ) -> TestEpp {
                let addresses = $crate::loopback::addresses(endpoints);
                let mut options = ::epp::cli::Options::default();
                options.endpoint_source = ::epp::cli::EndpointSource::Static(addresses.clone());
                options.endpoints = addresses;
                options.grpc_port = 0;
                options.grpc_health_port = 0;
                options.metrics_port = 0;
                options.secure_serving = false;
                adjust(&mut options);
                let config = $crate::loopback::config(config);
                let running = ::epp::app::start(&options, config)
                    .await
                    .expect("EPP starts");
                TestEpp { running }
            }

            pub fn datastore(&self) -> &::std::sync::Arc<$crate::loopback::reexports::Datastore> {
                &self.running.datastore
            }

            /// Sets the metrics of the endpoint at `address`.
            pub fn set_metrics(
                &self,
                address: &str,
                update: $crate::loopback::reexports::MetricsUpdate,
            ) {
                $crate::loopback::set_metrics(self.datastore(), address, update);
            }

            pub fn set_objective(&self, name: &str, priority: i32) {
                $crate::loopback::set_objective(self.datastore(), name, priority);
            }

            pub async fn client(&self) -> $crate::stream::ExtProcClient {
                $crate::stream::client(self.running.ext_proc_address).await
            }

            /// Opens one ext_proc stream.
            pub async fn stream(&self) -> $crate::ExtProcStream {
                $crate::ExtProcStream::open(self.client().await).await
            }
        }

        /// An EPP for pool `pool` of a group in `default`, discovering through a fake
        /// API server.
        #[allow(dead_code)]
        pub struct KubeEpp {
            pub epp: TestEpp,
            _kubeconfig: $crate::loopback::reexports::TempDir,
        }

        #[allow(dead_code)]
        impl KubeEpp {
            pub async fn start(
                server: &$crate::fake_apiserver::FakeApiServer,
                group: &str,
            ) -> KubeEpp {
                Self::start_with(server, group, |_| {}).await
            }

            pub async fn start_with(
                server: &$crate::fake_apiserver::FakeApiServer,
                group: &str,
                adjust: impl FnOnce(&mut ::epp::cli::Options),
            ) -> KubeEpp {
                let (dir, path) = $crate::loopback::kubeconfig(server);
                let group = group.to_owned();
                let epp = TestEpp::start_with(&[], $crate::loopback::KUBE_CONFIG, move |o| {
                    o.pool_name = "pool".into();
                    o.pool_group = group.clone();
                    o.endpoint_source = ::epp::cli::EndpointSource::Kubernetes {
                        pool_name: "pool".into(),
                        namespace: "default".into(),
                        group,
                    };
                    o.kubeconfig = Some(path);
                    adjust(o);
                })
                .await;
                KubeEpp {
                    epp,
                    _kubeconfig: dir,
                }
            }

            /// The datastore's endpoints as `ip:port` strings.
            pub fn endpoints(&self) -> ::std::collections::BTreeSet<String> {
                $crate::loopback::endpoint_addresses(self.epp.datastore())
            }

            /// Readiness as the health port reports it for any service name (HA off).
            pub fn ready(&self) -> bool {
                self.epp.running.health.status("inference-extension")
                    == $crate::loopback::reexports::ServingStatus::Serving
            }

            /// Waits until `condition` holds, polling every 20 ms.
            pub async fn until(&self, what: &str, condition: impl Fn(&KubeEpp) -> bool) {
                $crate::loopback::until(
                    what,
                    || condition(self),
                    || format!("endpoints {:?}", self.endpoints()),
                )
                .await;
            }

            /// Waits until the endpoints are exactly `expected`.
            pub async fn until_endpoints(&self, expected: &[&str]) {
                let expected: ::std::collections::BTreeSet<String> =
                    expected.iter().map(|s| s.to_string()).collect();
                self.until(&format!("endpoints are {expected:?}"), |k| {
                    k.endpoints() == expected
                })
                .await;
            }
        }
    };
}
