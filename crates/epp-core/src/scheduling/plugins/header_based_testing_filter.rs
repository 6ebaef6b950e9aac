//! `header-based-testing-filter`: keeps the endpoints named in a request header
//! (conformance tests and benchmarks choose the backend this way).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hashbrown::HashMap;

use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{Candidate, Filter, SchedulingRequest};

pub const TYPE: &str = "header-based-testing-filter";

/// The request header listing the endpoints to keep.
pub const HEADER: &str = "test-epp-endpoint-selection";

/// The most header entries read; the rest are ignored. Conformance lists one to three
/// endpoints; the limit keeps a client-written header from costing more than a pool.
pub const MAX_ENTRIES: usize = 1024;

/// v1.0.1 `HeaderBasedTestingFilter`: the header is a comma list (entries trimmed); the
/// result follows the header's order. A missing or empty header keeps nothing.
///
/// Beyond v1.0.1, which matches pod IPs only: an entry `ip:port` keeps exactly that
/// endpoint, and a bare `ip` keeps every endpoint on that IP (several ranks or, in
/// standalone mode, several servers on one host). Entries that are not addresses match
/// nothing; entries past the first [`MAX_ENTRIES`] are ignored. Runs in
/// O(entries + candidates · log candidates). No parameters.
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

/// The position of the first entry naming each address and each host.
#[derive(Default)]
struct Selection {
    exact: HashMap<SocketAddr, usize>,
    hosts: HashMap<IpAddr, usize>,
}

impl Selection {
    fn parse(header: &str) -> Self {
        let mut selection = Selection::default();
        for (position, entry) in header.split(',').take(MAX_ENTRIES).enumerate() {
            match parse_entry(entry) {
                Some(Selector::Exact(address)) => {
                    selection.exact.entry(address).or_insert(position);
                }
                Some(Selector::Host(ip)) => {
                    selection.hosts.entry(ip).or_insert(position);
                }
                None => {}
            }
        }
        selection
    }

    /// The position of the first entry that selects `address`, if any.
    fn rank(&self, address: SocketAddr) -> Option<usize> {
        let exact = self.exact.get(&address).copied();
        let host = self.hosts.get(&address.ip()).copied();
        match (exact, host) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Filter for HeaderBasedTestingFilter {
    fn filter(&self, request: &SchedulingRequest<'_>, candidates: &mut Vec<Candidate<'_>>) {
        let Some(value) = request.headers.get(HEADER).filter(|v| !v.trim().is_empty()) else {
            candidates.clear();
            return;
        };
        let selection = Selection::parse(value);
        // Header order, then candidate order among endpoints the same entry selects.
        let mut kept: Vec<(usize, Candidate<'_>)> = candidates
            .iter()
            .filter_map(|&c| selection.rank(c.address()).map(|rank| (rank, c)))
            .collect();
        kept.sort_by_key(|&(rank, _)| rank);
        candidates.clear();
        candidates.extend(kept.into_iter().map(|(_, c)| c));
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

    #[test]
    fn entries_past_the_limit_are_ignored() {
        // Entry MAX_ENTRIES (0-based: the last one read) counts; the one after does not.
        let mut entries = vec!["10.9.9.9"; MAX_ENTRIES - 1];
        entries.push("10.0.0.2");
        entries.push("10.0.0.1");
        assert_eq!(kept(Some(&entries.join(","))), ["10.0.0.2:8000"]);
    }

    #[test]
    fn a_full_header_over_a_big_pool_is_matched_in_linear_time() {
        let endpoints: Vec<_> = (0..10_000u32)
            .map(|i| TestEndpoint::new(&format!("10.{}.{}.1:8000", i / 256, i % 256)).build())
            .collect();
        let mut entries: Vec<String> = (0..MAX_ENTRIES - 1)
            .map(|i| format!("172.16.{}.{}", i / 256, i % 256))
            .collect();
        entries.push("10.0.7.1".into());
        let header = entries.join(",");
        let headers: RequestHeaders = [(HEADER, header.as_str())].into_iter().collect();
        let mut cands = candidates(&endpoints);
        let started = std::time::Instant::now();
        HeaderBasedTestingFilter.filter(&request(&headers, "m"), &mut cands);
        let kept: Vec<&str> = cands.iter().map(|e| e.address_text()).collect();
        assert_eq!(kept, ["10.0.7.1:8000"]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}
