//! Drives one request through the EPP in a given body mode and reports what the gateway
//! would do with the replies.

use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingRequest;
use epp_extproc::BodyMode;

use crate::messages::*;
use crate::stream::ExtProcStream;

/// The body modes [`send_request`] drives: the two that route on the body.
pub const MODES: [BodyMode; 2] = [BodyMode::FullDuplexStreamed, BodyMode::Buffered];

/// What happened to the request.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Routed: the destination, the body the model server receives, and the
    /// headers set on the upstream request.
    Routed {
        destination: String,
        body: Vec<u8>,
        headers: Vec<String>,
        content_length: Option<String>,
    },
    /// An immediate response: status and body.
    Rejected(i32, String),
}

impl Outcome {
    pub fn destination(&self) -> &str {
        match self {
            Outcome::Routed { destination, .. } => destination,
            Outcome::Rejected(status, body) => panic!("expected a route, got {status} {body}"),
        }
    }
}

/// A request: headers, body chunks and an optional subset hint (sent on every message,
/// as Envoy does when the route sets it).
pub struct Request<'a> {
    pub headers: Vec<(&'a str, &'a str)>,
    pub chunks: Vec<Vec<u8>>,
    pub subset: Option<Vec<&'a str>>,
}

impl<'a> Request<'a> {
    pub fn new(headers: &[(&'a str, &'a str)], body: Vec<u8>) -> Self {
        Request {
            headers: headers.to_vec(),
            chunks: vec![body],
            subset: None,
        }
    }

    pub fn chunked(headers: &[(&'a str, &'a str)], chunks: Vec<Vec<u8>>) -> Self {
        Request {
            headers: headers.to_vec(),
            chunks,
            subset: None,
        }
    }

    pub fn subset(mut self, endpoints: &[&'a str]) -> Self {
        self.subset = Some(endpoints.to_vec());
        self
    }

    fn decorate(&self, message: ProcessingRequest) -> ProcessingRequest {
        match &self.subset {
            Some(subset) => with_subset(message, subset),
            None => message,
        }
    }
}

/// Sends the request side in `mode` (one of [`MODES`]) and interprets the replies.
pub async fn send_request(
    stream: &mut ExtProcStream,
    mode: BodyMode,
    request: &Request<'_>,
) -> Outcome {
    let first = with_modes(request_headers(&request.headers, false), mode, mode);
    match mode {
        BodyMode::FullDuplexStreamed => full_duplex(stream, request, first).await,
        BodyMode::Buffered => buffered(stream, request, first).await,
        other => panic!("send_request drives {MODES:?}, not {other:?}"),
    }
}

async fn full_duplex(
    stream: &mut ExtProcStream,
    request: &Request<'_>,
    first: ProcessingRequest,
) -> Outcome {
    stream.send(request.decorate(first)).await;
    let last = request.chunks.len() - 1;
    for (i, chunk) in request.chunks.iter().enumerate() {
        if i < last {
            stream
                .send(request.decorate(request_body(chunk, false)))
                .await;
        }
    }
    // The headers reply is held until the body ends.
    stream.expect_silence().await;
    stream
        .send(request.decorate(request_body(&request.chunks[last], true)))
        .await;
    let headers_reply = stream.reply().await;
    if let Some((status, body)) = immediate(&headers_reply) {
        return Outcome::Rejected(status, body);
    }
    assert_eq!(kind(&headers_reply), "request_headers", "{headers_reply:?}");
    let mut body = Vec::new();
    loop {
        let reply = stream.reply().await;
        assert_eq!(kind(&reply), "request_body");
        let (chunk, end) = streamed(&reply).expect("FULL_DUPLEX body replies are streamed");
        body.extend_from_slice(&chunk);
        if end {
            break;
        }
    }
    Outcome::Routed {
        destination: destination(&headers_reply),
        body,
        headers: set_header_names(&headers_reply),
        content_length: set_header(&headers_reply, "content-length"),
    }
}

async fn buffered(
    stream: &mut ExtProcStream,
    request: &Request<'_>,
    first: ProcessingRequest,
) -> Outcome {
    let headers_reply = stream.exchange(request.decorate(first), 1).await.remove(0);
    assert_eq!(kind(&headers_reply), "request_headers");
    assert!(
        set_header_names(&headers_reply).is_empty(),
        "BUFFERED headers reply is empty"
    );
    let whole: Vec<u8> = request.chunks.concat();
    let reply = stream
        .exchange(request.decorate(request_body(&whole, true)), 1)
        .await
        .remove(0);
    if let Some((status, body)) = immediate(&reply) {
        return Outcome::Rejected(status, body);
    }
    assert_eq!(kind(&reply), "request_body", "{reply:?}");
    assert!(
        streamed(&reply).is_none(),
        "BUFFERED must not get streamed mutations"
    );
    let body = replaced_body(&reply).unwrap_or(whole);
    Outcome::Routed {
        destination: destination(&reply),
        body,
        headers: set_header_names(&reply),
        content_length: set_header(&reply, "content-length"),
    }
}
