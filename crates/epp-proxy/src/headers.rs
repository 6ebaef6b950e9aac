//! The router mode's headers: what is read from the client's, what is forwarded upstream,
//! and what the client is told.
//!
//! | header | direction | meaning |
//! |---|---|---|
//! | `x-gateway-destination-endpoint-subset` | client → EPP | the endpoints allowed (`ip` or `ip:port`, comma-separated): the subset hint Envoy passes as `envoy.lb.subset_hint` metadata in gateway mode |
//! | `x-gateway-model-name-rewrite`, `x-gateway-inference-objective`, `test-epp-endpoint-selection` | client → EPP | as in gateway mode |
//! | `x-request-id` | both ways | kept, or generated when absent; sent upstream and back |
//! | `x-gateway-destination-endpoint` | EPP → upstream and client | the endpoint that served the request (`ip:port`) |

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use epp_core::director::MAX_SUBSET_ENTRIES;
use epp_core::request::RequestHeaders;
use epp_extproc::REQUEST_ID_HEADER;
use epp_extproc::messages::{DESTINATION_ENDPOINT, SUBSET_KEY};

/// The request header carrying the subset hint (the key Envoy uses in the metadata).
pub const SUBSET_HEADER: &str = SUBSET_KEY;
/// The response (and upstream request) header naming the endpoint that served.
pub const DESTINATION_HEADER: &str = DESTINATION_ENDPOINT;

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy `proxy-connection`): they describe
/// one connection and are never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What routing reads from the request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub request_id: String,
    /// Every header, lowercase names, for the scheduler's header-reading plugins.
    pub headers: RequestHeaders,
    /// From [`SUBSET_HEADER`]; `None` when the client sent none.
    pub subset: Option<Vec<String>>,
}

impl RequestHead {
    pub fn read(map: &HeaderMap) -> RequestHead {
        let mut headers = RequestHeaders::new();
        for (name, value) in map {
            headers.push(
                name.as_str(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            );
        }
        let request_id = headers
            .get(REQUEST_ID_HEADER)
            .filter(|id| !id.is_empty())
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        RequestHead {
            request_id,
            subset: parse_subset(map),
            headers,
        }
    }
}

/// The subset hint: every value of [`SUBSET_HEADER`], split at commas, empty items
/// skipped, cut to [`MAX_SUBSET_ENTRIES`] (a client-sized list must not cost more than a big
/// pool does). A header with no item means "no endpoint allowed", as an empty metadata list.
pub fn parse_subset(map: &HeaderMap) -> Option<Vec<String>> {
    let mut values = map.get_all(SUBSET_HEADER).iter().peekable();
    values.peek()?;
    Some(
        values
            .flat_map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .take(MAX_SUBSET_ENTRIES)
            .collect(),
    )
}

/// Whether a header is forwarded: not hop-by-hop, not named by `Connection`, not one the
/// proxy sets or has handled itself (`host`, `content-length`, `expect`: the body was
/// already read), and not a client-sent routing header (`x-gateway-destination-endpoint*`,
/// as ext_proc removes them).
fn forwarded(name: &HeaderName, connection_named: &[String]) -> bool {
    let name = name.as_str();
    !(HOP_BY_HOP.contains(&name)
        || name == "host"
        || name == "content-length"
        || name == "expect"
        || name.starts_with(DESTINATION_HEADER)
        || connection_named.iter().any(|n| n == name))
}

/// Header names listed in `Connection` (they are hop-by-hop too), lowercase.
fn connection_named(map: &HeaderMap) -> Vec<String> {
    map.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The upstream request's headers: the client's forwardable ones, then the destination, the
/// request id, the host and the body length.
pub(crate) fn upstream_request(
    client: &HeaderMap,
    destination: &str,
    authority: &str,
    request_id: &str,
    body_len: usize,
) -> HeaderMap {
    let named = connection_named(client);
    let mut out = HeaderMap::with_capacity(client.len() + 4);
    for (name, value) in client {
        if forwarded(name, &named) {
            out.append(name.clone(), value.clone());
        }
    }
    set(&mut out, header::HOST, authority);
    set(
        &mut out,
        HeaderName::from_static(DESTINATION_HEADER),
        destination,
    );
    set(
        &mut out,
        HeaderName::from_static(REQUEST_ID_HEADER),
        request_id,
    );
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    out
}

/// The client's response headers: upstream's, less hop-by-hop ones, plus who served it and
/// the request id.
pub(crate) fn client_response(upstream: &mut HeaderMap, destination: &str, request_id: &str) {
    let named = connection_named(upstream);
    for name in HOP_BY_HOP.iter().copied().map(str::to_owned).chain(named) {
        upstream.remove(name.as_str());
    }
    set(
        upstream,
        HeaderName::from_static(DESTINATION_HEADER),
        destination,
    );
    set(
        upstream,
        HeaderName::from_static(REQUEST_ID_HEADER),
        request_id,
    );
}

/// Sets `name` when `value` is a valid header value (a request id from a client always is:
/// it came in a header).
pub(crate) fn set(map: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        map.insert(name, value);
    }
}
