//! Starts an EPP whose `--kubeconfig` points at a fake API server.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use epp::cli::{EndpointSource, Options};
use epp_net::health::ServingStatus;

use crate::common::TestEpp;
use crate::fake_apiserver::FakeApiServer;

/// Long enough for watches on a busy 2-core machine, short enough to fail fast.
pub const WAIT: Duration = Duration::from_secs(10);

pub const CONFIG: &str = "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n";

/// A kubeconfig file for the fake server (kept alive by the returned directory).
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

/// An EPP for pool `pool` of `group` in `default`, discovering through `server`.
pub struct KubeEpp {
    pub epp: TestEpp,
    _kubeconfig: tempfile::TempDir,
}

impl KubeEpp {
    pub async fn start(server: &FakeApiServer, group: &str) -> KubeEpp {
        Self::start_with(server, group, |_| {}).await
    }

    pub async fn start_with(
        server: &FakeApiServer,
        group: &str,
        adjust: impl FnOnce(&mut Options),
    ) -> KubeEpp {
        let (dir, path) = kubeconfig(server);
        let group = group.to_owned();
        let epp = TestEpp::start_with(&[], CONFIG, move |o| {
            o.pool_name = "pool".into();
            o.pool_group = group.clone();
            o.endpoint_source = EndpointSource::Kubernetes {
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
    pub fn endpoints(&self) -> BTreeSet<String> {
        self.epp
            .datastore()
            .snapshot()
            .endpoints()
            .iter()
            .map(|e| e.address_text().to_owned())
            .collect()
    }

    /// Readiness as the health port reports it for any service name (HA off).
    pub fn ready(&self) -> bool {
        self.epp.running.health.status("inference-extension") == ServingStatus::Serving
    }

    /// Waits until `condition` holds, polling every 20 ms.
    pub async fn until(&self, what: &str, condition: impl Fn(&KubeEpp) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !condition(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {what}; endpoints {:?}",
                self.endpoints()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the endpoints are exactly `expected`.
    pub async fn until_endpoints(&self, expected: &[&str]) {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        self.until(&format!("endpoints are {expected:?}"), |k| {
            k.endpoints() == expected
        })
        .await;
    }
}
