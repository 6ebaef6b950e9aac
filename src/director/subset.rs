//! The gateway's subset hint (`envoy.lb.subset_hint` / `x-gateway-destination-endpoint-subset`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::datastore::Endpoint;

/// Keeps the endpoints the hint allows, in pool order.
///
/// v1.0.1 compares only the IP (`strings.Split(entry, ":")[0]`, which breaks IPv6).
/// Here an entry `ip:port` keeps exactly that endpoint when the pool has it, and
/// otherwise every endpoint on that IP (so a hint carrying another port still works as
/// upstream); a bare IP (or `[v6]`) keeps every endpoint on it. Unparsable entries match
/// nothing.
pub fn filter_by_subset<'s>(
    endpoints: &'s [Arc<Endpoint>],
    hint: &[String],
) -> Vec<&'s Arc<Endpoint>> {
    let mut exact: Vec<SocketAddr> = Vec::new();
    let mut hosts: Vec<IpAddr> = Vec::new();
    for entry in hint {
        let entry = entry.trim();
        if let Ok(address) = entry.parse::<SocketAddr>() {
            if endpoints.iter().any(|e| e.address() == address) {
                exact.push(address);
            } else {
                hosts.push(address.ip());
            }
        } else if let Ok(ip) = entry
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            hosts.push(ip);
        }
    }
    endpoints
        .iter()
        .filter(|e| exact.contains(&e.address()) || hosts.contains(&e.address().ip()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::fixtures::TestEndpoint;

    #[test]
    fn subset_table() {
        let pool: Vec<_> = [
            "10.0.0.1:8000",
            "10.0.0.2:8000",
            "127.0.0.1:9001",
            "127.0.0.1:9002",
            "[fd00::1]:8000",
        ]
        .iter()
        .map(|a| TestEndpoint::new(a).build())
        .collect();
        let cases: [(&[&str], &[&str]); 8] = [
            (
                &["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"],
                &["10.0.0.1:8000", "10.0.0.2:8000"],
            ),
            (&["10.0.0.2:8000"], &["10.0.0.2:8000"]),
            (&["10.0.0.4:8000", "10.0.0.5:8000"], &[]),
            (&["10.0.0.1:9999"], &["10.0.0.1:8000"]),
            (&["127.0.0.1:9002"], &["127.0.0.1:9002"]),
            (&["127.0.0.1"], &["127.0.0.1:9001", "127.0.0.1:9002"]),
            (&["[fd00::1]:8000"], &["[fd00::1]:8000"]),
            (&["garbage", ""], &[]),
        ];
        for (hint, expected) in cases {
            let hint: Vec<String> = hint.iter().map(|s| s.to_string()).collect();
            let kept: Vec<&str> = filter_by_subset(&pool, &hint)
                .iter()
                .map(|e| e.address_text())
                .collect();
            assert_eq!(kept, expected, "hint {hint:?}");
        }
    }
}
