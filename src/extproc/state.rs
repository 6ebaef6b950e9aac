//! The per-stream state machine: one HTTP exchange, message by message, for every body
//! mode. Pure: no I/O; the service feeds it messages and sends what it returns.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, Metadata};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    CommonResponse, HttpBody, HttpHeaders, ProcessingRequest, ProcessingResponse,
    processing_request,
};
use envoy_types::pb::google::protobuf::value;
use tonic::Status;

use crate::director::{Decision, PickError, RoutingRequest, Usage};
use crate::extproc::EndpointPicker;
use crate::extproc::messages::{self, DESTINATION_ENDPOINT, SUBSET_KEY, SUBSET_NAMESPACE};
use crate::extproc::usage::UsageScanner;
use crate::request::{BodyError, RequestHeaders, parse_body, rewrite_model};

/// Header naming the InferenceObjective of a request.
pub const OBJECTIVE_HEADER: &str = "x-gateway-inference-objective";
/// Header replacing the body's model.
pub const MODEL_REWRITE_HEADER: &str = "x-gateway-model-name-rewrite";
/// Header carrying the flow-fairness id (parsed, unused in v1.0.1).
pub const FAIRNESS_HEADER: &str = "x-gateway-inference-fairness-id";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How the gateway sends a body (Envoy `ProcessingMode.BodySendMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    None,
    Streamed,
    Buffered,
    BufferedPartial,
    FullDuplexStreamed,
}

impl BodyMode {
    pub fn from_proto(value: i32) -> Option<BodyMode> {
        match value {
            0 => Some(BodyMode::None),
            1 => Some(BodyMode::Streamed),
            2 => Some(BodyMode::Buffered),
            3 => Some(BodyMode::BufferedPartial),
            4 => Some(BodyMode::FullDuplexStreamed),
            _ => None,
        }
    }

    /// Whether the destination can wait for the whole request body. In STREAMED and NONE
    /// modes the gateway forwards headers before the body, so the pick happens at headers.
    fn routes_on_body(self) -> bool {
        matches!(
            self,
            BodyMode::Buffered | BodyMode::BufferedPartial | BodyMode::FullDuplexStreamed
        )
    }
}

/// Per-stream limits and defaults, shared by all streams.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Request bodies larger than this get 413.
    pub max_request_body_bytes: usize,
    /// Body modes assumed when the gateway does not send `protocol_config`.
    pub fallback_body_mode: BodyMode,
    /// Log unmarshalling errors with the raw body (v1.0.1 does at verbosity >= 4).
    pub log_bodies: bool,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            max_request_body_bytes: 64 << 20,
            fallback_body_mode: BodyMode::FullDuplexStreamed,
            log_bodies: false,
        }
    }
}

/// What the service does after a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Send the replies and wait for the next message.
    Continue,
    /// Send the replies (an immediate response) and end the stream.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestPhase {
    AwaitingHeaders,
    /// Headers seen; body chunks are being collected (or passed through).
    Body,
    /// The request side is complete.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponsePhase {
    AwaitingHeaders,
    Body,
    Done,
}

/// One ext_proc stream.
pub struct StreamState {
    settings: Arc<StreamSettings>,
    request_mode: Option<BodyMode>,
    response_mode: Option<BodyMode>,
    request_phase: RequestPhase,
    response_phase: ResponsePhase,
    headers: RequestHeaders,
    request_id: String,
    request_id_generated: bool,
    /// Client-sent `x-gateway-destination-endpoint*` headers other than the one we set.
    client_routing_headers: Vec<String>,
    subset: Option<Vec<String>>,
    body_chunks: Vec<Vec<u8>>,
    body_len: usize,
    decision: Option<Decision>,
    model: String,
    target_model: String,
    usage: Option<UsageScanner>,
}

impl std::fmt::Debug for StreamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamState")
            .field("request_id", &self.request_id)
            .field("request_phase", &self.request_phase)
            .field("response_phase", &self.response_phase)
            .field("request_mode", &self.request_mode)
            .finish_non_exhaustive()
    }
}

impl StreamState {
    pub fn new(settings: Arc<StreamSettings>) -> Self {
        StreamState {
            settings,
            request_mode: None,
            response_mode: None,
            request_phase: RequestPhase::AwaitingHeaders,
            response_phase: ResponsePhase::AwaitingHeaders,
            headers: RequestHeaders::new(),
            request_id: String::new(),
            request_id_generated: false,
            client_routing_headers: Vec::new(),
            subset: None,
            body_chunks: Vec::new(),
            body_len: 0,
            decision: None,
            model: String::new(),
            target_model: String::new(),
            usage: None,
        }
    }

    /// `x-request-id` once the request headers were seen.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The pick, once made.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// Handles one message, pushing replies into `out`.
    ///
    /// A `Status` error ends the stream with that gRPC status: the gateway's failure mode
    /// applies (protocol violations, pool not ready).
    pub fn on_message(
        &mut self,
        picker: &dyn EndpointPicker,
        message: ProcessingRequest,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        self.learn_modes(&message);
        if let Some(metadata) = &message.metadata_context {
            self.learn_subset(metadata);
        }
        let Some(request) = message.request else {
            return Err(Status::invalid_argument(
                "ProcessingRequest carries no request, response or trailers",
            ));
        };
        match request {
            processing_request::Request::RequestHeaders(h) => {
                self.on_request_headers(picker, h, out)
            }
            processing_request::Request::RequestBody(b) => self.on_request_body(picker, b, out),
            processing_request::Request::RequestTrailers(_) => {
                self.on_request_trailers(picker, out)
            }
            processing_request::Request::ResponseHeaders(h) => {
                self.on_response_headers(picker, h, out)
            }
            processing_request::Request::ResponseBody(b) => self.on_response_body(picker, b, out),
            processing_request::Request::ResponseTrailers(_) => {
                self.on_response_trailers(picker, out)
            }
        }
    }

    // === request side ===

    fn on_request_headers(
        &mut self,
        picker: &dyn EndpointPicker,
        headers: HttpHeaders,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        if self.request_phase != RequestPhase::AwaitingHeaders {
            return Err(Status::failed_precondition(
                "request headers received twice on one stream",
            ));
        }
        self.read_headers(headers.headers.unwrap_or_default());
        self.request_phase = RequestPhase::Body;
        if headers.end_of_stream {
            // v1.0.1: a bodyless request (GET) goes to a random endpoint.
            self.request_phase = RequestPhase::Done;
            let decision = match picker.route_bodyless(self.subset.as_deref()) {
                Ok(decision) => decision,
                Err(e) => return self.fail_pick(e, out),
            };
            out.push(messages::request_headers(
                Some(self.routing_common(&decision, None)),
                Some(messages::destination_metadata(&decision.destination)),
            ));
            self.decision = Some(decision);
            return Ok(Flow::Continue);
        }
        let mode = self.request_mode();
        if !mode.routes_on_body() {
            return self.route_without_body(picker, out);
        }
        if mode != BodyMode::FullDuplexStreamed {
            // BUFFERED: the gateway waits for this reply before sending the body; the
            // destination rides on the body reply.
            out.push(messages::request_headers(None, None));
        }
        Ok(Flow::Continue)
    }

    fn on_request_body(
        &mut self,
        picker: &dyn EndpointPicker,
        body: HttpBody,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        match self.request_phase {
            RequestPhase::AwaitingHeaders => {
                return Err(Status::failed_precondition(
                    "request body received before request headers",
                ));
            }
            RequestPhase::Done if self.request_mode().routes_on_body() => {
                return Err(Status::failed_precondition(
                    "request body received after the request ended",
                ));
            }
            _ => {}
        }
        if !self.request_mode().routes_on_body() {
            // STREAMED / NONE: already routed at headers; let the chunk through unchanged.
            out.push(messages::request_body(None, None));
            return Ok(Flow::Continue);
        }
        self.body_len += body.body.len();
        if self.body_len > self.settings.max_request_body_bytes {
            let limit = self.settings.max_request_body_bytes;
            self.body_chunks.clear();
            out.push(messages::immediate(
                413,
                format!("inference gateway: PayloadTooLarge - request body exceeds the limit of {limit} bytes"),
            ));
            return Ok(Flow::Close);
        }
        if !body.body.is_empty() {
            self.body_chunks.push(body.body);
        }
        let complete = body.end_of_stream || self.request_mode() != BodyMode::FullDuplexStreamed;
        if complete {
            return self.complete_request_body(picker, out);
        }
        Ok(Flow::Continue)
    }

    fn on_request_trailers(
        &mut self,
        picker: &dyn EndpointPicker,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        if self.request_phase == RequestPhase::AwaitingHeaders {
            return Err(Status::failed_precondition(
                "request trailers received before request headers",
            ));
        }
        if self.request_phase == RequestPhase::Body && self.request_mode().routes_on_body() {
            // FULL_DUPLEX_STREAMED with trailers: the body ends without an end-of-stream chunk.
            if self.complete_request_body(picker, out)? == Flow::Close {
                return Ok(Flow::Close);
            }
        }
        self.request_phase = RequestPhase::Done;
        out.push(messages::request_trailers());
        Ok(Flow::Continue)
    }

    /// Parses the whole body, routes, and queues the routing replies.
    fn complete_request_body(
        &mut self,
        picker: &dyn EndpointPicker,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        self.request_phase = RequestPhase::Done;
        let chunks = std::mem::take(&mut self.body_chunks);
        let joined;
        let body: &[u8] = match chunks.as_slice() {
            [] => &[],
            [one] => one,
            many => {
                joined = many.concat();
                &joined
            }
        };
        let parsed = match parse_body(body) {
            Ok(parsed) => parsed,
            Err(e) => return self.fail_body(e, body, out),
        };
        self.model.clone_from(&parsed.model);
        self.target_model = self
            .headers
            .get(MODEL_REWRITE_HEADER)
            .filter(|m| !m.is_empty())
            .map_or_else(|| parsed.model.clone(), str::to_owned);
        let routing = RoutingRequest {
            request_id: &self.request_id,
            model: &self.model,
            target_model: &self.target_model,
            prompt: parsed.prompt.as_deref(),
            headers: &self.headers,
            objective: self.headers.get(OBJECTIVE_HEADER),
            subset: self.subset.as_deref(),
        };
        let decision = match picker.route(&routing) {
            Ok(decision) => decision,
            Err(e) => return self.fail_pick(e, out),
        };
        let rewritten = (self.target_model != parsed.model)
            .then(|| rewrite_model(body, &parsed, &self.target_model));
        let metadata = Some(messages::destination_metadata(&decision.destination));
        if self.request_mode() == BodyMode::FullDuplexStreamed {
            let length = rewritten.as_ref().map_or(body.len(), Vec::len);
            out.push(messages::request_headers(
                Some(self.routing_common(&decision, Some(length))),
                metadata,
            ));
            match rewritten {
                Some(new_body) => out.extend(
                    messages::split_streamed(&new_body)
                        .map(|c| messages::request_body(Some(c), None)),
                ),
                None => replay_chunks(chunks, out),
            }
        } else {
            let length = rewritten.as_ref().map(Vec::len);
            let mut common = self.routing_common(&decision, length);
            common.body_mutation = rewritten.map(messages::replaced_body);
            out.push(messages::request_body(Some(common), metadata));
        }
        self.decision = Some(decision);
        Ok(Flow::Continue)
    }

    /// STREAMED / NONE request bodies: pick at headers time, by load alone.
    fn route_without_body(
        &mut self,
        picker: &dyn EndpointPicker,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        self.target_model = self
            .headers
            .get(MODEL_REWRITE_HEADER)
            .unwrap_or_default()
            .to_owned();
        let routing = RoutingRequest {
            request_id: &self.request_id,
            model: "",
            target_model: &self.target_model,
            prompt: None,
            headers: &self.headers,
            objective: self.headers.get(OBJECTIVE_HEADER),
            subset: self.subset.as_deref(),
        };
        let decision = match picker.route(&routing) {
            Ok(decision) => decision,
            Err(e) => return self.fail_pick(e, out),
        };
        out.push(messages::request_headers(
            Some(self.routing_common(&decision, None)),
            Some(messages::destination_metadata(&decision.destination)),
        ));
        self.decision = Some(decision);
        Ok(Flow::Continue)
    }

    /// The header mutation that routes: the destination, the new length, a generated
    /// request id, and removal of client-sent routing headers.
    fn routing_common(&self, decision: &Decision, content_length: Option<usize>) -> CommonResponse {
        let mut set = vec![messages::set_header(
            DESTINATION_ENDPOINT,
            &decision.destination,
        )];
        if let Some(length) = content_length.filter(|&l| l > 0) {
            set.push(messages::set_header("content-length", &length.to_string()));
        }
        if self.request_id_generated {
            set.push(messages::set_header(REQUEST_ID_HEADER, &self.request_id));
        }
        messages::routing_common(set, self.client_routing_headers.clone())
    }

    // === response side ===

    fn on_response_headers(
        &mut self,
        picker: &dyn EndpointPicker,
        headers: HttpHeaders,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        if self.response_phase != ResponsePhase::AwaitingHeaders {
            return Err(Status::failed_precondition(
                "response headers received twice on one stream",
            ));
        }
        if self.request_phase == RequestPhase::AwaitingHeaders {
            return Err(Status::failed_precondition(
                "response headers received before request headers",
            ));
        }
        let streaming = headers
            .headers
            .iter()
            .flat_map(|map| &map.headers)
            .any(|h| {
                h.key.eq_ignore_ascii_case("content-type")
                    && header_text(h).contains("text/event-stream")
            });
        self.usage = Some(UsageScanner::new(streaming));
        self.response_phase = ResponsePhase::Body;
        out.push(messages::response_headers(Some(CommonResponse {
            header_mutation: Some(
                envoy_types::pb::envoy::service::ext_proc::v3::HeaderMutation {
                    set_headers: vec![messages::set_header(messages::RESPONSE_MARKER, "true")],
                    remove_headers: Vec::new(),
                },
            ),
            ..Default::default()
        })));
        if headers.end_of_stream {
            self.finish_response(picker);
        }
        Ok(Flow::Continue)
    }

    fn on_response_body(
        &mut self,
        picker: &dyn EndpointPicker,
        body: HttpBody,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        if self.response_phase != ResponsePhase::Body {
            return Err(Status::failed_precondition(match self.response_phase {
                ResponsePhase::AwaitingHeaders => "response body received before response headers",
                _ => "response body received after the response ended",
            }));
        }
        if let Some(scanner) = &mut self.usage {
            scanner.feed(&body.body);
        }
        let end = body.end_of_stream;
        if self.response_mode() == BodyMode::FullDuplexStreamed {
            out.push(messages::response_body(Some(messages::streamed_chunk(
                body.body, end,
            ))));
        } else {
            // BUFFERED / STREAMED: no mutation means "pass unchanged".
            out.push(messages::response_body(None));
        }
        if end {
            self.finish_response(picker);
        }
        Ok(Flow::Continue)
    }

    fn on_response_trailers(
        &mut self,
        picker: &dyn EndpointPicker,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        if self.response_phase == ResponsePhase::AwaitingHeaders {
            return Err(Status::failed_precondition(
                "response trailers received before response headers",
            ));
        }
        self.finish_response(picker);
        out.push(messages::response_trailers());
        Ok(Flow::Continue)
    }

    fn finish_response(&mut self, picker: &dyn EndpointPicker) {
        if self.response_phase == ResponsePhase::Done {
            return;
        }
        self.response_phase = ResponsePhase::Done;
        let usage: Option<Usage> = self.usage.as_mut().and_then(UsageScanner::finish);
        if let Some(decision) = &self.decision {
            picker.response_complete(decision, &self.request_id, usage);
        }
    }

    // === errors ===

    fn fail_body(
        &mut self,
        error: BodyError,
        body: &[u8],
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        let mut message = error.to_string();
        if let BodyError::InvalidJson { detail } = &error {
            tracing::debug!(error = %detail, "cannot parse the request body");
            if self.settings.log_bodies {
                message = format!("{message}: {}", String::from_utf8_lossy(body));
            }
        }
        out.push(messages::immediate(
            400,
            format!("inference gateway: BadRequest - {message}"),
        ));
        Ok(Flow::Close)
    }

    /// Maps a pick error to what the client gets (v1.0.1 `buildErrResponse`).
    fn fail_pick(
        &mut self,
        error: PickError,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        let (status, code) = match &error {
            PickError::PoolNotSynced => {
                return Err(Status::unavailable(format!(
                    "failed to handle request: {error}"
                )));
            }
            PickError::NoEndpoints | PickError::EmptyResult => (500, "Internal"),
            PickError::NoCandidates => (503, "ServiceUnavailable"),
            PickError::Shed | PickError::Scheduling(_) => (429, "InferencePoolResourceExhausted"),
        };
        tracing::info!(reason = %error, status, "request not routed");
        out.push(messages::immediate(
            status,
            format!("inference gateway: {code} - {error}"),
        ));
        Ok(Flow::Close)
    }

    // === inputs ===

    fn request_mode(&self) -> BodyMode {
        self.request_mode
            .unwrap_or(self.settings.fallback_body_mode)
    }

    fn response_mode(&self) -> BodyMode {
        self.response_mode
            .unwrap_or(self.settings.fallback_body_mode)
    }

    /// `protocol_config` arrives on the first message only.
    fn learn_modes(&mut self, message: &ProcessingRequest) {
        if let Some(config) = &message.protocol_config {
            self.request_mode = self
                .request_mode
                .or(BodyMode::from_proto(config.request_body_mode));
            self.response_mode = self
                .response_mode
                .or(BodyMode::from_proto(config.response_body_mode));
        }
    }

    /// Keeps the latest subset hint. v1.0.1 replaces all metadata on every message, so a
    /// hint sent only with the headers was lost; here a later message without the
    /// namespace keeps the earlier hint.
    fn learn_subset(&mut self, metadata: &Metadata) {
        let Some(namespace) = metadata.filter_metadata.get(SUBSET_NAMESPACE) else {
            return;
        };
        self.subset = match namespace
            .fields
            .get(SUBSET_KEY)
            .and_then(|v| v.kind.as_ref())
        {
            Some(value::Kind::ListValue(list)) => Some(
                list.values
                    .iter()
                    .filter_map(|v| match &v.kind {
                        Some(value::Kind::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            // v1.0.1: a key that is not a list means "no hint".
            _ => None,
        };
    }

    fn read_headers(&mut self, map: HeaderMap) {
        for header in map.headers {
            let value = header_text(&header).into_owned();
            let name = header.key.to_ascii_lowercase();
            if name == REQUEST_ID_HEADER && !value.is_empty() {
                self.request_id.clone_from(&value);
            }
            if name.starts_with(DESTINATION_ENDPOINT) && name != DESTINATION_ENDPOINT {
                self.client_routing_headers.push(name.clone());
            }
            self.headers.push(&name, value);
        }
        if self.request_id.is_empty() {
            self.request_id = uuid::Uuid::new_v4().to_string();
            self.request_id_generated = true;
        }
        tracing::Span::current().record("x-request-id", self.request_id.as_str());
    }
}

/// Sends the original body chunks back unchanged, the last one marked end-of-stream.
fn replay_chunks(chunks: Vec<Vec<u8>>, out: &mut Vec<ProcessingResponse>) {
    if chunks.is_empty() {
        out.push(messages::request_body(
            Some(messages::streamed_chunk(Vec::new(), true)),
            None,
        ));
        return;
    }
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        out.push(messages::request_body(
            Some(messages::streamed_chunk(chunk, i == last)),
            None,
        ));
    }
}

/// A header's value: `raw_value` when set (Envoy's current form), else `value`.
fn header_text(
    header: &envoy_types::pb::envoy::config::core::v3::HeaderValue,
) -> std::borrow::Cow<'_, str> {
    if header.raw_value.is_empty() {
        std::borrow::Cow::Borrowed(header.value.as_str())
    } else {
        String::from_utf8_lossy(&header.raw_value)
    }
}
