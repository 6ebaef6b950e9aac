//! The gateway's subset hint (`envoy.lb.subset_hint` / `x-gateway-destination-endpoint-subset`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hashbrown::HashSet;

use crate::datastore::Endpoint;

/// The most hint entries read per request; the extproc layer drops the rest. Above the
/// default `--max-endpoints` (10 000), so a hint listing a whole pool is kept whole, and
/// low enough that one client cannot make a request cost much more than a big pool
/// does. Cutting only narrows the hint: nothing outside it is ever picked.
pub const MAX_SUBSET_ENTRIES: usize = 16_384;

/// Keeps the endpoints the hint allows, in pool order, in O(entries + endpoints).
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
    let mut exact: HashSet<SocketAddr> = HashSet::new();
    let mut hosts: HashSet<IpAddr> = HashSet::new();
    for entry in hint {
        let entry = entry.trim();
        if let Ok(address) = entry.parse::<SocketAddr>() {
            exact.insert(address);
        } else if let Ok(ip) = entry
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            hosts.insert(ip);
        }
    }
    // An `ip:port` the pool lacks stands for its IP.
    let in_pool: HashSet<SocketAddr> = endpoints
        .iter()
        .map(|e| e.address())
        .filter(|a| exact.contains(a))
        .collect();
    hosts.extend(
        exact
            .iter()
            .filter(|a| !in_pool.contains(*a))
            .map(SocketAddr::ip),
    );
    endpoints
        .iter()
        .filter(|e| in_pool.contains(&e.address()) || hosts.contains(&e.address().ip()))
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

    #[test]
    fn a_hint_at_the_limit_over_a_big_pool_is_matched_in_linear_time() {
        // 10 000 endpoints and a hint of MAX_SUBSET_ENTRIES entries, most of them
        // misses: the quadratic matching took about 10^8 comparisons here.
        let pool: Vec<_> = (0..10_000u32)
            .map(|i| TestEndpoint::new(&format!("10.{}.{}.1:8000", i / 256, i % 256)).build())
            .collect();
        let mut hint: Vec<String> = (0..MAX_SUBSET_ENTRIES - 2)
            .map(|i| format!("172.16.{}.{}:8000", i / 256, i % 256))
            .collect();
        hint.push("10.0.5.1:8000".into());
        hint.push("10.39.15.1".into());
        let started = std::time::Instant::now();
        let kept: Vec<&str> = filter_by_subset(&pool, &hint)
            .iter()
            .map(|e| e.address_text())
            .collect();
        assert_eq!(kept, ["10.0.5.1:8000", "10.39.15.1:8000"]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}
