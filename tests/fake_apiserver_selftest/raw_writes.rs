//! Writes over plain HTTP: create, replace with optimistic concurrency, the patch
//! flavours, the status subresource, delete preconditions, and their `Status` errors.

use epp_testkit::fake_apiserver::{FakeApiServer, Gvr, Verb};
use serde_json::{Value, json};

use crate::raw::Raw;

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
const JSON: &str = "application/json";

fn lease_body(holder: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "epp"}, "spec": {"holderIdentity": holder},
    })
}

/// (HTTP code, `reason` of a Status or the holder of a Lease).
fn summary((code, body): (u16, Value)) -> (u16, String) {
    let detail = body["reason"]
        .as_str()
        .or(body["spec"]["holderIdentity"].as_str());
    (code, detail.unwrap_or("").to_string())
}

#[tokio::test]
async fn create_replace_delete_and_their_errors() {
    let server = FakeApiServer::start().await;
    let raw = Raw::new(&server);
    let (code, created) = raw.send("POST", LEASES, JSON, lease_body("a")).await;
    assert_eq!(code, 201);
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(created["metadata"]["generation"], 1);
    let dup = raw.send("POST", LEASES, JSON, lease_body("b")).await;
    assert_eq!(summary(dup), (409, "AlreadyExists".into()));
    let epp = format!("{LEASES}/epp");
    let mut next = created.clone();
    next["spec"]["holderIdentity"] = json!("b");
    assert_eq!(
        summary(raw.send("PUT", &epp, JSON, next.clone()).await),
        (200, "b".into())
    );
    let stale = raw.send("PUT", &epp, JSON, next).await;
    assert_eq!(summary(stale), (409, "Conflict".into()));
    let missing = raw
        .send("PUT", &format!("{LEASES}/nope"), JSON, lease_body("a"))
        .await;
    assert_eq!(
        summary(missing),
        (400, "BadRequest".into()),
        "name differs from the URL"
    );
    let absent = raw
        .send("PUT", &format!("{LEASES}/nope"), JSON, json!({"spec": {}}))
        .await;
    assert_eq!(summary(absent), (404, "NotFound".into()));
}

#[tokio::test]
async fn delete_preconditions_and_generate_name() {
    let server = FakeApiServer::start().await;
    let raw = Raw::new(&server);
    server.apply(lease_body("b"));
    let epp = format!("{LEASES}/epp");
    let wrong_uid = json!({"preconditions": {"uid": "not-it"}});
    let refused = raw.send("DELETE", &epp, JSON, wrong_uid).await;
    assert_eq!(summary(refused), (409, "Conflict".into()));
    assert_eq!(
        summary(raw.send("DELETE", &epp, "", Value::Null).await),
        (200, "b".into())
    );
    let again = raw.send("DELETE", &epp, "", Value::Null).await;
    assert_eq!(summary(again), (404, "NotFound".into()));
    let generated = json!({"metadata": {"generateName": "epp-"}, "spec": {}});
    let (code, obj) = raw.send("POST", LEASES, JSON, generated).await;
    assert_eq!(code, 201);
    assert!(
        obj["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.len() == 9),
        "{obj}"
    );
}

#[tokio::test]
async fn patch_flavours_and_status_subresource() {
    let server = FakeApiServer::start().await;
    let raw = Raw::new(&server);
    let created = server.apply(lease_body("a"));
    let epp = format!("{LEASES}/epp");
    let merge = json!({"spec": {"holderIdentity": "b"}});
    let patched = raw
        .send("PATCH", &epp, "application/merge-patch+json", merge)
        .await;
    assert_eq!(patched.1["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(summary(patched), (200, "b".into()));
    let ops = json!([{"op": "replace", "path": "/spec/holderIdentity", "value": "c"}]);
    let patched = raw
        .send("PATCH", &epp, "application/json-patch+json", ops)
        .await;
    assert_eq!(summary(patched), (200, "c".into()));
    let stale = json!({"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}});
    let refused = raw
        .send("PATCH", &epp, "application/merge-patch+json", stale)
        .await;
    assert_eq!(summary(refused), (409, "Conflict".into()));
    let unknown = raw.send("PATCH", &epp, "text/plain", json!({})).await;
    assert_eq!(summary(unknown), (415, "UnsupportedMediaType".into()));
    let status = json!({"status": {"phase": "Running"}, "spec": {"containers": []}});
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
    server.apply(pod);
    let path = "/api/v1/namespaces/default/pods/p/status";
    let (code, updated) = raw
        .send("PATCH", path, "application/merge-patch+json", status)
        .await;
    assert_eq!(
        (code, &updated["status"]["phase"]),
        (200, &json!("Running"))
    );
    assert_eq!(
        updated["spec"]["containers"][0]["name"], "c",
        "status writes keep the spec"
    );
    assert_eq!(server.request_count(Verb::Patch, &Gvr::leases()), 4);
}
