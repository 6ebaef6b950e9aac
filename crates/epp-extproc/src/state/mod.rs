//! The per-stream state machine: one HTTP exchange, message by message, for every body
//! mode. Pure: no I/O; the service feeds it messages and sends what it returns.
//!
//! `request.rs` handles the request side (routing), `response.rs` the response side.

mod admission;
mod request;
mod request_log;
mod response;
#[cfg(test)]
mod token_tests;
mod trace;

use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, Metadata};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    ProcessingRequest, ProcessingResponse, processing_request,
};
use envoy_types::pb::google::protobuf::value;
use tonic::Status;

use crate::EndpointPicker;
use crate::budget::{BudgetLease, BufferBudget, DEFAULT_BUFFER_BUDGET};
use crate::messages::{DESTINATION_ENDPOINT, SUBSET_KEY, SUBSET_NAMESPACE};
use crate::request_log::{RequestLog, RequestLogEntry};
use crate::usage::UsageScanner;
use epp_core::director::Decision;
use epp_core::request::RequestHeaders;
use epp_core::telemetry::metrics::{
    EppMetrics, ErrorCode, MetricsLimits, ModelMetrics, RunningGuard, StreamGuard,
};
use epp_core::tokens::{TokenSource, Tokens};

pub use epp_core::request::{FAIRNESS_HEADER, OBJECTIVE_HEADER};
/// Header replacing the body's model.
pub const MODEL_REWRITE_HEADER: &str = "x-gateway-model-name-rewrite";
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

    fn to_proto(self) -> i32 {
        match self {
            BodyMode::None => 0,
            BodyMode::Streamed => 1,
            BodyMode::Buffered => 2,
            BodyMode::BufferedPartial => 3,
            BodyMode::FullDuplexStreamed => 4,
        }
    }

    /// Whether the gateway holds the whole body before sending it on.
    fn is_buffered(self) -> bool {
        matches!(self, BodyMode::Buffered | BodyMode::BufferedPartial)
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

/// What the EPP asks of a gateway that buffers responses (`--response-body-mode-override`).
///
/// In BUFFERED mode Envoy holds the whole response for the EPP: a streamed completion
/// reaches the client in one piece at the end, and one longer than Envoy's buffer limit
/// fails with 500. Where the gateway allows it (`allow_mode_override: true`, Envoy AI
/// Gateway's `aigateway.envoyproxy.io/allow-mode-override: "true"`), the EPP's reply to the
/// request headers carries a `mode_override` changing the response body mode; the request
/// body stays BUFFERED. A gateway that does not allow it ignores the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBodyOverride {
    /// Response body STREAMED: chunks pass as they come, and the EPP still reads them for
    /// usage (tokens, response size, duration to the last chunk).
    Streamed,
    /// Response body NONE: the EPP never sees it; a request's duration ends when the
    /// gateway closes the stream, and its tokens are not counted.
    None,
    /// Never override: the gateway's configured modes apply (v1.0.1 behaviour).
    Off,
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
    /// Where request, response and phase metrics go.
    pub metrics: Arc<EppMetrics>,
    /// Request-body bytes all streams may buffer together; past it a request gets 503.
    pub buffer_budget: Arc<BufferBudget>,
    /// `--request-log-file`: where routed requests are logged for replay (off: `None`).
    pub request_log: Option<Arc<RequestLog>>,
    /// Where token ids come from when a scorer needs them (`None`: no scorer does).
    pub tokens: Option<TokenSettings>,
    /// The response body mode asked of a gateway that buffers responses.
    pub response_body_override: ResponseBodyOverride,
    /// Starts a trace per sampled request (`None`: tracing off).
    pub tracer: Option<epp_trace::RequestTracer>,
    /// Holds requests while the pool is saturated (`None`: no `flowControl` section).
    pub flow_control: Option<Arc<epp_core::flowcontrol::FlowController>>,
}

