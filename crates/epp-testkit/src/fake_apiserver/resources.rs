//! The resource types the fake server knows: group/version/plural, kind and scope, and
//! the qualified names the real server uses in its error messages.

use serde_json::{Value, json};

/// A group/version/resource, the storage and routing key of a resource type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvr {
    /// API group, empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Lower-case plural, e.g. `pods`.
    pub plural: String,
}

impl Gvr {
    /// A gvr from its parts (`group` empty for core).
    pub fn new(group: &str, version: &str, plural: &str) -> Gvr {
        Gvr {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
        }
    }

    /// The gvr of a kube-rs resource type, e.g. `Gvr::of::<Pod>()`.
    pub fn of<K: kube::Resource<DynamicType = ()>>() -> Gvr {
        Gvr::new(&K::group(&()), &K::version(&()), &K::plural(&()))
    }

    /// `v1` for core, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `leases.coordination.k8s.io`, as in the real server's messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The URL path of the collection, in a namespace or cluster-wide.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let root = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) => format!("{root}/namespaces/{ns}/{}", self.plural),
            None => format!("{root}/{}", self.plural),
        }
    }

    /// Core `v1` pods.
    pub fn pods() -> Gvr {
        Gvr::new("", "v1", "pods")
    }

    /// `coordination.k8s.io/v1` leases.
    pub fn leases() -> Gvr {
        Gvr::new("coordination.k8s.io", "v1", "leases")
    }

    /// Core `v1` events.
    pub fn core_events() -> Gvr {
        Gvr::new("", "v1", "events")
    }

    /// `events.k8s.io/v1` events (what `kube::runtime::events::Recorder` writes).
    pub fn events() -> Gvr {
        Gvr::new("events.k8s.io", "v1", "events")
    }

    /// `inference.networking.k8s.io/v1` InferencePools.
    pub fn inference_pools_v1() -> Gvr {
        Gvr::new("inference.networking.k8s.io", "v1", "inferencepools")
    }

    /// `inference.networking.x-k8s.io/v1alpha2` InferencePools.
    pub fn inference_pools_v1alpha2() -> Gvr {
        Gvr::new(
            "inference.networking.x-k8s.io",
            "v1alpha2",
            "inferencepools",
        )
    }

    /// `inference.networking.x-k8s.io/v1alpha2` InferenceObjectives.
    pub fn inference_objectives() -> Gvr {
        Gvr::new(
            "inference.networking.x-k8s.io",
            "v1alpha2",
            "inferenceobjectives",
        )
    }
}

/// A resource type the server serves: its gvr, kind and whether it is namespaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// Group, version and plural.
    pub gvr: Gvr,
    /// The kind, e.g. `Pod`.
    pub kind: String,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
}

impl ResourceType {
    /// A namespaced or cluster-scoped resource type.
    pub fn new(gvr: Gvr, kind: &str, namespaced: bool) -> ResourceType {
        ResourceType {
            gvr,
            kind: kind.to_string(),
            namespaced,
        }
    }

    /// The resource type of a kube-rs type, namespaced or not per its `Scope`.
    pub fn of<K>() -> ResourceType
    where
        K: kube::Resource<DynamicType = ()>,
        K::Scope: ScopeFlag,
    {
        ResourceType::new(Gvr::of::<K>(), &K::kind(&()), K::Scope::NAMESPACED)
    }

    /// The singular name discovery reports (the lower-case kind).
    fn singular(&self) -> String {
        self.kind.to_lowercase()
    }
}

/// Whether a kube-rs scope type is namespaced.
pub trait ScopeFlag {
    /// True for `NamespaceResourceScope`.
    const NAMESPACED: bool;
}

impl ScopeFlag for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl ScopeFlag for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// All resource types the server serves; requests for others get the 404 a missing CRD gets.
#[derive(Clone, Debug)]
pub(crate) struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    /// The resources the EPP touches, plus a few common core ones.
    pub(crate) fn builtin() -> Registry {
        let ns = |gvr: Gvr, kind: &str| ResourceType::new(gvr, kind, true);
        let types = vec![
            ns(Gvr::pods(), "Pod"),
            ns(Gvr::new("", "v1", "services"), "Service"),
            ns(Gvr::new("", "v1", "configmaps"), "ConfigMap"),
            ns(Gvr::core_events(), "Event"),
            ResourceType::new(Gvr::new("", "v1", "namespaces"), "Namespace", false),
            ns(Gvr::leases(), "Lease"),
            ns(Gvr::events(), "Event"),
            ns(Gvr::inference_pools_v1(), "InferencePool"),
            ns(Gvr::inference_pools_v1alpha2(), "InferencePool"),
            ns(Gvr::inference_objectives(), "InferenceObjective"),
        ];
        Registry { types }
    }

    /// Adds (or replaces) a resource type.
    pub(crate) fn register(&mut self, rt: ResourceType) {
        self.types.retain(|t| t.gvr != rt.gvr);
        self.types.push(rt);
    }

    /// The type served at `group/version/plural`.
    pub(crate) fn by_gvr(&self, gvr: &Gvr) -> Option<&ResourceType> {
        self.types.iter().find(|t| &t.gvr == gvr)
    }

    /// The type of an object with this `apiVersion` and `kind`.
    pub(crate) fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.gvr.api_version() == api_version && t.kind == kind)
    }

    /// Whether some namespaced type has this plural in this group/version.
    pub(crate) fn is_namespaced_plural(&self, group: &str, version: &str, plural: &str) -> bool {
        self.by_gvr(&Gvr::new(group, version, plural))
            .is_some_and(|t| t.namespaced)
    }

    /// `/apis` discovery: every named group with its versions.
    pub(crate) fn api_group_list(&self) -> Value {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.gvr.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == t.gvr.group) {
                Some((_, versions)) if !versions.contains(&t.gvr.version) => {
                    versions.push(t.gvr.version.clone())
                }
                Some(_) => {}
                None => groups.push((t.gvr.group.clone(), vec![t.gvr.version.clone()])),
            }
        }
        let groups: Vec<Value> = groups.iter().map(|(g, v)| group_json(g, v)).collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `/apis/{group}` discovery, if the group exists.
    pub(crate) fn api_group(&self, group: &str) -> Option<Value> {
        let list = self.api_group_list();
        let groups = list["groups"].as_array()?;
        let mut found = groups.iter().find(|g| g["name"] == group)?.clone();
        found["kind"] = json!("APIGroup");
        found["apiVersion"] = json!("v1");
        Some(found)
    }

    /// `/api/v1` or `/apis/{group}/{version}` discovery, if that group/version exists.
    pub(crate) fn api_resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let resources: Vec<Value> = self
            .types
            .iter()
            .filter(|t| t.gvr.group == group && t.gvr.version == version)
            .map(resource_json)
            .collect();
        if resources.is_empty() {
            return None;
        }
        let gv = Gvr::new(group, version, "").api_version();
        Some(json!({
            "kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": gv, "resources": resources,
        }))
    }
}

/// One entry of an `APIGroupList`.
fn group_json(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
}

/// One entry of an `APIResourceList`.
fn resource_json(t: &ResourceType) -> Value {
    json!({
        "name": t.gvr.plural, "singularName": t.singular(), "namespaced": t.namespaced,
        "kind": t.kind,
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
    })
}
