//! The crate boundaries of ARCHITECTURE.md, checked against Cargo.lock: what each crate may
//! not pull in, directly or through any dependency.

use std::collections::{BTreeMap, BTreeSet};

const LOCK: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"));

/// Package name → names of its dependencies, as locked (every version of a name merged;
/// the lock lists dev-dependencies too, so the checks below hold for tests as well).
fn locked_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for block in LOCK.split("[[package]]").skip(1) {
        let mut name = None;
        let mut deps = BTreeSet::new();
        let mut in_deps = false;
        for line in block.lines().map(str::trim) {
            if let Some(value) = line.strip_prefix("name = ") {
                name = Some(value.trim_matches('"').to_owned());
            } else if line.starts_with("dependencies = [") {
                in_deps = true;
            } else if in_deps && line.starts_with(']') {
                in_deps = false;
            } else if in_deps {
                let entry = line.trim_end_matches(',').trim_matches('"');
                let dep = entry.split_whitespace().next().unwrap_or(entry);
                deps.insert(dep.to_owned());
            }
        }
        let name = name.expect("every locked package has a name");
        graph.entry(name).or_default().extend(deps);
    }
    graph
}

/// Everything `root` reaches in the locked graph (an over-approximation: the lock merges
/// features, so a crate found here may be unused, but a crate not found is surely absent).
fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_owned()];
    while let Some(name) = todo.pop() {
        for dep in graph.get(&name).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                todo.push(dep.clone());
            }
        }
    }
    seen
}

fn assert_free_of(krate: &str, forbidden: &[&str]) {
    let graph = locked_graph();
    assert!(graph.contains_key(krate), "{krate} is not in Cargo.lock");
    let reached = reachable(&graph, krate);
    let found: Vec<&&str> = forbidden.iter().filter(|f| reached.contains(**f)).collect();
    assert!(found.is_empty(), "{krate} depends on {found:?}");
}

#[test]
fn the_scheduling_core_has_no_network_grpc_or_kubernetes_dependency() {
    assert_free_of(
        "epp-core",
        &[
            "tonic",
            "prost",
            "hyper",
            "reqwest",
            "kube",
            "k8s-openapi",
            "envoy-types",
            "epp-net",
            "epp-extproc",
            "epp-datalayer",
            "epp-discovery",
            "epp-testkit",
        ],
    );
}

#[test]
fn serving_plumbing_and_the_simulator_do_not_know_the_core() {
    assert_free_of("epp-net", &["epp-core", "epp-testkit"]);
    assert_free_of("epp-sim", &["epp-core", "epp-testkit"]);
    assert_free_of("epp-flags", &["epp-core"]);
}

#[test]
fn the_engine_model_runs_on_any_clock_and_the_lab_has_no_network() {
    assert_free_of("epp-engine", &["tokio", "epp-core", "epp-net", "epp-flags"]);
    assert_free_of("epp-kvevents", &["tokio", "epp-core", "epp-net", "zeromq"]);
    assert_free_of("epp-lab", &["tonic", "hyper", "reqwest", "kube", "epp-net"]);
}

#[test]
fn discovery_and_extproc_stay_on_their_side() {
    assert_free_of("epp-discovery", &["tonic", "epp-net", "epp-extproc"]);
    assert_free_of(
        "epp-extproc",
        &["reqwest", "kube", "epp-discovery", "epp-datalayer"],
    );
}

#[test]
fn tracing_serves_every_front_end() {
    // Usable by the ext_proc service and an HTTP front end alike: no ext_proc protos,
    // no HTTP client, no Kubernetes.
    assert_free_of(
        "epp-trace",
        &[
            "envoy-types",
            "epp-extproc",
            "reqwest",
            "kube",
            "epp-discovery",
            "epp-datalayer",
        ],
    );
}
