//! `header-based-testing-filter`: keeps the endpoints named in a request header
//! (conformance tests and benchmarks choose the backend this way).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{Candidate, Filter, SchedulingRequest};

pub const TYPE: &str = "header-based-testing-filter";

/// The request header listing the endpoints to keep.
pub const HEADER: &str = "test-epp-endpoint-selection";

/// v1.0.1 `HeaderBasedTestingFilter`: the header is a comma list (entries trimmed); the
/// result follows the header's order. A missing or empty header keeps nothing.
///
/// Beyond v1.0.1, which matches pod IPs only: an entry `ip:port` keeps exactly that
/// endpoint, and a bare `ip` keeps every endpoint on that IP (several ranks or, in
/// standalone mode, several servers on one host). Entries that are not addresses match
/// nothing. No parameters.
#[derive(Debug, Default)]
pub struct HeaderBasedTestingFilter;

pub fn factory(_: &mut PluginContext<'_>) -> Result<PluginRoles, PluginError> {
    Ok(PluginRoles::filter(Arc::new(HeaderBasedTestingFilter)))
}

/// One parsed header entry.
enum Selector {
    Exact(SocketAddr),
    Host(IpAddr),
}

fn parse_entry(entry: &str) -> Option<Selector> {
    let entry = entry.trim();
    if let Ok(address) = entry.parse::<SocketAddr>() {
        return Some(Selector::Exact(address));
    }
    let bare = entry.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().ok().map(Selector::Host)
}

impl Filter for HeaderBasedTestingFilter {
    fn filter(&self, request: &SchedulingRequest<'_>, candidates: &mut Vec<Candidate<'_>>) {
        let Some(value) = request.headers.get(HEADER).filter(|v| !v.trim().is_empty()) else {
            candidates.clear();
            return;
        };
        let mut kept: Vec<Candidate<'_>> = Vec::new();
        for selector in value.split(',').filter_map(parse_entry) {
            for &endpoint in candidates.iter() {
                let matches = match selector {
                    Selector::Exact(address) => endpoint.address() == address,
                    Selector::Host(ip) => endpoint.address().ip() == ip,
                };
                if matches && !kept.iter().any(|k| k.id() == endpoint.id()) {
                    kept.push(endpoint);
                }
            }
        }
        *candidates = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::fixtures::TestEndpoint;
    use crate::request::RequestHeaders;
    use crate::scheduling::plugins::testing::{candidates, request};

    fn kept(header: Option<&str>) -> Vec<String> {
        let endpoints: Vec<_> = [
            "10.0.0.1:8000",
            "10.0.0.2:8000",
            "127.0.0.1:9001",
            "127.0.0.1:9002",
        ]
        .iter()
        .map(|a| TestEndpoint::new(a).build())
        .collect();
        let headers: RequestHeaders = header.map(|h| (HEADER, h)).into_iter().collect();
        let mut cands = candidates(&endpoints);
        HeaderBasedTestingFilter.filter(&request(&headers, "m"), &mut cands);
        cands.iter().map(|e| e.address_text().to_owned()).collect()
    }

    #[test]
    fn selection_table() {
        let cases: [(Option<&str>, &[&str]); 8] = [
            (None, &[]),
            (Some(""), &[]),
            (Some("10.0.0.2"), &["10.0.0.2:8000"]),
            (
                Some(" 10.0.0.2 , 10.0.0.1 "),
                &["10.0.0.2:8000", "10.0.0.1:8000"],
            ),
            (Some("127.0.0.1:9002"), &["127.0.0.1:9002"]),
            (Some("127.0.0.1"), &["127.0.0.1:9001", "127.0.0.1:9002"]),
            (Some("10.0.0.9,not-an-ip"), &[]),
            (Some("10.0.0.1,10.0.0.1:8000"), &["10.0.0.1:8000"]),
        ];
        for (header, expected) in cases {
            assert_eq!(kept(header), expected, "header {header:?}");
        }
    }
}
