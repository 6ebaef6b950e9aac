//! Unit tables: which headers are read, forwarded and answered.

use http::{HeaderMap, HeaderValue};

use crate::headers::{self, RequestHead, parse_subset};

fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).expect("a header value"));
    }
    map
}

#[test]
fn subset_header_is_split_trimmed_and_bounded() {
    type Case<'a> = (&'a [(&'static str, &'a str)], Option<Vec<&'a str>>);
    let table: [Case<'_>; 4] = [
        (&[], None),
        (
            &[(
                "x-gateway-destination-endpoint-subset",
                "10.0.0.1:8000, 10.0.0.2",
            )],
            Some(vec!["10.0.0.1:8000", "10.0.0.2"]),
        ),
        (
            &[
                ("x-gateway-destination-endpoint-subset", "10.0.0.1"),
                ("x-gateway-destination-endpoint-subset", ",10.0.0.3,"),
            ],
            Some(vec!["10.0.0.1", "10.0.0.3"]),
        ),
        // Present but empty: nothing is allowed (503), as an empty metadata list.
        (
            &[("x-gateway-destination-endpoint-subset", " , ")],
            Some(vec![]),
        ),
    ];
    for (pairs, want) in table {
        let got = parse_subset(&map(pairs));
        assert_eq!(
            got,
            want.map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>()),
            "{pairs:?}"
        );
    }
    let long = vec!["10.0.0.1"; epp_core::director::MAX_SUBSET_ENTRIES + 5].join(",");
    let got = parse_subset(&map(&[("x-gateway-destination-endpoint-subset", &long)]));
    assert_eq!(
        got.map(|v| v.len()),
        Some(epp_core::director::MAX_SUBSET_ENTRIES)
    );
}

#[test]
fn request_id_is_kept_or_generated() {
    let kept = RequestHead::read(&map(&[("x-request-id", "abc-1")]));
    assert_eq!(kept.request_id, "abc-1");
    let first = RequestHead::read(&map(&[]));
    let second = RequestHead::read(&map(&[("x-request-id", "")]));
    assert_eq!(first.request_id.len(), 36, "a UUID: {}", first.request_id);
    assert_ne!(first.request_id, second.request_id);
}

#[test]
fn upstream_headers_drop_hop_by_hop_and_client_routing_headers() {
    let client = map(&[
        ("host", "proxy.local:8081"),
        ("connection", "keep-alive, x-secret-hop"),
        ("x-secret-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("content-length", "999"),
        ("expect", "100-continue"),
        ("x-gateway-destination-endpoint", "6.6.6.6:80"),
        ("x-gateway-destination-endpoint-subset", "10.0.0.1"),
        ("authorization", "Bearer t"),
        ("content-type", "application/json"),
        ("test-epp-endpoint-selection", "10.0.0.1:8000"),
    ]);
    let out = headers::upstream_request(&client, "10.0.0.2:8000", "10.0.0.2:8000", "rid", 12);
    let get = |name: &str| out.get(name).map(|v| v.to_str().expect("ascii"));
    assert_eq!(get("host"), Some("10.0.0.2:8000"));
    assert_eq!(get("x-gateway-destination-endpoint"), Some("10.0.0.2:8000"));
    assert_eq!(get("x-request-id"), Some("rid"));
    assert_eq!(get("content-length"), Some("12"));
    assert_eq!(get("authorization"), Some("Bearer t"));
    assert_eq!(get("content-type"), Some("application/json"));
    assert_eq!(get("test-epp-endpoint-selection"), Some("10.0.0.1:8000"));
    for gone in [
        "connection",
        "x-secret-hop",
        "keep-alive",
        "transfer-encoding",
        "expect",
        "x-gateway-destination-endpoint-subset",
    ] {
        assert_eq!(get(gone), None, "{gone} must not be forwarded");
    }
}

#[test]
fn client_response_names_the_endpoint() {
    let mut upstream = map(&[
        ("content-type", "text/event-stream"),
        ("transfer-encoding", "chunked"),
        ("connection", "close"),
        ("x-sim-server", "8000"),
    ]);
    headers::client_response(&mut upstream, "10.0.0.2:8000", "rid");
    assert_eq!(
        upstream
            .get("x-gateway-destination-endpoint")
            .map(|v| v.as_bytes()),
        Some(&b"10.0.0.2:8000"[..])
    );
    assert_eq!(
        upstream.get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"rid"[..])
    );
    assert!(upstream.get("transfer-encoding").is_none());
    assert!(upstream.get("connection").is_none());
    assert!(upstream.get("x-sim-server").is_some());
}
