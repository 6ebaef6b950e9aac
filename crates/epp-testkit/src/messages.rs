//! The ext_proc messages Envoy sends (`ProcessingRequest` builders) and readers for the
//! replies (`ProcessingResponse`). Body modes are the production [`BodyMode`]. The readers
//! return `Option`s, except [`destination`], which asserts like a test does.

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue, Metadata};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    CommonResponse, HttpBody, HttpHeaders, HttpTrailers, ProcessingRequest, ProcessingResponse,
    ProtocolConfiguration, StreamedBodyResponse, body_mutation, processing_request,
    processing_response,
};
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value};
use epp_extproc::BodyMode;

/// Headers as Envoy 1.3x sends them: keys as given, values in `raw_value`.
fn header_map(headers: &[(&str, &str)]) -> HeaderMap {
    HeaderMap {
        headers: headers
            .iter()
            .map(|(k, v)| HeaderValue {
                key: k.to_string(),
                value: String::new(),
                raw_value: v.as_bytes().to_vec(),
            })
            .collect(),
    }
}

/// The `ProcessingMode.BodySendMode` number of `mode`.
fn wire(mode: BodyMode) -> i32 {
    let mode = match mode {
        BodyMode::None => BodySendMode::None,
        BodyMode::Streamed => BodySendMode::Streamed,
        BodyMode::Buffered => BodySendMode::Buffered,
        BodyMode::BufferedPartial => BodySendMode::BufferedPartial,
        BodyMode::FullDuplexStreamed => BodySendMode::FullDuplexStreamed,
    };
    mode as i32
}

