//! Real kube-rs `Api` calls against the fake: lists with selectors, Lease optimistic
//! concurrency, typed CRD round trips, injected 403/404 and the request log.

use std::collections::BTreeMap;

use epp_discovery::kube::resources::{v1, v1alpha2};
use epp_testkit::fake_apiserver::{FakeApiServer, FakePod, Gvr, Verb, inference_objective};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::within;

/// The HTTP code of a `kube::Error::Api`.
fn api_code<T: std::fmt::Debug>(result: kube::Result<T>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn kube_list_uses_label_selectors() {
    let server = FakeApiServer::start().await;
    server.apply_pod("a", "10.0.0.1", &[("app", "vllm")], true, false);
    server.apply_pod("b", "10.0.0.2", &[("app", "vllm")], false, true);
    server.apply_pod("c", "10.0.0.3", &[("app", "other")], true, false);
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let list = within("list", pods.list(&ListParams::default().labels("app=vllm")))
        .await
        .expect("list");
    let names: Vec<String> = list
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        list.metadata.resource_version,
        Some(server.resource_version().to_string())
    );
    let b = &list.items[1];
    assert!(b.metadata.deletion_timestamp.is_some(), "terminating");
    let status = b.status.as_ref().expect("status");
    assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.2"));
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.status, "False");
    let got = within("get", pods.get("a")).await.expect("get");
    assert!(got.metadata.uid.is_some() && got.metadata.creation_timestamp.is_some());
    let all: Api<Pod> = Api::all(server.client());
    let listed = within("list all", all.list(&ListParams::default()))
        .await
        .expect("list all");
    assert_eq!(listed.items.len(), 3);
}

fn lease(name: &str, holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn lease_create_replace_and_stale_replace_conflicts() {
    let server = FakeApiServer::start().await;
    let leases: Api<Lease> = Api::namespaced(server.client(), "epp-ns");
    let pp = PostParams::default();
    let created = within("create", leases.create(&pp, &lease("epp", "a")))
        .await
        .expect("create");
    assert_eq!(
        api_code(within("create again", leases.create(&pp, &lease("epp", "b"))).await),
        (409, "AlreadyExists".into())
    );
    let mut next = created.clone();
    next.spec.as_mut().expect("spec").holder_identity = Some("b".into());
    let replaced = within("replace", leases.replace("epp", &pp, &next))
        .await
        .expect("replace");
    assert_eq!(replaced.metadata.uid, created.metadata.uid);
    assert_ne!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );
    // `next` still carries the resourceVersion it was read at: someone else won.
    let stale = within("stale replace", leases.replace("epp", &pp, &next)).await;
    assert_eq!(api_code(stale), (409, "Conflict".into()));
    let missing = within(
        "replace missing",
        leases.replace("nope", &pp, &lease("nope", "a")),
    )
    .await;
    assert_eq!(api_code(missing), (404, "NotFound".into()));
    let held = server
        .get(&Gvr::leases(), "epp-ns", "epp")
        .expect("stored lease");
    assert_eq!(held["spec"]["holderIdentity"], "b");
    assert_eq!(server.request_count(Verb::Replace, &Gvr::leases()), 3);
    assert_eq!(server.request_count(Verb::Create, &Gvr::leases()), 2);
}

#[tokio::test]
async fn lease_apply_creates_and_merge_patches() {
    let server = FakeApiServer::start().await;
    let leases: Api<Lease> = Api::namespaced(server.client(), "epp-ns");
    let apply = Patch::Apply(
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": "c"}}),
    );
    let applied = within(
        "apply",
        leases.patch("other", &PatchParams::apply("epp"), &apply),
    )
    .await
    .expect("apply creates");
    assert_eq!(
        applied.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("c")
    );
    let merge = Patch::Merge(json!({"spec": {"holderIdentity": "d"}}));
    let merged = within(
        "merge",
        leases.patch("other", &PatchParams::default(), &merge),
    )
    .await
    .expect("merge");
    assert_eq!(
        merged.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("d")
    );
    within("delete", leases.delete("other", &DeleteParams::default()))
        .await
        .expect("delete");
    assert!(server.get(&Gvr::leases(), "epp-ns", "other").is_none());
    assert_eq!(server.request_count(Verb::Patch, &Gvr::leases()), 2);
}

