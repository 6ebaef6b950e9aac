//! The ext_proc messages Envoy sends, and readers for the replies it acts on.

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    CommonResponse, HttpBody, HttpHeaders, ProcessingRequest, ProcessingResponse,
    ProtocolConfiguration, body_mutation, processing_request, processing_response,
};
use envoy_types::pb::google::protobuf::value;
use epp_extproc::messages::{DESTINATION_ENDPOINT, DESTINATION_NAMESPACE};

use crate::load::ErrorKind;

/// How Envoy sends bodies to the ext_proc server (`ProcessingMode.BodySendMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyMode {
    /// FULL_DUPLEX_STREAMED: chunks go out as they come; the server answers at its pace.
    FullDuplex,
    /// BUFFERED: one body message after the headers reply.
    Buffered,
}

impl BodyMode {
    fn proto(self) -> i32 {
        match self {
            BodyMode::FullDuplex => 4,
            BodyMode::Buffered => 2,
        }
    }
}

/// Headers as Envoy 1.3x sends them: lower-case keys, values in `raw_value`.
pub fn header_map(headers: &[(&str, &str)]) -> HeaderMap {
    HeaderMap {
        headers: headers
            .iter()
            .map(|(key, value)| HeaderValue {
                key: (*key).to_owned(),
                value: String::new(),
                raw_value: value.as_bytes().to_vec(),
            })
            .collect(),
    }
}

/// The stream's first message: request headers, announcing the body modes.
pub fn request_headers(headers: HeaderMap, mode: BodyMode) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::RequestHeaders(HttpHeaders {
            headers: Some(headers),
            end_of_stream: false,
            ..Default::default()
        })),
        protocol_config: Some(ProtocolConfiguration {
            request_body_mode: mode.proto(),
            response_body_mode: mode.proto(),
            send_body_without_waiting_for_header_response: false,
        }),
        ..Default::default()
    }
}

pub fn request_body(body: Vec<u8>, end_of_stream: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::RequestBody(HttpBody {
            body,
            end_of_stream,
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub fn response_headers(headers: HeaderMap) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::ResponseHeaders(HttpHeaders {
            headers: Some(headers),
            end_of_stream: false,
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub fn response_body(body: Vec<u8>, end_of_stream: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::ResponseBody(HttpBody {
            body,
            end_of_stream,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Splits `body` into chunks of at most `chunk_bytes` (an empty body is one empty chunk).
pub fn chunks(body: &[u8], chunk_bytes: usize) -> Vec<&[u8]> {
    if body.is_empty() {
        return vec![body];
    }
    body.chunks(chunk_bytes.max(1)).collect()
}

// === reading replies ===

/// Which phase a reply answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::RequestHeaders => "expected a request-headers reply",
            Phase::RequestBody => "expected a request-body reply",
            Phase::ResponseHeaders => "expected a response-headers reply",
            Phase::ResponseBody => "expected a response-body reply",
        }
    }
}

/// The reply's common part if it answers `phase`; an immediate response is an error with
/// its status, anything else a protocol error.
pub fn expect(
    reply: &ProcessingResponse,
    phase: Phase,
) -> Result<Option<&CommonResponse>, ErrorKind> {
    use processing_response::Response;
    match (reply.response.as_ref(), phase) {
        (Some(Response::RequestHeaders(h)), Phase::RequestHeaders)
        | (Some(Response::ResponseHeaders(h)), Phase::ResponseHeaders) => Ok(h.response.as_ref()),
        (Some(Response::RequestBody(b)), Phase::RequestBody)
        | (Some(Response::ResponseBody(b)), Phase::ResponseBody) => Ok(b.response.as_ref()),
        (Some(Response::ImmediateResponse(r)), _) => {
            let status = r.status.as_ref().map_or(0, |s| s.code);
            Err(ErrorKind::Immediate(u16::try_from(status).unwrap_or(0)))
        }
        _ => Err(ErrorKind::Protocol(phase.name())),
    }
}

/// The destination a routing reply to `phase` sets; header and `envoy.lb` metadata must agree.
pub fn destination(reply: &ProcessingResponse, phase: Phase) -> Result<String, ErrorKind> {
    let header = expect(reply, phase)?
        .and_then(|c| c.header_mutation.as_ref())
        .into_iter()
        .flat_map(|m| &m.set_headers)
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key.eq_ignore_ascii_case(DESTINATION_ENDPOINT))
        .map(|h| String::from_utf8_lossy(&h.raw_value).into_owned())
        .ok_or(ErrorKind::Protocol("no destination header"))?;
    let metadata = reply
        .dynamic_metadata
        .as_ref()
        .and_then(|m| m.fields.get(DESTINATION_NAMESPACE))
        .and_then(|namespace| match &namespace.kind {
            Some(value::Kind::StructValue(inner)) => inner.fields.get(DESTINATION_ENDPOINT),
            _ => None,
        })
        .and_then(|v| match &v.kind {
            Some(value::Kind::StringValue(s)) => Some(s.as_str()),
            _ => None,
        });
    match metadata {
        Some(m) if m == header => Ok(header),
        Some(_) => Err(ErrorKind::Protocol(
            "destination header and metadata differ",
        )),
        None => Err(ErrorKind::Protocol("no destination metadata")),
    }
}

/// A FULL_DUPLEX_STREAMED body chunk: (length, end_of_stream).
pub fn streamed(common: Option<&CommonResponse>) -> Result<(usize, bool), ErrorKind> {
    match common
        .and_then(|c| c.body_mutation.as_ref())
        .and_then(|m| m.mutation.as_ref())
    {
        Some(body_mutation::Mutation::StreamedResponse(s)) => Ok((s.body.len(), s.end_of_stream)),
        _ => Err(ErrorKind::Protocol("expected a streamed body chunk")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use epp_extproc::messages as server;

    #[test]
    fn chunks_cover_the_body() {
        let body = vec![7u8; 40_000];
        let parts = chunks(&body, 16_384);
        assert_eq!(
            parts.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [16_384, 16_384, 7_232]
        );
        assert_eq!(chunks(&[], 16).len(), 1);
    }

    #[test]
    fn reads_the_servers_routing_reply() {
        let common = server::routing_common(
            vec![server::set_header(DESTINATION_ENDPOINT, "10.0.0.1:8000")],
            vec![],
        );
        let reply = server::request_headers(
            Some(common),
            Some(server::destination_metadata("10.0.0.1:8000")),
        );
        assert_eq!(
            destination(&reply, Phase::RequestHeaders),
            Ok("10.0.0.1:8000".to_owned())
        );
        assert_eq!(
            destination(&reply, Phase::RequestBody).err(),
            Some(ErrorKind::Protocol(Phase::RequestBody.name()))
        );
        let other =
            server::request_headers(None, Some(server::destination_metadata("10.0.0.2:8000")));
        assert!(destination(&other, Phase::RequestHeaders).is_err());
    }

    #[test]
    fn immediate_responses_carry_their_status() {
        let reply = server::immediate(503, "no".to_owned());
        assert_eq!(
            expect(&reply, Phase::RequestBody).err(),
            Some(ErrorKind::Immediate(503))
        );
    }

    #[test]
    fn reads_streamed_chunks() {
        let reply = server::request_body(Some(server::streamed_chunk(vec![1, 2, 3], true)), None);
        let common = expect(&reply, Phase::RequestBody).expect("body reply");
        assert_eq!(streamed(common), Ok((3, true)));
        assert!(streamed(None).is_err());
    }
}
