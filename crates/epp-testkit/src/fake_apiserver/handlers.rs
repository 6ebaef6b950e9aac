//! Request handlers: discovery, list (with selectors and pagination), get, create,
//! replace, patch, delete and delete-collection, each answering JSON or a `Status`.

use std::sync::Arc;

use bytes::Bytes;
use hyper::{Method, Response};
use serde_json::{Value, json};

use super::faults::Verb;
use super::http::{self, Body, Query, ResourcePath, Route};
use super::patch::{self, PatchKind};
use super::selector::{FieldSelector, LabelSelector};
use super::server::Shared;
use super::status::ApiError;
use super::store::{ObjKey, key_of};
use super::watch;

/// One routed request.
pub(crate) struct Req<'a> {
    pub(crate) method: &'a Method,
    pub(crate) route: Route,
    pub(crate) verb: Verb,
    pub(crate) query: &'a Query,
    pub(crate) content_type: &'a str,
    pub(crate) body: &'a Bytes,
}

/// A handler's answer: HTTP code and JSON body, or an API error.
type Answer = Result<(u16, Value), ApiError>;

/// Serves a routed request.
pub(crate) fn serve(shared: &Arc<Shared>, req: Req<'_>) -> Response<Body> {
    let answer = match &req.route {
        Route::Resource(rp) if req.verb == Verb::Watch => {
            return watch::serve(shared, rp, req.query);
        }
        Route::Resource(rp) => resource(shared, rp, &req),
        Route::Unknown => Err(ApiError::no_such_resource()),
        _ if req.method != Method::GET => Err(ApiError::method_not_allowed(req.method.as_str())),
        other => discovery(shared, other).map(|v| (200, v)),
    };
    match answer {
        Ok((code, value)) => http::json_response(code, &value),
        Err(err) => http::error_response(&err),
    }
}

/// `/version`, `/api`, `/apis` and group discovery.
fn discovery(shared: &Shared, route: &Route) -> Result<Value, ApiError> {
    let registry = shared.registry.read();
    let found = match route {
        Route::Version => Some(json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "gitCommit": "fake",
            "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24",
            "compiler": "gc", "platform": "linux/amd64",
        })),
        Route::Api => Some(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        })),
        Route::Apis => Some(registry.api_group_list()),
        Route::Group(g) => registry.api_group(g),
        Route::GroupVersion(g, v) => registry.api_resource_list(g, v),
        _ => None,
    };
    found.ok_or_else(ApiError::no_such_resource)
}

/// Dispatches a resource request by verb.
fn resource(shared: &Shared, rp: &ResourcePath, req: &Req<'_>) -> Answer {
    let sub = rp.subresource.as_deref();
    if sub.is_some_and(|s| s != "status") {
        return Err(ApiError::no_such_resource());
    }
    match req.verb {
        Verb::List => list(shared, rp, req.query),
        Verb::Get => get(shared, rp),
        Verb::Create => create(shared, rp, req.body),
        Verb::Replace => replace(shared, rp, req.body),
        Verb::Patch => patch(shared, rp, req.content_type, req.body),
        Verb::Delete => delete(shared, rp, req.body),
        Verb::DeleteCollection => delete_collection(shared, rp, req.query),
        _ => Err(ApiError::method_not_allowed(req.method.as_str())),
    }
}

/// Parses the `labelSelector` and `fieldSelector` parameters.
pub(crate) fn selectors(query: &Query) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""));
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""));
    Ok((
        labels.map_err(ApiError::bad_request)?,
        fields.map_err(ApiError::bad_request)?,
    ))
}

/// LIST, filtered, paginated by `limit`/`continue` (token: `{listRV}/{namespace}/{name}`
/// of the last item; later pages report the first page's resourceVersion).
fn list(shared: &Shared, rp: &ResourcePath, query: &Query) -> Answer {
    let (labels, fields) = selectors(query)?;
    let store = shared.store.lock();
    let (list_rv, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => parse_continue(token, store.oldest())?,
        None => (store.rv(), None),
    };
    let mut items: Vec<Value> = store
        .list(&rp.rt.gvr, rp.namespace.as_deref())
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .filter(|o| after.as_ref().is_none_or(|a| sort_key(o) > *a))
        .collect();
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if let Some(limit) = limit.filter(|l| items.len() > *l) {
        let remaining = items.len() - limit;
        items.truncate(limit);
        let (ns, name) = sort_key(items.last().expect("a non-empty page"));
        metadata["continue"] = json!(format!("{list_rv}/{ns}/{name}"));
        metadata["remainingItemCount"] = json!(remaining);
    }
    let kind = format!("{}List", rp.rt.kind);
    Ok((
        200,
        json!({"apiVersion": rp.rt.gvr.api_version(), "kind": kind, "metadata": metadata, "items": items}),
    ))
}

