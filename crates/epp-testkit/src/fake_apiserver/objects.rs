//! Builders of realistic objects for tests: Pods as the kubelet reports them, the two
//! InferencePool versions, InferenceObjectives and Leases.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::store::now_rfc3339;

/// A model-server Pod as a test wants it; `to_json` renders what the API server stores.
#[derive(Clone, Debug)]
pub struct FakePod {
    /// Namespace, `default` unless set.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `status.podIP`; None for a pod not yet scheduled.
    pub ip: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The `Ready` condition.
    pub ready: bool,
    /// Sets `metadata.deletionTimestamp` (graceful deletion in progress).
    pub terminating: bool,
    /// `status.phase`.
    pub phase: String,
    /// Container ports.
    pub ports: Vec<i32>,
}

impl FakePod {
    /// A running, ready pod with no IP and no labels in `default`.
    pub fn new(name: &str) -> FakePod {
        FakePod {
            namespace: "default".into(),
            name: name.into(),
            ip: None,
            labels: BTreeMap::new(),
            ready: true,
            terminating: false,
            phase: "Running".into(),
            ports: vec![8000],
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, ns: &str) -> FakePod {
        self.namespace = ns.into();
        self
    }

    /// Sets `status.podIP`.
    pub fn ip(mut self, ip: &str) -> FakePod {
        self.ip = Some(ip.into());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> FakePod {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the Ready condition.
    pub fn ready(mut self, ready: bool) -> FakePod {
        self.ready = ready;
        self
    }

    /// Marks the pod as being deleted.
    pub fn terminating(mut self, terminating: bool) -> FakePod {
        self.terminating = terminating;
        self
    }

    /// Sets `status.phase` (`Pending`, `Running`, `Succeeded`, `Failed`).
    pub fn phase(mut self, phase: &str) -> FakePod {
        self.phase = phase.into();
        self
    }

    /// Sets the container ports.
    pub fn ports(mut self, ports: &[i32]) -> FakePod {
        self.ports = ports.to_vec();
        self
    }

    /// The Pod object, with the status fields the EPP reads.
    pub fn to_json(&self) -> Value {
        let now = now_rfc3339();
        let ready = if self.ready { "True" } else { "False" };
        let condition = |kind: &str, status: &str| json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
        let ports: Vec<Value> = self
            .ports
            .iter()
            .map(|p| json!({"containerPort": p, "protocol": "TCP"}))
            .collect();
        let mut metadata =
            json!({"name": self.name, "namespace": self.namespace, "labels": self.labels});
        if self.terminating {
            metadata["deletionTimestamp"] = json!(now);
            metadata["deletionGracePeriodSeconds"] = json!(30);
        }
        let mut status = json!({
            "phase": self.phase, "hostIP": "10.0.0.1",
            "conditions": [
                condition("PodScheduled", "True"), condition("Initialized", "True"),
                condition("ContainersReady", ready), condition("Ready", ready),
            ],
        });
        if let Some(ip) = &self.ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {
                "nodeName": "node-1",
                "containers": [{"name": "model-server", "image": "vllm/vllm-openai:latest", "ports": ports}],
            },
            "status": status,
        })
    }
}

/// A `inference.networking.k8s.io/v1` InferencePool selecting `match_labels`.
pub fn inference_pool_v1(
    ns: &str,
    name: &str,
    match_labels: &[(&str, &str)],
    ports: &[i32],
    epp: &str,
) -> Value {
    let ports: Vec<Value> = ports.iter().map(|p| json!({"number": p})).collect();
    json!({
        "apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"matchLabels": labels(match_labels)},
            "targetPorts": ports,
            "endpointPickerRef": {"name": epp, "port": {"number": 9002}},
        },
    })
}

/// A `inference.networking.x-k8s.io/v1alpha2` InferencePool.
pub fn inference_pool_v1alpha2(
    ns: &str,
    name: &str,
    selector: &[(&str, &str)],
    port: i32,
    epp: &str,
) -> Value {
    json!({
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2", "kind": "InferencePool",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": labels(selector), "targetPortNumber": port,
            "extensionRef": {"name": epp, "portNumber": 9002},
        },
    })
}

/// A `inference.networking.x-k8s.io/v1alpha2` InferenceObjective for a pool.
pub fn inference_objective(ns: &str, name: &str, pool: &str, priority: Option<i32>) -> Value {
    let mut spec = json!({"poolRef": {"name": pool}});
    if let Some(p) = priority {
        spec["priority"] = json!(p);
    }
    json!({
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2", "kind": "InferenceObjective",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    })
}

/// A `coordination.k8s.io/v1` Lease held by `holder` (None: unheld).
pub fn lease(ns: &str, name: &str, holder: Option<&str>, duration_seconds: i32) -> Value {
    let mut spec = json!({"leaseDurationSeconds": duration_seconds});
    if let Some(holder) = holder {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("RFC 3339 formatting of the current time");
        spec["holderIdentity"] = json!(holder);
        spec["acquireTime"] = json!(now);
        spec["renewTime"] = json!(now);
        spec["leaseTransitions"] = json!(0);
    }
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    })
}

/// A label map.
fn labels(pairs: &[(&str, &str)]) -> Value {
    let map: BTreeMap<&str, &str> = pairs.iter().copied().collect();
    json!(map)
}
