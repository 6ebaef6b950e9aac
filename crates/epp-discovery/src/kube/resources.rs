//! The custom resources the EPP reads, as Rust types: InferencePool (`v1` and the older
//! `v1alpha2`) and InferenceObjective (`v1alpha2`). The CRDs in `manifests/crds/` are
//! generated from these types (`epp --print-crds`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the v1 InferencePool.
pub const POOL_GROUP_V1: &str = "inference.networking.k8s.io";
/// API group of the v1alpha2 InferencePool and of InferenceObjective.
pub const X_K8S_GROUP: &str = "inference.networking.x-k8s.io";

pub mod v1 {
    //! `inference.networking.k8s.io/v1`.
    use super::*;

    /// The pods of one model, and the EPP that picks among them.
    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "inference.networking.k8s.io",
        version = "v1",
        kind = "InferencePool",
        plural = "inferencepools",
        shortname = "infpool",
        namespaced,
        status = "InferencePoolStatus"
    )]
    #[serde(rename_all = "camelCase")]
    pub struct InferencePoolSpec {
        /// Pods (in the pool's namespace) whose labels match are the pool's endpoints.
        pub selector: LabelSelector,
        /// The model-server ports of each pod: one endpoint per port (data-parallel ranks).
        #[schemars(length(min = 1, max = 8))]
        pub target_ports: Vec<Port>,
        /// The EPP that serves this pool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub endpoint_picker_ref: Option<EndpointPickerRef>,
    }

    /// `matchLabels` only, as the v1 API allows.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct LabelSelector {
        #[schemars(length(min = 1, max = 64))]
        pub match_labels: BTreeMap<String, String>,
    }

    #[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
    pub struct Port {
        #[schemars(range(min = 1, max = 65535))]
        pub number: i32,
    }

    /// Where the gateway finds the EPP.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct EndpointPickerRef {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub group: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub port: Option<Port>,
        /// `FailOpen` or `FailClose` (the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub failure_mode: Option<String>,
    }

    /// Written by gateway controllers, never by the EPP.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    pub struct InferencePoolStatus {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub parents: Vec<ParentStatus>,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ParentStatus {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub conditions: Vec<Condition>,
        #[serde(default)]
        pub parent_ref: ParentReference,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    pub struct ParentReference {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub group: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        #[serde(default)]
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub namespace: Option<String>,
    }
}

pub mod v1alpha2 {
    //! `inference.networking.x-k8s.io/v1alpha2`.
    use super::*;

    /// The older InferencePool: a plain selector map and one target port.
    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "inference.networking.x-k8s.io",
        version = "v1alpha2",
        kind = "InferencePool",
        plural = "inferencepools",
        shortname = "xinfpool",
        namespaced
    )]
    #[serde(rename_all = "camelCase")]
    pub struct InferencePoolSpec {
        pub selector: BTreeMap<String, String>,
        #[schemars(range(min = 1, max = 65535))]
        pub target_port_number: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub extension_ref: Option<ExtensionRef>,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ExtensionRef {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub group: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub port_number: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub failure_mode: Option<String>,
    }

    /// The priority of requests that name this objective (`x-gateway-inference-objective`).
    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "inference.networking.x-k8s.io",
        version = "v1alpha2",
        kind = "InferenceObjective",
        plural = "inferenceobjectives",
        namespaced
    )]
    #[serde(rename_all = "camelCase")]
    pub struct InferenceObjectiveSpec {
        /// Negative priorities are sheddable when the pool is saturated; unset means 0.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub priority: Option<i32>,
        pub pool_ref: PoolObjectReference,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    pub struct PoolObjectReference {
        /// Default `inference.networking.k8s.io`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub group: Option<String>,
        /// Default `InferencePool`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        pub name: String,
    }
}

/// A pool in the form the EPP uses, whichever API version it came from (v1.0.1
/// converts v1alpha2 to v1 the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolView {
    pub name: String,
    pub namespace: String,
    pub selector: BTreeMap<String, String>,
    pub target_ports: Vec<u16>,
}

impl PoolView {
    pub fn from_v1(pool: &v1::InferencePool) -> PoolView {
        PoolView {
            name: pool.metadata.name.clone().unwrap_or_default(),
            namespace: pool.metadata.namespace.clone().unwrap_or_default(),
            selector: pool.spec.selector.match_labels.clone(),
            target_ports: pool
                .spec
                .target_ports
                .iter()
                .filter_map(|p| u16::try_from(p.number).ok())
                .collect(),
        }
    }

    pub fn from_v1alpha2(pool: &v1alpha2::InferencePool) -> PoolView {
        PoolView {
            name: pool.metadata.name.clone().unwrap_or_default(),
            namespace: pool.metadata.namespace.clone().unwrap_or_default(),
            selector: pool.spec.selector.clone(),
            target_ports: u16::try_from(pool.spec.target_port_number)
                .ok()
                .into_iter()
                .collect(),
        }
    }
}

/// The CRDs of the three resources, for `epp --print-crds`.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![
        v1::InferencePool::crd(),
        v1alpha2::InferencePool::crd(),
        v1alpha2::InferenceObjective::crd(),
    ]
}