/// (namespace, name) of an object, the list order.
fn sort_key(obj: &Value) -> (String, String) {
    let meta = &obj["metadata"];
    let ns = meta["namespace"].as_str().unwrap_or("").to_string();
    (ns, meta["name"].as_str().unwrap_or("").to_string())
}

/// Decodes a continue token; 410 if its list predates the history.
fn parse_continue(token: &str, oldest: u64) -> Result<(u64, Option<(String, String)>), ApiError> {
    let mut parts = token.splitn(3, '/');
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let rv: u64 = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let ns = parts.next().ok_or_else(bad)?.to_string();
    let name = parts.next().ok_or_else(bad)?.to_string();
    if rv < oldest {
        return Err(ApiError::expired(rv, oldest));
    }
    Ok((rv, Some((ns, name))))
}

/// The store key of the object a path names.
fn path_key(rp: &ResourcePath) -> ObjKey {
    ObjKey {
        gvr: rp.rt.gvr.clone(),
        namespace: rp.namespace.clone().unwrap_or_default(),
        name: rp.name.clone().unwrap_or_default(),
    }
}

/// GET one object (also for `/status`).
fn get(shared: &Shared, rp: &ResourcePath) -> Answer {
    let key = path_key(rp);
    let store = shared.store.lock();
    let obj = store.get(&key).cloned();
    obj.map(|o| (200, o))
        .ok_or_else(|| ApiError::not_found(&rp.rt.gvr, &key.name))
}

/// Parses a JSON object body and checks/fills `apiVersion`, `kind` and namespace.
fn parse_object(rp: &ResourcePath, body: &[u8]) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    if !obj.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let expected = [
        ("apiVersion", rp.rt.gvr.api_version()),
        ("kind", rp.rt.kind.clone()),
    ];
    for (field, want) in expected {
        match obj[field].as_str() {
            Some(got) if got != want => {
                let msg = format!(
                    "the {field} in the data ({got}) does not match the expected {field} ({want})"
                );
                return Err(ApiError::bad_request(msg));
            }
            _ => obj[field] = json!(want),
        }
    }
    set_scope(rp, &mut obj)?;
    Ok(obj)
}

/// Sets the object's namespace from the path (rejecting a different one in the body).
fn set_scope(rp: &ResourcePath, obj: &mut Value) -> Result<(), ApiError> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let meta = obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object");
    if !rp.rt.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let Some(ns) = rp.namespace.as_deref() else {
        return Err(ApiError::bad_request(
            "a namespaced resource needs a namespace in the path",
        ));
    };
    match meta.get("namespace").and_then(Value::as_str) {
        Some(body_ns) if !body_ns.is_empty() && body_ns != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta.insert("namespace".into(), json!(ns));
            Ok(())
        }
    }
}

/// Sets the name from the path, rejecting a different one in the body.
fn set_name(rp: &ResourcePath, obj: &mut Value) -> Result<(), ApiError> {
    let want = rp.name.as_deref().unwrap_or("");
    match obj["metadata"]["name"].as_str() {
        Some(got) if !got.is_empty() && got != want => Err(ApiError::bad_request(format!(
            "the name of the object ({got}) does not match the name on the URL ({want})"
        ))),
        _ => {
            obj["metadata"]["name"] = json!(want);
            Ok(())
        }
    }
}

/// POST: create, honouring `generateName`.
fn create(shared: &Shared, rp: &ResourcePath, body: &[u8]) -> Answer {
    let mut obj = parse_object(rp, body)?;
    if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        let Some(prefix) = obj["metadata"]["generateName"]
            .as_str()
            .filter(|p| !p.is_empty())
        else {
            return Err(ApiError::bad_request("name or generateName is required"));
        };
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..5];
        obj["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
    }
    let created = shared.store.lock().create(&rp.rt, obj)?;
    Ok((201, created))
}

