//! HTTP plumbing: routing of Kubernetes API paths, query-string decoding and JSON
//! responses.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::{Method, Response, StatusCode};
use serde_json::Value;

use super::faults::Verb;
use super::resources::{Registry, ResourceType};
use super::status::ApiError;

/// The body type of every response (streams for watches, full buffers otherwise).
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A decoded query string.
#[derive(Clone, Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes `a=b&c=d` (percent-encoding and `+` for space).
    pub(crate) fn parse(raw: &str) -> Query {
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Query(pairs)
    }

    /// The first value of a parameter.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a boolean parameter is `true` or `1`.
    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// Decodes `%XX` escapes and `+`.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A resource path: the type, the namespace, and optionally an object and subresource.
#[derive(Clone, Debug)]
pub(crate) struct ResourcePath {
    pub(crate) rt: ResourceType,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
}

/// What a path addresses.
#[derive(Clone, Debug)]
pub(crate) enum Route {
    Version,
    Api,
    Apis,
    Group(String),
    GroupVersion(String, String),
    Resource(ResourcePath),
    Unknown,
}

/// Routes a URL path against the registry.
pub(crate) fn route(registry: &Registry, path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["api", v] => Route::GroupVersion(String::new(), v.to_string()),
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::GroupVersion(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => resource_route(registry, "", v, rest),
        ["apis", g, v, rest @ ..] => resource_route(registry, g, v, rest),
        _ => Route::Unknown,
    }
}

/// Routes the part after `/api/v1` or `/apis/{group}/{version}`.
fn resource_route(registry: &Registry, group: &str, version: &str, rest: &[&str]) -> Route {
    let (namespace, plural, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if registry.is_namespaced_plural(group, version, plural) =>
        {
            (Some(ns.to_string()), *plural, tail)
        }
        [plural, tail @ ..] => (None, *plural, tail),
        [] => return Route::Unknown,
    };
    let gvr = super::resources::Gvr::new(group, version, plural);
    let Some(rt) = registry.by_gvr(&gvr).cloned() else {
        return Route::Unknown;
    };
    let (name, subresource) = match tail {
        [] => (None, None),
        [name] => (Some(name.to_string()), None),
        [name, sub] => (Some(name.to_string()), Some(sub.to_string())),
        _ => return Route::Unknown,
    };
    // A namespaced object can only be addressed inside its namespace.
    if rt.namespaced && namespace.is_none() && name.is_some() {
        return Route::Unknown;
    }
    Route::Resource(ResourcePath {
        rt,
        namespace,
        name,
        subresource,
    })
}

/// The verb of a request on a route.
pub(crate) fn verb_of(method: &Method, route: &Route, query: &Query) -> Verb {
    let Route::Resource(rp) = route else {
        return match (method, route) {
            (&Method::GET, Route::Unknown) => Verb::Other,
            (&Method::GET, _) => Verb::Discovery,
            _ => Verb::Other,
        };
    };
    let named = rp.name.is_some();
    match (method.as_str(), named) {
        ("GET", false) if query.flag("watch") => Verb::Watch,
        ("GET", false) => Verb::List,
        ("GET", true) => Verb::Get,
        ("POST", false) => Verb::Create,
        ("PUT", true) => Verb::Replace,
        ("PATCH", true) => Verb::Patch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        _ => Verb::Other,
    }
}

/// The Kubernetes (RBAC) verb word, for messages.
pub(crate) fn verb_word(verb: Verb) -> &'static str {
    match verb {
        Verb::List => "list",
        Verb::Watch => "watch",
        Verb::Get => "get",
        Verb::Create => "create",
        Verb::Replace => "update",
        Verb::Patch => "patch",
        Verb::Delete => "delete",
        Verb::DeleteCollection => "deletecollection",
        Verb::Discovery | Verb::Other => "get",
    }
}

/// A JSON response.
pub(crate) fn json_response(code: u16, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("serializing a JSON value");
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .expect("a response from valid parts")
}

/// A `Status` failure response.
pub(crate) fn error_response(err: &ApiError) -> Response<Body> {
    json_response(err.code, &err.to_status())
}