pub fn request_headers(headers: &[(&str, &str)], end_of_stream: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::RequestHeaders(HttpHeaders {
            headers: Some(header_map(headers)),
            end_of_stream,
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub fn request_body(body: &[u8], end_of_stream: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::RequestBody(HttpBody {
            body: body.to_vec(),
            end_of_stream,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// `body` as request-body messages of at most `chunk_bytes` each, the last marked
/// end-of-stream; an empty body is one empty message.
pub fn request_body_chunks(
    body: &[u8],
    chunk_bytes: usize,
) -> impl ExactSizeIterator<Item = ProcessingRequest> + '_ {
    let size = chunk_bytes.max(1);
    let count = body.len().div_ceil(size).max(1);
    (0..count).map(move |i| {
        let start = i * size;
        let end = body.len().min(start + size);
        request_body(&body[start..end], i + 1 == count)
    })
}

pub fn request_trailers() -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::RequestTrailers(
            HttpTrailers::default(),
        )),
        ..Default::default()
    }
}

pub fn response_headers(headers: &[(&str, &str)], end_of_stream: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::ResponseHeaders(HttpHeaders {
            headers: Some(header_map(headers)),
            end_of_stream,
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub fn response_body(body: &[u8], end_of_stream: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::ResponseBody(HttpBody {
            body: body.to_vec(),
            end_of_stream,
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub fn response_trailers() -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::ResponseTrailers(
            HttpTrailers::default(),
        )),
        ..Default::default()
    }
}

/// Marks the message as the stream's first, announcing the body modes as Envoy does.
pub fn with_modes(
    mut message: ProcessingRequest,
    request_mode: BodyMode,
    response_mode: BodyMode,
) -> ProcessingRequest {
    message.protocol_config = Some(ProtocolConfiguration {
        request_body_mode: wire(request_mode),
        response_body_mode: wire(response_mode),
        ..Default::default()
    });
    message
}

/// Attaches the gateway's subset hint.
pub fn with_subset(mut message: ProcessingRequest, endpoints: &[&str]) -> ProcessingRequest {
    let list = Value {
        kind: Some(value::Kind::ListValue(ListValue {
            values: endpoints
                .iter()
                .map(|e| Value {
                    kind: Some(value::Kind::StringValue(e.to_string())),
                })
                .collect(),
        })),
    };
    let namespace = Struct {
        fields: [("x-gateway-destination-endpoint-subset".to_string(), list)].into(),
    };
    message.metadata_context = Some(Metadata {
        filter_metadata: [("envoy.lb.subset_hint".to_string(), namespace)].into(),
        ..Default::default()
    });
    message
}

/// The standard request body of the upstream hermetic test.
pub fn completion_body(model: &str, prompt: &str) -> Vec<u8> {
    format!(r#"{{"max_tokens":100,"model":"{model}","prompt":"{prompt}","temperature":0}}"#)
        .into_bytes()
}

// === reading replies ===

pub fn common(reply: &ProcessingResponse) -> Option<&CommonResponse> {
    match reply.response.as_ref()? {
        processing_response::Response::RequestHeaders(h)
        | processing_response::Response::ResponseHeaders(h) => h.response.as_ref(),
        processing_response::Response::RequestBody(b)
        | processing_response::Response::ResponseBody(b) => b.response.as_ref(),
        _ => None,
    }
}

pub fn kind(reply: &ProcessingResponse) -> &'static str {
    match &reply.response {
        Some(processing_response::Response::RequestHeaders(_)) => "request_headers",
        Some(processing_response::Response::RequestBody(_)) => "request_body",
        Some(processing_response::Response::RequestTrailers(_)) => "request_trailers",
        Some(processing_response::Response::ResponseHeaders(_)) => "response_headers",
        Some(processing_response::Response::ResponseBody(_)) => "response_body",
        Some(processing_response::Response::ResponseTrailers(_)) => "response_trailers",
        Some(processing_response::Response::ImmediateResponse(_)) => "immediate",
        Some(_) => "other",
        None => "none",
    }
}

/// A header the reply sets, as text.
pub fn set_header(reply: &ProcessingResponse, key: &str) -> Option<String> {
    common(reply)?
        .header_mutation
        .as_ref()?
        .set_headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key.eq_ignore_ascii_case(key))
        .map(|h| String::from_utf8_lossy(&h.raw_value).into_owned())
}

/// All header names the reply sets, sorted.
pub fn set_header_names(reply: &ProcessingResponse) -> Vec<String> {
    let mut names: Vec<String> = common(reply)
        .and_then(|c| c.header_mutation.as_ref())
        .map(|m| {
            m.set_headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .map(|h| h.key.clone())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn removed_headers(reply: &ProcessingResponse) -> Vec<String> {
    common(reply)
        .and_then(|c| c.header_mutation.as_ref())
        .map(|m| m.remove_headers.clone())
        .unwrap_or_default()
}

/// `envoy.lb` / `x-gateway-destination-endpoint` from the reply's dynamic metadata.
pub fn metadata_destination(reply: &ProcessingResponse) -> Option<String> {
    let namespace = reply.dynamic_metadata.as_ref()?.fields.get("envoy.lb")?;
    let Some(value::Kind::StructValue(inner)) = &namespace.kind else {
        return None;
    };
    match &inner.fields.get("x-gateway-destination-endpoint")?.kind {
        Some(value::Kind::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The destination a reply routes to, checking header and metadata agree.
pub fn destination(reply: &ProcessingResponse) -> String {
    let header = set_header(reply, "x-gateway-destination-endpoint").expect("destination header");
    assert_eq!(
        metadata_destination(reply).as_deref(),
        Some(header.as_str()),
        "header and metadata must be equal"
    );
    assert!(
        common(reply).expect("common").clear_route_cache,
        "routing replies clear the route cache"
    );
    header
}

/// A FULL_DUPLEX_STREAMED body chunk, borrowed.
pub fn streamed_chunk(reply: &ProcessingResponse) -> Option<&StreamedBodyResponse> {
    match common(reply)?.body_mutation.as_ref()?.mutation.as_ref()? {
        body_mutation::Mutation::StreamedResponse(s) => Some(s),
        _ => None,
    }
}

/// A streamed body chunk: (bytes, end_of_stream).
pub fn streamed(reply: &ProcessingResponse) -> Option<(Vec<u8>, bool)> {
    streamed_chunk(reply).map(|s| (s.body.clone(), s.end_of_stream))
}

/// A BUFFERED body replacement.
pub fn replaced_body(reply: &ProcessingResponse) -> Option<Vec<u8>> {
    match common(reply)?.body_mutation.as_ref()?.mutation.as_ref()? {
        body_mutation::Mutation::Body(b) => Some(b.clone()),
        _ => None,
    }
}

/// A header an immediate response sets.
pub fn immediate_header(reply: &ProcessingResponse, key: &str) -> Option<String> {
    match reply.response.as_ref()? {
        processing_response::Response::ImmediateResponse(r) => r
            .headers
            .as_ref()?
            .set_headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .map(|h| String::from_utf8_lossy(&h.raw_value).into_owned()),
        _ => None,
    }
}

/// (status, body) of an immediate response.
pub fn immediate(reply: &ProcessingResponse) -> Option<(i32, String)> {
    match reply.response.as_ref()? {
        processing_response::Response::ImmediateResponse(r) => Some((
            r.status.as_ref().map_or(0, |s| s.code),
            String::from_utf8_lossy(&r.body).into_owned(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_modes_announce_the_numbers_the_server_reads() {
        for mode in [
            BodyMode::None,
            BodyMode::Streamed,
            BodyMode::Buffered,
            BodyMode::BufferedPartial,
            BodyMode::FullDuplexStreamed,
        ] {
            assert_eq!(BodyMode::from_proto(wire(mode)), Some(mode));
        }
    }

    #[test]
    fn chunks_cover_the_body_and_only_the_last_ends_it() {
        let pieces: Vec<(usize, bool)> = request_body_chunks(&[7u8; 40_000], 16_384)
            .map(|m| match &m.request {
                Some(processing_request::Request::RequestBody(b)) => {
                    (b.body.len(), b.end_of_stream)
                }
                other => panic!("not a body message: {other:?}"),
            })
            .collect();
        assert_eq!(pieces, [(16_384, false), (16_384, false), (7_232, true)]);
        let empty: Vec<_> = request_body_chunks(&[], 16).collect();
        assert_eq!(empty, [request_body(&[], true)]);
    }
}
