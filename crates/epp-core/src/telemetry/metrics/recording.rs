//! Hot-path handles: the metrics of one (model, target model) pair, the guards that keep
//! gauges of running requests and open streams, and the bounded label enums.

use std::sync::Arc;

use crate::telemetry::metrics::definitions::{
    INPUT_TOKEN_BUCKETS, NTPOT_BUCKETS, OUTPUT_TOKEN_BUCKETS, REQUEST_DURATION_BUCKETS,
    REQUEST_SIZE_BUCKETS, RESPONSE_SIZE_BUCKETS,
};
use crate::telemetry::metrics::primitives::{Counter, Histogram, IntGauge};

/// `error_code` of `inference_model_request_error_total` (v1.0.1 `pkg/epp/util/error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    BadConfiguration,
    Internal,
    ServiceUnavailable,
    InferencePoolResourceExhausted,
    ModelServerError,
    /// Request body over `--max-request-body-bytes` (413). Not in v1.0.1, which has no limit.
    PayloadTooLarge,
    Unknown,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::BadRequest,
        ErrorCode::BadConfiguration,
        ErrorCode::Internal,
        ErrorCode::ServiceUnavailable,
        ErrorCode::InferencePoolResourceExhausted,
        ErrorCode::ModelServerError,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Unknown,
    ];

    /// The label value, spelled as upstream's constants.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BadRequest",
            ErrorCode::BadConfiguration => "BadConfiguration",
            ErrorCode::Internal => "Internal",
            ErrorCode::ServiceUnavailable => "ServiceUnavailable",
            ErrorCode::InferencePoolResourceExhausted => "InferencePoolResourceExhausted",
            ErrorCode::ModelServerError => "ModelServerError",
            ErrorCode::PayloadTooLarge => "PayloadTooLarge",
            ErrorCode::Unknown => "Unknown",
        }
    }
}

/// `phase` of `inference_extension_request_phase_duration_seconds`: where the EPP's share of
/// a request's latency goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// From the first request-body chunk to the end of the body: time spent waiting for the
    /// gateway to stream the body (dominant for long prompts).
    BodyWait,
    /// Parsing the body (model, prompt).
    Parse,
    /// Waiting for the prompt's token ids (only with a scorer that needs them).
    Tokenize,
    /// Waiting in flow control while the pool was saturated (only requests that waited).
    Queue,
    /// Admission and the scheduling cycle.
    Schedule,
    /// Building and sending the routing reply.
    Respond,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::BodyWait,
        Phase::Parse,
        Phase::Tokenize,
        Phase::Queue,
        Phase::Schedule,
        Phase::Respond,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::BodyWait => "body_wait",
            Phase::Parse => "parse",
            Phase::Tokenize => "tokenize",
            Phase::Queue => "queue",
            Phase::Schedule => "schedule",
            Phase::Respond => "respond",
        }
    }
}

/// Every per-(model, target model) metric of one label pair.
#[derive(Debug)]
pub struct PairMetrics {
    pub(crate) requests: Counter,
    pub(crate) errors: [Counter; ErrorCode::ALL.len()],
    pub(crate) duration: Histogram,
    pub(crate) request_sizes: Histogram,
    pub(crate) response_sizes: Histogram,
    pub(crate) input_tokens: Histogram,
    pub(crate) output_tokens: Histogram,
    pub(crate) ntpot: Histogram,
}

impl PairMetrics {
    pub(crate) fn new() -> Self {
        PairMetrics {
            requests: Counter::default(),
            errors: Default::default(),
            duration: Histogram::new(REQUEST_DURATION_BUCKETS),
            request_sizes: Histogram::new(REQUEST_SIZE_BUCKETS),
            response_sizes: Histogram::new(RESPONSE_SIZE_BUCKETS),
            input_tokens: Histogram::new(INPUT_TOKEN_BUCKETS),
            output_tokens: Histogram::new(OUTPUT_TOKEN_BUCKETS),
            ntpot: Histogram::new(NTPOT_BUCKETS),
        }
    }

    /// `inference_model_request_total` +1 (at request-body end, once routed).
    pub fn request_total(&self) {
        self.requests.inc();
    }

    /// `inference_model_request_error_total{error_code}` +1 (once per failed request).
    pub fn request_error(&self, code: ErrorCode) {
        self.errors[code as usize].inc();
    }

    /// `inference_model_request_duration_seconds`: request received to response complete,
    /// in seconds; values `<= 0` are dropped, as v1.0.1 `RecordRequestLatencies` does.
    pub fn request_duration(&self, seconds: f64) {
        if seconds > 0.0 {
            self.duration.observe(seconds);
        }
    }

    /// `inference_model_request_sizes`: request body size in bytes.
    pub fn request_size(&self, bytes: usize) {
        self.request_sizes.observe(bytes as f64);
    }

    /// `inference_model_response_sizes`: response body size in bytes.
    pub fn response_size(&self, bytes: usize) {
        self.response_sizes.observe(bytes as f64);
    }

    /// `inference_model_input_tokens` / `_output_tokens` from the response usage; counts
    /// of 0 are not observed, as v1.0.1 `RecordInputTokens`/`RecordOutputTokens`.
    pub fn tokens(&self, input: u64, output: u64) {
        if input > 0 {
            self.input_tokens.observe(input as f64);
        }
        if output > 0 {
            self.output_tokens.observe(output as f64);
        }
    }

    /// `inference_model_normalized_time_per_output_token_seconds`: latency / output
    /// tokens when both are positive (v1.0.1 registers it but never records it).
    pub fn normalized_time_per_output_token(&self, seconds: f64, output_tokens: u64) {
        if seconds > 0.0 && output_tokens > 0 {
            self.ntpot.observe(seconds / output_tokens as f64);
        }
    }
}

/// The metrics of one (model, target model) pair, resolved once per request so later
/// recordings skip the label lookup; record through [`PairMetrics`]' methods. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct ModelMetrics(pub(crate) Arc<PairMetrics>);

impl std::ops::Deref for ModelMetrics {
    type Target = PairMetrics;

    fn deref(&self) -> &PairMetrics {
        &self.0
    }
}

/// Keeps `inference_model_running_requests{model_name}` raised; lowers it when dropped.
#[derive(Debug)]
#[must_use = "the gauge drops back when the guard is dropped"]
pub struct RunningGuard(pub(crate) Option<Arc<IntGauge>>);

impl RunningGuard {
    /// A guard that records nothing (for a request without a model).
    pub fn none() -> Self {
        RunningGuard(None)
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Some(gauge) = &self.0 {
            gauge.dec();
        }
    }
}

/// Keeps `inference_extension_ext_proc_streams` raised; lowers it when dropped.
#[derive(Debug)]
#[must_use = "the gauge drops back when the guard is dropped"]
pub struct StreamGuard(pub(crate) Arc<IntGauge>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