#[tokio::test]
async fn typed_v1_inference_pool_round_trips() {
    let server = FakeApiServer::start().await;
    let client = server.client();
    let pools: Api<v1::InferencePool> = Api::default_namespaced(client.clone());
    let spec = v1::InferencePoolSpec {
        selector: v1::LabelSelector {
            match_labels: BTreeMap::from([("app".into(), "vllm".into())]),
        },
        target_ports: vec![v1::Port { number: 8000 }, v1::Port { number: 8001 }],
        endpoint_picker_ref: None,
    };
    let pool = v1::InferencePool::new("pool", spec.clone());
    within("create pool", pools.create(&PostParams::default(), &pool))
        .await
        .expect("create pool");
    let got = within("get pool", pools.get("pool"))
        .await
        .expect("get pool");
    assert_eq!(got.spec, spec);
    let stored = server
        .get(&Gvr::inference_pools_v1(), "default", "pool")
        .expect("stored");
    assert_eq!(stored["apiVersion"], "inference.networking.k8s.io/v1");
    assert_eq!(stored["spec"]["targetPorts"][1]["number"], 8001);
}

#[tokio::test]
async fn typed_v1alpha2_resources_round_trip() {
    let server = FakeApiServer::start().await;
    let client = server.client();
    let old: Api<v1alpha2::InferencePool> = Api::default_namespaced(client.clone());
    server.apply(epp_testkit::fake_apiserver::inference_pool_v1alpha2(
        "default",
        "old",
        &[("app", "x")],
        9000,
        "epp",
    ));
    let old_pool = within("get v1alpha2", old.get("old"))
        .await
        .expect("get v1alpha2");
    assert_eq!(old_pool.spec.target_port_number, 9000);
    assert_eq!(
        old_pool.spec.extension_ref.map(|e| e.name).as_deref(),
        Some("epp")
    );

    let objectives: Api<v1alpha2::InferenceObjective> = Api::default_namespaced(client);
    server.apply(inference_objective("default", "chat", "pool", Some(-1)));
    let list = within("list objectives", objectives.list(&ListParams::default()))
        .await
        .expect("list objectives");
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].spec.priority, Some(-1));
    assert_eq!(list.items[0].spec.pool_ref.name, "pool");
}

#[tokio::test]
async fn generation_counts_spec_changes_only() {
    let server = FakeApiServer::start().await;
    let first = server.apply(epp_testkit::fake_apiserver::inference_pool_v1(
        "default",
        "p",
        &[("app", "a")],
        &[8000],
        "epp",
    ));
    let mut changed = first.clone();
    changed["status"] = json!({"parents": []});
    let second = server.apply(changed.clone());
    assert_eq!(second["metadata"]["generation"], 1, "status only");
    changed["spec"]["targetPorts"] = json!([{"number": 8001}]);
    let third = server.apply(changed);
    assert_eq!(third["metadata"]["generation"], 2, "spec change");
    assert_eq!(third["metadata"]["uid"], first["metadata"]["uid"]);
    assert_eq!(
        third["metadata"]["creationTimestamp"],
        first["metadata"]["creationTimestamp"]
    );
}

#[tokio::test]
async fn unavailable_resources_fail_with_status_codes() {
    let server = FakeApiServer::start().await;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let pools: Api<v1::InferencePool> = Api::default_namespaced(server.client());
    server.set_unavailable(&Gvr::pods(), 403);
    let denied = within("forbidden list", pods.list(&ListParams::default())).await;
    match denied {
        Err(kube::Error::Api(status)) => {
            assert!(status.is_forbidden(), "{status:?}");
            assert!(
                status.message.contains("cannot list resource \"pods\""),
                "{}",
                status.message
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }
    server.set_unavailable(&Gvr::inference_pools_v1(), 404);
    assert_eq!(
        api_code(within("no CRD", pools.list(&ListParams::default())).await),
        (404, "NotFound".into())
    );
    server.set_available(&Gvr::pods());
    within("list again", pods.list(&ListParams::default()))
        .await
        .expect("list after RBAC fixed");
    server.fail_next("/api/v1/namespaces/default/pods", 500);
    assert_eq!(
        api_code(within("injected 500", pods.list(&ListParams::default())).await).0,
        500
    );
    within("list after one-shot", pods.list(&ListParams::default()))
        .await
        .expect("one-shot failure is over");
    server.apply_fake_pod(&FakePod::new("x"));
    assert_eq!(
        api_code(within("missing pod", pods.get("nope")).await),
        (404, "NotFound".into())
    );
    assert_eq!(server.request_count(Verb::List, &Gvr::pods()), 4);
}
