//! Failure `Status` objects with the codes, reasons and messages of the real server, so
//! kube-rs parses them into `kube::Error::Api` exactly as it would in a cluster.

use serde_json::{Value, json};

use super::resources::Gvr;

/// An API error: HTTP code, `reason`, message and optional `details`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) details: Value,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String, details: Value) -> ApiError {
        ApiError {
            code,
            reason,
            message,
            details,
        }
    }

    /// `pods "x" not found`.
    pub(crate) fn not_found(gvr: &Gvr, name: &str) -> ApiError {
        let message = format!("{} \"{name}\" not found", gvr.qualified());
        ApiError::new(404, "NotFound", message, details(gvr, name))
    }

    /// What the server answers for a path it does not serve (e.g. a CRD not installed).
    pub(crate) fn no_such_resource() -> ApiError {
        let message = "the server could not find the requested resource".to_string();
        ApiError::new(404, "NotFound", message, json!({}))
    }

    /// `pods "x" already exists`.
    pub(crate) fn already_exists(gvr: &Gvr, name: &str) -> ApiError {
        let message = format!("{} \"{name}\" already exists", gvr.qualified());
        ApiError::new(409, "AlreadyExists", message, details(gvr, name))
    }

    /// The optimistic-concurrency conflict of a stale `resourceVersion`.
    pub(crate) fn conflict(gvr: &Gvr, name: &str) -> ApiError {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
             please apply your changes to the latest version and try again",
            gvr.qualified()
        );
        ApiError::new(409, "Conflict", message, details(gvr, name))
    }

    /// A watch (or list) from a resourceVersion older than the event history.
    pub(crate) fn expired(requested: u64, oldest: u64) -> ApiError {
        let message = format!("too old resource version: {requested} ({oldest})");
        ApiError::new(410, "Expired", message, json!({}))
    }

    /// A malformed request.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message.into(), json!({}))
    }

    /// A verb the path does not support.
    pub(crate) fn method_not_allowed(method: &str) -> ApiError {
        let message =
            format!("the server does not allow this method on the requested resource ({method})");
        ApiError::new(405, "MethodNotAllowed", message, json!({}))
    }

    /// An unsupported PATCH content type.
    pub(crate) fn unsupported_media(content_type: &str) -> ApiError {
        let message = format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
        );
        ApiError::new(415, "UnsupportedMediaType", message, json!({}))
    }

    /// The error an injected fault returns: realistic text for 403 and 404, generic otherwise.
    pub(crate) fn injected(code: u16, gvr: Option<&Gvr>, verb: &str, ns: Option<&str>) -> ApiError {
        match (code, gvr) {
            (403, Some(gvr)) => forbidden(gvr, verb, ns),
            (404, _) => ApiError::no_such_resource(),
            (409, Some(gvr)) => ApiError::conflict(gvr, "injected"),
            (410, _) => ApiError::expired(0, 0),
            _ => ApiError::new(
                code,
                reason_of(code),
                format!("injected failure ({code})"),
                json!({}),
            ),
        }
    }

    /// The `Status` object of this error.
    pub(crate) fn to_status(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason,
            "details": self.details, "code": self.code,
        })
    }
}

/// The RBAC denial message of the real server.
fn forbidden(gvr: &Gvr, verb: &str, ns: Option<&str>) -> ApiError {
    let scope = match ns {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".to_string(),
    };
    let message = format!(
        "{} is forbidden: User \"system:serviceaccount:default:epp\" cannot {verb} resource \
         \"{}\" in API group \"{}\"{scope}",
        gvr.qualified(),
        gvr.plural,
        gvr.group
    );
    let details = json!({"group": gvr.group, "kind": gvr.plural});
    ApiError::new(403, "Forbidden", message, details)
}

/// `details` naming one object.
fn details(gvr: &Gvr, name: &str) -> Value {
    json!({"name": name, "group": gvr.group, "kind": gvr.plural})
}

/// The `reason` the real server pairs with a code.
fn reason_of(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}