/// PUT: replace (or, for `/status`, replace only the status).
fn replace(shared: &Shared, rp: &ResourcePath, body: &[u8]) -> Answer {
    let mut obj = parse_object(rp, body)?;
    set_name(rp, &mut obj)?;
    let mut store = shared.store.lock();
    if rp.subresource.is_some() {
        let key = key_of(&rp.rt, &obj);
        let stored = store.get(&key).cloned();
        let stored = stored.ok_or_else(|| ApiError::not_found(&rp.rt.gvr, &key.name))?;
        obj = with_status_of(stored, &obj);
    }
    Ok((200, store.replace(&rp.rt, obj)?))
}

/// The stored object with the status (and resourceVersion precondition) of `update`.
fn with_status_of(mut stored: Value, update: &Value) -> Value {
    stored["status"] = update["status"].clone();
    if let Some(rv) = update["metadata"]["resourceVersion"].as_str() {
        stored["metadata"]["resourceVersion"] = json!(rv);
    }
    stored
}

/// PATCH: merge, strategic (as merge), apply (as merge, creating if absent), JSON patch.
fn patch(shared: &Shared, rp: &ResourcePath, content_type: &str, body: &[u8]) -> Answer {
    let kind = PatchKind::from_content_type(content_type)
        .ok_or_else(|| ApiError::unsupported_media(content_type))?;
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid patch body (JSON only): {e}")))?;
    let key = path_key(rp);
    let mut store = shared.store.lock();
    let existing = store.get(&key).cloned();
    let creating = existing.is_none() && kind == PatchKind::Apply && rp.subresource.is_none();
    let mut target = match existing.clone() {
        Some(obj) => obj,
        None if creating => json!({}),
        None => return Err(ApiError::not_found(&rp.rt.gvr, &key.name)),
    };
    match kind {
        PatchKind::Json => patch::json_patch(&mut target, &patch).map_err(ApiError::bad_request)?,
        _ => patch::merge_patch(&mut target, &patch),
    }
    let body = serde_json::to_vec(&target).expect("serializing a JSON value");
    let mut obj = parse_object(rp, &body)?;
    set_name(rp, &mut obj)?;
    if let (Some(stored), Some(_)) = (existing, &rp.subresource) {
        obj = with_status_of(stored, &obj);
    }
    if creating {
        return Ok((201, store.create(&rp.rt, obj)?));
    }
    Ok((200, store.replace(&rp.rt, obj)?))
}

/// DELETE one object, honouring `preconditions` in the DeleteOptions body.
fn delete(shared: &Shared, rp: &ResourcePath, body: &[u8]) -> Answer {
    let key = path_key(rp);
    let options: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let pre = &options["preconditions"];
    let mut store = shared.store.lock();
    let current = store.get(&key).cloned();
    let current = current.ok_or_else(|| ApiError::not_found(&rp.rt.gvr, &key.name))?;
    for field in ["resourceVersion", "uid"] {
        if let Some(want) = pre[field].as_str()
            && current["metadata"][field] != want
        {
            return Err(ApiError::conflict(&rp.rt.gvr, &key.name));
        }
    }
    Ok((200, store.delete(&key)?))
}

/// DELETE a collection (with selectors): a list of what was deleted.
fn delete_collection(shared: &Shared, rp: &ResourcePath, query: &Query) -> Answer {
    let (labels, fields) = selectors(query)?;
    let mut store = shared.store.lock();
    let doomed: Vec<Value> = store
        .list(&rp.rt.gvr, rp.namespace.as_deref())
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .collect();
    let mut items = Vec::new();
    for obj in doomed {
        items.push(store.delete(&key_of(&rp.rt, &obj))?);
    }
    let kind = format!("{}List", rp.rt.kind);
    let metadata = json!({"resourceVersion": store.rv().to_string()});
    Ok((
        200,
        json!({"apiVersion": rp.rt.gvr.api_version(), "kind": kind, "metadata": metadata, "items": items}),
    ))
}
