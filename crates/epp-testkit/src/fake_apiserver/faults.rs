//! Fault injection and request accounting: resources made unavailable (403/404),
//! one-shot failures by path prefix, the "restarting" window in which connections are
//! reset, how an expired watch is reported, and the log of every request served.

use std::collections::HashMap;
use std::time::Instant;

use super::resources::Gvr;

/// What a request did, as the real server's audit log would name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `GET` a collection.
    List,
    /// `GET` a collection with `watch=true`.
    Watch,
    /// `GET` one object.
    Get,
    /// `POST` a collection.
    Create,
    /// `PUT` an object.
    Replace,
    /// `PATCH` an object.
    Patch,
    /// `DELETE` an object.
    Delete,
    /// `DELETE` a collection.
    DeleteCollection,
    /// `/api`, `/apis`, `/version` and group discovery.
    Discovery,
    /// A path or method the server does not serve.
    Other,
}

/// One served request.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw (still percent-encoded) query string.
    pub query: String,
    /// What the request did.
    pub verb: Verb,
    /// The resource addressed, if any.
    pub gvr: Option<Gvr>,
    /// The namespace in the path, if any.
    pub namespace: Option<String>,
    /// Subresource (e.g. `status`), if any.
    pub subresource: Option<String>,
    /// HTTP status answered (200 for a watch that started streaming).
    pub status: u16,
}

/// How a watch from a compacted resourceVersion is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExpiryMode {
    /// `200` and an `ERROR` event with a 410 `Status`, then end: what the real server does.
    #[default]
    InStream,
    /// `410 Gone` with a `Status` body on the watch request itself.
    Http,
}

/// A one-shot (or n-shot) failure for paths starting with a prefix.
#[derive(Clone, Debug)]
struct FailRule {
    prefix: String,
    code: u16,
    remaining: usize,
}

/// The mutable fault and accounting state.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    unavailable: HashMap<Gvr, u16>,
    fail_rules: Vec<FailRule>,
    down_until: Option<Instant>,
    pub(crate) expiry_mode: ExpiryMode,
    pub(crate) log: Vec<RequestRecord>,
}

impl Faults {
    /// Makes every request for `gvr` fail with `code` until cleared.
    pub(crate) fn set_unavailable(&mut self, gvr: &Gvr, code: Option<u16>) {
        match code {
            Some(code) => self.unavailable.insert(gvr.clone(), code),
            None => self.unavailable.remove(gvr),
        };
    }

    /// Makes the next `times` requests whose path starts with `prefix` fail with `code`.
    pub(crate) fn fail_requests(&mut self, prefix: &str, code: u16, times: usize) {
        self.fail_rules.push(FailRule {
            prefix: prefix.to_string(),
            code,
            remaining: times,
        });
    }

    /// The failure to inject for this request, if any (consuming a one-shot rule).
    pub(crate) fn injected(&mut self, path: &str, gvr: Option<&Gvr>) -> Option<u16> {
        if let Some(rule) = self
            .fail_rules
            .iter_mut()
            .find(|r| r.remaining > 0 && path.starts_with(&r.prefix))
        {
            rule.remaining -= 1;
            let code = rule.code;
            self.fail_rules.retain(|r| r.remaining > 0);
            return Some(code);
        }
        gvr.and_then(|g| self.unavailable.get(g).copied())
    }

    /// Starts a "restart": connections are reset until `until`.
    pub(crate) fn set_down_until(&mut self, until: Instant) {
        self.down_until = Some(until);
    }

    /// Whether the server is inside a restart window.
    pub(crate) fn is_down(&self) -> bool {
        self.down_until.is_some_and(|t| Instant::now() < t)
    }

    /// Requests matching a verb and gvr.
    pub(crate) fn count(&self, verb: Verb, gvr: &Gvr) -> usize {
        self.log
            .iter()
            .filter(|r| r.verb == verb && r.gvr.as_ref() == Some(gvr))
            .count()
    }
}
