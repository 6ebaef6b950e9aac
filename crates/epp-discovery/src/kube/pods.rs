//! Pods of the pool: each Ready, non-terminating pod that matches the selector becomes one
//! endpoint per target port.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use crate::kube::resources::PoolView;
use epp_core::datastore::{Datastore, EndpointSpec};

/// The endpoints of one pod: none unless it is ready for traffic (v1.0.1 `podIsReady`:
/// no deletion timestamp and condition `Ready=True`); one per target port otherwise, named
/// `namespace/pod`, or `namespace/pod-rank-N` when the pool has several ports.
pub fn pod_endpoints(pod: &Pod, target_ports: &[u16]) -> Vec<EndpointSpec> {
    let Some(ip) = ready_ip(pod) else {
        return Vec::new();
    };
    let name = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    target_ports
        .iter()
        .enumerate()
        .map(|(rank, &port)| EndpointSpec {
            address: SocketAddr::new(ip, port),
            name: if target_ports.len() > 1 {
                format!("{name}-rank-{rank}")
            } else {
                name.clone()
            },
            labels: labels.clone(),
        })
        .collect()
}

fn ready_ip(pod: &Pod) -> Option<IpAddr> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return None;
    }
    status.pod_ip.as_deref()?.parse().ok()
}

/// `a=b,c=d`, the label selector of the pool.
pub fn label_selector(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Watches the pool's pods and keeps the datastore's endpoints equal to them. Calls
/// `on_synced` after each complete list (the first one makes the EPP ready).
pub async fn watch_pods(
    api: Api<Pod>,
    pool: PoolView,
    datastore: Arc<Datastore>,
    on_synced: impl Fn(),
) {
    let config = watcher::Config::default().labels(&label_selector(&pool.selector));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut current: BTreeMap<String, Vec<EndpointSpec>> = BTreeMap::new();
    let mut relist: BTreeMap<String, Vec<EndpointSpec>> = BTreeMap::new();
    while let Some(event) = events.next().await {
        let changed = match event {
            Ok(Event::Init) => {
                relist.clear();
                false
            }
            Ok(Event::InitApply(pod)) => {
                relist.insert(key(&pod), pod_endpoints(&pod, &pool.target_ports));
                false
            }
            Ok(Event::InitDone) => {
                current = std::mem::take(&mut relist);
                publish(&datastore, &current);
                on_synced();
                false
            }
            Ok(Event::Apply(pod)) => {
                current
                    .insert(key(&pod), pod_endpoints(&pod, &pool.target_ports))
                    .as_ref()
                    != current.get(&key(&pod))
            }
            Ok(Event::Delete(pod)) => current.remove(&key(&pod)).is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "pod watch error; retrying");
                false
            }
        };
        if changed {
            publish(&datastore, &current);
        }
    }
}

fn key(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Replaces the datastore's endpoints with those of `pods` (unchanged ones keep their
/// identity, metrics and in-flight counts).
fn publish(datastore: &Datastore, pods: &BTreeMap<String, Vec<EndpointSpec>>) {
    let specs: Vec<EndpointSpec> = pods.values().flatten().cloned().collect();
    let count = specs.len();
    if let Err(e) = datastore.replace_endpoints(specs) {
        tracing::error!(error = %e, "pool endpoints not updated");
    } else {
        tracing::debug!(endpoints = count, "pool endpoints updated");
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;

    fn pod(ip: Option<&str>, ready: &str, terminating: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("vllm-0".into()),
                namespace: Some("ns".into()),
                labels: Some([("app".to_string(), "vllm".to_string())].into()),
                deletion_timestamp: terminating
                    .then_some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            status: Some(PodStatus {
                pod_ip: ip.map(str::to_owned),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn readiness_table() {
        let cases = [
            (pod(Some("10.0.0.1"), "True", false), 1),
            (pod(Some("10.0.0.1"), "False", false), 0),
            (pod(Some("10.0.0.1"), "True", true), 0),
            (pod(None, "True", false), 0),
            (pod(Some("not-an-ip"), "True", false), 0),
        ];
        for (i, (pod, expected)) in cases.into_iter().enumerate() {
            assert_eq!(pod_endpoints(&pod, &[8000]).len(), expected, "case {i}");
        }
    }

    #[test]
    fn one_endpoint_per_target_port() {
        let specs = pod_endpoints(&pod(Some("10.0.0.1"), "True", false), &[8000, 8001]);
        let names: Vec<(String, String)> = specs
            .iter()
            .map(|s| (s.address.to_string(), s.name.clone()))
            .collect();
        assert_eq!(
            names,
            [
                ("10.0.0.1:8000".to_string(), "ns/vllm-0-rank-0".to_string()),
                ("10.0.0.1:8001".to_string(), "ns/vllm-0-rank-1".to_string())
            ]
        );
        assert_eq!(specs[0].labels.get("app").map(String::as_str), Some("vllm"));
        let single = pod_endpoints(&pod(Some("fd00::1"), "True", false), &[8000]);
        assert_eq!(single[0].address.to_string(), "[fd00::1]:8000");
        assert_eq!(single[0].name, "ns/vllm-0");
    }

    #[test]
    fn selector_string() {
        let selector = [
            ("app".to_string(), "vllm".to_string()),
            ("tier".to_string(), "gpu".to_string()),
        ]
        .into();
        assert_eq!(label_selector(&selector), "app=vllm,tier=gpu");
    }
}
