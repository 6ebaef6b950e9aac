//! Builders for ext_proc `ProcessingResponse` messages.

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::HeaderSendMode;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyMutation, BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, ImmediateResponse,
    ProcessingResponse, StreamedBodyResponse, TrailersResponse, body_mutation, processing_response,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Struct, Value, value};

/// The routing header and `envoy.lb` metadata key.
pub const DESTINATION_ENDPOINT: &str = "x-gateway-destination-endpoint";
/// Dynamic-metadata namespace of the destination.
pub const DESTINATION_NAMESPACE: &str = "envoy.lb";
/// Dynamic-metadata namespace of the gateway's subset hint.
pub const SUBSET_NAMESPACE: &str = "envoy.lb.subset_hint";
/// Key of the subset list inside [`SUBSET_NAMESPACE`].
pub const SUBSET_KEY: &str = "x-gateway-destination-endpoint-subset";
/// Response header v1.0.1 adds to every response.
pub const RESPONSE_MARKER: &str = "x-went-into-resp-headers";
/// v1.0.1 splits replayed bodies into chunks of this many bytes.
pub const BODY_CHUNK_LIMIT: usize = 62_000;

/// A header to set, overwriting any value the request already has.
///
/// `append_action` is explicit: Envoy treats an unset `append` as overwrite, but other
/// data planes have appended, which would let a client-sent destination survive.
pub fn set_header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: String::new(),
            raw_value: value.as_bytes().to_vec(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

/// `{"envoy.lb": {"x-gateway-destination-endpoint": destination}}`.
pub fn destination_metadata(destination: &str) -> Struct {
    let inner = Struct {
        fields: [(DESTINATION_ENDPOINT.to_owned(), string_value(destination))].into(),
    };
    Struct {
        fields: [(
            DESTINATION_NAMESPACE.to_owned(),
            Value {
                kind: Some(value::Kind::StructValue(inner)),
            },
        )]
        .into(),
    }
}

fn string_value(s: &str) -> Value {
    Value {
        kind: Some(value::Kind::StringValue(s.to_owned())),
    }
}

/// Header changes that route the request.
pub fn routing_common(
    set_headers: Vec<HeaderValueOption>,
    remove_headers: Vec<String>,
) -> CommonResponse {
    CommonResponse {
        header_mutation: Some(HeaderMutation {
            set_headers,
            remove_headers,
        }),
        clear_route_cache: true,
        ..Default::default()
    }
}

pub fn request_headers(
    common: Option<CommonResponse>,
    metadata: Option<Struct>,
) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(processing_response::Response::RequestHeaders(
            HeadersResponse { response: common },
        )),
        dynamic_metadata: metadata,
        ..Default::default()
    }
}

pub fn request_body(
    common: Option<CommonResponse>,
    metadata: Option<Struct>,
) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(processing_response::Response::RequestBody(BodyResponse {
            response: common,
        })),
        dynamic_metadata: metadata,
        ..Default::default()
    }
}

pub fn response_headers(common: Option<CommonResponse>) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(processing_response::Response::ResponseHeaders(
            HeadersResponse { response: common },
        )),
        ..Default::default()
    }
}

pub fn response_body(common: Option<CommonResponse>) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(processing_response::Response::ResponseBody(BodyResponse {
            response: common,
        })),
        ..Default::default()
    }
}

/// The `mode_override` that keeps the request body `request_body_mode` (the gateway is
/// about to send it in that mode) and asks for the response body in `response_body_mode`.
///
/// Header modes are SEND (the EPP reads the response headers); trailer modes are DEFAULT,
/// which Envoy 1.37+ reads as "keep the filter's configured mode" and older Envoy as SKIP.
/// Envoy applies it only when the filter has `allow_mode_override: true` (and, if it lists
/// `allowed_override_modes`, one of them matches); otherwise it ignores it.
pub fn body_mode_override(request_body_mode: i32, response_body_mode: i32) -> ProcessingMode {
    ProcessingMode {
        request_header_mode: HeaderSendMode::Send as i32,
        response_header_mode: HeaderSendMode::Send as i32,
        request_body_mode,
        response_body_mode,
        request_trailer_mode: HeaderSendMode::Default as i32,
        response_trailer_mode: HeaderSendMode::Default as i32,
    }
}

/// A FULL_DUPLEX_STREAMED body chunk.
pub fn streamed_chunk(body: Vec<u8>, end_of_stream: bool) -> CommonResponse {
    CommonResponse {
        body_mutation: Some(BodyMutation {
            mutation: Some(body_mutation::Mutation::StreamedResponse(
                StreamedBodyResponse {
                    body,
                    end_of_stream,
                    ..Default::default()
                },
            )),
        }),
        ..Default::default()
    }
}

/// A BUFFERED body replacement.
pub fn replaced_body(body: Vec<u8>) -> BodyMutation {
    BodyMutation {
        mutation: Some(body_mutation::Mutation::Body(body)),
    }
}

pub fn request_trailers() -> ProcessingResponse {
    ProcessingResponse {
        response: Some(processing_response::Response::RequestTrailers(
            TrailersResponse::default(),
        )),
        ..Default::default()
    }
}

pub fn response_trailers() -> ProcessingResponse {
    ProcessingResponse {
        response: Some(processing_response::Response::ResponseTrailers(
            TrailersResponse::default(),
        )),
        ..Default::default()
    }
}

/// An immediate HTTP response: v1.0.1 sets only the status and the body
/// `inference gateway: <Code> - <message>`.
pub fn immediate(status: u16, body: String) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(processing_response::Response::ImmediateResponse(
            ImmediateResponse {
                status: Some(HttpStatus {
                    code: i32::from(status),
                }),
                body: body.into_bytes(),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// Splits `body` into streamed chunks of at most [`BODY_CHUNK_LIMIT`] bytes, the last
/// marked end-of-stream when `end_of_stream` (an empty body gives one empty chunk).
pub fn split_streamed(
    body: &[u8],
    end_of_stream: bool,
) -> impl Iterator<Item = CommonResponse> + '_ {
    let count = body.len().div_ceil(BODY_CHUNK_LIMIT).max(1);
    (0..count).map(move |i| {
        let start = i * BODY_CHUNK_LIMIT;
        let end = (start + BODY_CHUNK_LIMIT).min(body.len());
        streamed_chunk(
            body[start.min(end)..end].to_vec(),
            end_of_stream && i + 1 == count,
        )
    })
}

/// 413 for a request body over `--max-request-body-bytes` (`limit`).
pub fn payload_too_large(limit: usize) -> ProcessingResponse {
    rejected(crate::Rejection::payload_too_large(limit))
}

/// The immediate response of a [`crate::Rejection`].
pub fn rejected(rejection: crate::Rejection) -> ProcessingResponse {
    immediate(rejection.status, rejection.body)
}