/// The token source of a scorer that keys by token blocks, and how long a request may wait.
#[derive(Clone)]
pub struct TokenSettings {
    pub source: Arc<dyn TokenSource>,
    /// After this the request is routed without tokens (never failed).
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSettings")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for StreamSettings {
    fn default() -> Self {
        let metrics = EppMetrics::new(MetricsLimits::default());
        StreamSettings {
            max_request_body_bytes: 64 << 20,
            fallback_body_mode: BodyMode::FullDuplexStreamed,
            log_bodies: false,
            buffer_budget: BufferBudget::new(DEFAULT_BUFFER_BUDGET, Arc::clone(&metrics)),
            metrics,
            request_log: None,
            tokens: None,
            response_body_override: ResponseBodyOverride::Streamed,
            tracer: None,
            flow_control: None,
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
    /// Send the replies, fetch the prompt's tokens ([`StreamState::tokenize_request`]), then
    /// call [`StreamState::resume_with_tokens`].
    AwaitTokens,
    /// Send the replies, await [`StreamState::take_waiting`] (flow control holds the
    /// request while the pool is saturated), then call [`StreamState::resume_admitted`].
    AwaitAdmission,
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
    /// The response body mode this stream asked the gateway for, if it sent an override.
    response_override: Option<BodyMode>,
    request_phase: RequestPhase,
    response_phase: ResponsePhase,
    headers: RequestHeaders,
    request_id: String,
    request_id_generated: bool,
    /// Client-sent `x-gateway-destination-endpoint*` headers other than the one we set.
    client_routing_headers: Vec<String>,
    subset: Option<Vec<String>>,
    /// The request body so far, one growing buffer (chunks are appended, never kept).
    body: Vec<u8>,
    /// This stream's share of the buffer budget: `body.len()` bytes until the body is
    /// handed on; given back when the stream ends for any reason.
    body_lease: BudgetLease,
    decision: Option<Decision>,
    model: String,
    target_model: String,
    usage: Option<UsageScanner>,
    /// The request-log line, from the decision until the response ends (with the log on).
    log_entry: Option<Box<RequestLogEntry>>,
    telemetry: StreamTelemetry,
    tokens: TokenState,
    admission: admission::AdmissionState,
    /// The request's trace, when tracing is on and the request sampled.
    trace: Option<Box<epp_trace::RequestTrace>>,
}

/// The token step of one request (only with [`StreamSettings::tokens`]).
#[derive(Default)]
struct TokenState {
    /// Asked once per request, whatever the answer.
    asked: bool,
    /// The body lent to the source, and how it ended, while the stream waits.
    pending: Option<(bytes::Bytes, request::BodyEnd)>,
    /// The body ended with trailers, whose reply must follow the routing replies.
    trailers_follow: bool,
    tokens: Option<Tokens>,
}

/// What one stream records into the metrics, and when its phases started.
struct StreamTelemetry {
    /// Request headers received (the start of `inference_model_request_duration_seconds`).
    received_at: Option<Instant>,
    /// First request-body chunk received.
    body_started_at: Option<Instant>,
    /// The (model, target) handle, once the body was parsed and routed.
    model: Option<ModelMetrics>,
    /// Raises `inference_model_running_requests` while the stream lives.
    _running: Option<RunningGuard>,
    /// Raises `inference_extension_ext_proc_streams` while the stream lives.
    _stream: StreamGuard,
    response_bytes: usize,
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
            request_mode: None,
            response_mode: None,
            response_override: None,
            request_phase: RequestPhase::AwaitingHeaders,
            response_phase: ResponsePhase::AwaitingHeaders,
            headers: RequestHeaders::new(),
            request_id: String::new(),
            request_id_generated: false,
            client_routing_headers: Vec::new(),
            subset: None,
            body: Vec::new(),
            body_lease: settings.buffer_budget.lease(),
            decision: None,
            model: String::new(),
            target_model: String::new(),
            usage: None,
            log_entry: None,
            telemetry: StreamTelemetry {
                received_at: None,
                body_started_at: None,
                model: None,
                _running: None,
                _stream: settings.metrics.stream_opened(),
                response_bytes: 0,
            },
            tokens: TokenState::default(),
            admission: admission::AdmissionState::default(),
            trace: None,
            settings,
        }
    }

    /// The token source, when a scorer needs tokens.
    pub fn token_settings(&self) -> Option<&TokenSettings> {
        self.settings.tokens.as_ref()
    }

    fn metrics(&self) -> &EppMetrics {
        &self.settings.metrics
    }

    /// Counts a failed request under whatever model is known so far (none before the body
    /// was parsed, as upstream).
    fn record_error(&self, code: ErrorCode) {
        match &self.telemetry.model {
            Some(model) => model.request_error(code),
            None => self
                .metrics()
                .model(&self.model, &self.target_model)
                .request_error(code),
        }
    }

    /// `x-request-id` once the request headers were seen.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Whether the whole response has been seen (after it, a reset is how Envoy closes).
    pub fn response_finished(&self) -> bool {
        self.response_phase == ResponsePhase::Done
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
            processing_request::Request::ResponseHeaders(h) => self.on_response_headers(h, out),
            processing_request::Request::ResponseBody(b) => self.on_response_body(b, out),
            processing_request::Request::ResponseTrailers(_) => self.on_response_trailers(out),
        }
    }

    /// An inbound message that could not be read: over the decode limit
    /// (`--max-request-body-bytes` + 1 MiB) or not a `ProcessingRequest`. Returns the
    /// status that ends the stream.
    ///
    /// Never OK: a gateway may read an OK end as "processing done" and forward the request
    /// unrouted, bypassing fail-closed. A too-large message first gets a 413 while the
    /// request is not routed yet (an immediate response is valid then), as a large body
    /// within the decode limit does.
    pub fn on_unreadable_message(
        &mut self,
        error: &Status,
        out: &mut Vec<ProcessingResponse>,
    ) -> Status {
        if error.code() != tonic::Code::OutOfRange {
            return Status::invalid_argument(format!(
                "cannot decode the ext_proc message: {}",
                error.message()
            ));
        }
        if self.request_phase != RequestPhase::Done {
            self.request_phase = RequestPhase::Done;
            self.record_error(ErrorCode::PayloadTooLarge);
            self.trace_status(413);
            out.push(crate::messages::payload_too_large(
                self.settings.max_request_body_bytes,
            ));
        }
        Status::resource_exhausted(format!("ext_proc message too large: {}", error.message()))
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
            Some(value::Kind::ListValue(list)) => {
                // Bounded: a client-sized list must not cost more than a big pool does.
                let limit = epp_core::director::MAX_SUBSET_ENTRIES;
                if list.values.len() > limit {
                    tracing::debug!({ "x-request-id" = self.request_id(), entries = list.values.len(), limit }, "subset hint cut to its limit");
                }
                Some(
                    list.values
                        .iter()
                        .filter_map(|v| match &v.kind {
                            Some(value::Kind::StringValue(s)) => Some(s.clone()),
                            _ => None,
                        })
                        .take(limit)
                        .collect(),
                )
            }
            // v1.0.1: a key that is not a list means "no hint".
            _ => None,
        };
    }

    fn read_headers(&mut self, map: HeaderMap) {
        self.telemetry.received_at = Some(Instant::now());
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
