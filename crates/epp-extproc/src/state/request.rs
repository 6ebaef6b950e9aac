//! The request side: headers, body accumulation, routing, and rejections.

use envoy_types::pb::envoy::service::ext_proc::v3::{
    CommonResponse, HttpBody, HttpHeaders, ProcessingResponse,
};
use std::borrow::Cow;
use std::ops::Range;
use std::time::Instant;

use tonic::Status;

use super::admission::Admitted;
use super::trace::TRACEPARENT_HEADER;
use super::{
    BodyMode, Flow, MODEL_REWRITE_HEADER, OBJECTIVE_HEADER, REQUEST_ID_HEADER, RequestPhase,
    ResponseBodyOverride, StreamState,
};
use crate::EndpointPicker;
use crate::Rejection;
use crate::budget::BudgetExhausted;
use crate::messages::{self, BODY_CHUNK_LIMIT, DESTINATION_ENDPOINT};
use epp_core::director::{Decision, PickError, RoutingRequest};
use epp_core::request::{BodyError, parse_body, parse_body_prefix, replace_model_value};
use epp_core::telemetry::metrics::{ErrorCode, Phase};
use epp_core::tokens::{TokenizeRequest, Tokens};
use epp_trace::Mark;

impl StreamState {
    pub(super) fn on_request_headers(
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
        self.start_trace();
        self.request_phase = RequestPhase::Body;
        if headers.end_of_stream {
            // v1.0.1: a bodyless request (GET) goes to a random endpoint.
            self.request_phase = RequestPhase::Done;
            let started = Instant::now();
            let picked = picker.route_bodyless(self.subset.as_deref());
            if self.trace.is_some() {
                self.trace_schedule(started, Instant::now(), picked.as_ref());
            }
            let decision = match picked {
                Ok(decision) => decision,
                Err(e) => return self.fail_pick(e, out),
            };
            let mut reply = messages::request_headers(
                Some(self.routing_common(&decision, None)),
                Some(messages::destination_metadata(&decision.destination)),
            );
            reply.mode_override = self.response_mode_override();
            out.push(reply);
            self.begin_log_entry(&decision, None);
            self.decision = Some(decision);
            self.trace_routed();
            return Ok(Flow::Continue);
        }
        let mode = self.request_mode();
        if !mode.routes_on_body() {
            return self.route_without_body(picker, out);
        }
        if mode != BodyMode::FullDuplexStreamed {
            // BUFFERED: the gateway waits for this reply before sending the body; the
            // destination rides on the body reply.
            let mut reply = messages::request_headers(None, None);
            reply.mode_override = self.response_mode_override();
            out.push(reply);
        }
        Ok(Flow::Continue)
    }

    /// The `mode_override` for the request-headers reply: only when the gateway buffers
    /// both bodies (Envoy AI Gateway's `buffered` mode) and the override is on. The
    /// request body keeps its mode, since the gateway sends it next.
    fn response_mode_override(
        &mut self,
    ) -> Option<envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode>
    {
        let (request, response) = (self.request_mode(), self.response_mode());
        if !(request.is_buffered() && response.is_buffered()) {
            return None;
        }
        let wanted = match self.settings.response_body_override {
            ResponseBodyOverride::Streamed => BodyMode::Streamed,
            ResponseBodyOverride::None => BodyMode::None,
            ResponseBodyOverride::Off => return None,
        };
        self.response_override = Some(wanted);
        Some(messages::body_mode_override(
            request.to_proto(),
            wanted.to_proto(),
        ))
    }

    pub(super) fn on_request_body(
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
        if self.telemetry.body_started_at.is_none() {
            self.telemetry.body_started_at = Some(Instant::now());
        }
        if self.body.len().saturating_add(body.body.len()) > self.settings.max_request_body_bytes {
            let limit = self.settings.max_request_body_bytes;
            self.drop_body();
            self.record_error(ErrorCode::PayloadTooLarge);
            self.trace_status(413);
            out.push(messages::payload_too_large(limit));
            return Ok(Flow::Close);
        }
        if let Err(exhausted) = self.body_lease.grow(body.body.len()) {
            return self.fail_budget(exhausted, out);
        }
        self.append_body(body.body);
        let end = match (self.request_mode(), body.end_of_stream) {
            (_, true) => BodyEnd::EndOfStream,
            (BodyMode::FullDuplexStreamed, false) => return Ok(Flow::Continue),
            // The gateway's buffer filled up before the body ended.
            (BodyMode::BufferedPartial, false) => BodyEnd::Cut,
            // BUFFERED: the whole body, trailers follow.
            (_, false) => BodyEnd::Trailers,
        };
        self.complete_request_body(picker, out, end)
    }

    /// Appends a chunk to the body: the first one becomes the buffer (a BUFFERED body,
    /// one message, is never copied), later ones are copied into it once.
    fn append_body(&mut self, chunk: Vec<u8>) {
        if self.body.is_empty() {
            self.body = chunk;
        } else {
            self.body.extend_from_slice(&chunk);
        }
    }

    /// Frees the body and gives its bytes back to the budget.
    pub(super) fn drop_body(&mut self) {
        self.body = Vec::new();
        self.body_lease.release();
    }

    pub(super) fn on_request_trailers(
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
            match self.complete_request_body(picker, out, BodyEnd::Trailers)? {
                Flow::Close => return Ok(Flow::Close),
                paused @ (Flow::AwaitTokens | Flow::AwaitAdmission) => {
                    self.tokens.trailers_follow = true;
                    return Ok(paused);
                }
                Flow::Continue => {}
            }
        }
        self.request_phase = RequestPhase::Done;
        out.push(messages::request_trailers());
        Ok(Flow::Continue)
    }

    /// Reads the body, routes, and queues the routing replies.
    fn complete_request_body(
        &mut self,
        picker: &dyn EndpointPicker,
        out: &mut Vec<ProcessingResponse>,
        end: BodyEnd,
    ) -> Result<Flow, Status> {
        self.request_phase = RequestPhase::Done;
        let parse_started = Instant::now();
        self.trace_mark_once(Mark::BodyComplete, parse_started);
        if let Some(started) = self.telemetry.body_started_at {
            let waited = parse_started.saturating_duration_since(started);
            self.metrics().phase(Phase::BodyWait, waited.as_secs_f64());
        }
        // The lease keeps counting these bytes until they are queued as replies.
        let body = std::mem::take(&mut self.body);
        self.route_body(picker, body, end, parse_started, out)
    }

    /// The body a token source was reading, and how it ended: the request to send to the
    /// source (the body is shared, not copied). `None` unless the last flow was
    /// [`Flow::AwaitTokens`].
    pub fn tokenize_request(&self) -> Option<TokenizeRequest> {
        let (body, _) = self.tokens.pending.as_ref()?;
        Some(TokenizeRequest {
            model: self.target_model.clone(),
            body: body.clone(),
        })
    }

    /// Routes the request held by [`Flow::AwaitTokens`] with what the token source gave
    /// (`None`: nothing in time, or an error: the scorer falls back, the request is routed).
    pub fn resume_with_tokens(
        &mut self,
        picker: &dyn EndpointPicker,
        tokens: Option<Tokens>,
        waited: std::time::Duration,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        let Some((body, end)) = self.tokens.pending.take() else {
            return Err(Status::internal("no request waits for tokens"));
        };
        self.metrics().phase(Phase::Tokenize, waited.as_secs_f64());
        self.trace_mark(Mark::TokenizeEnd, Instant::now());
        self.tokens.tokens = tokens;
        // The source has dropped its handle by now, so this takes the buffer back uncopied.
        let body = Vec::from(body);
        let flow = self.route_body(picker, body, end, Instant::now(), out)?;
        if flow == Flow::Continue && self.tokens.trailers_follow {
            out.push(messages::request_trailers());
        }
        Ok(flow)
    }

    /// Parses the complete body, routes it, and queues the routing replies; or, the first
    /// time when a scorer needs tokens, lends the body to the token source and pauses.
    pub(super) fn route_body(
        &mut self,
        picker: &dyn EndpointPicker,
        body: Vec<u8>,
        end: BodyEnd,
        parse_started: Instant,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        let read = match read_body(&body, end) {
            Ok(read) => read,
            Err(e) => return self.fail_body(e, &body, out),
        };
        let model = read.model.as_ref().map_or("", |(model, _)| model.as_str());
        self.model = model.to_owned();
        self.target_model = self.rewrite_target().unwrap_or(model).to_owned();
        let schedule_started = Instant::now();
        self.metrics().phase(
            Phase::Parse,
            (schedule_started - parse_started).as_secs_f64(),
        );
        self.trace_mark_once(Mark::Parsed, schedule_started);
        if self.settings.tokens.is_some() && !self.tokens.asked && read.prompt.is_some() {
            self.tokens.asked = true;
            drop(read);
            self.tokens.pending = Some((bytes::Bytes::from(body), end));
            self.trace_mark(Mark::TokenizeStart, schedule_started);
            return Ok(Flow::AwaitTokens);
        }
        match self.admit(body.len()) {
            Admitted::Now => {}
            Admitted::Wait => {
                drop(read);
                return Ok(self.hold_for_admission(body, end, out));
            }
            Admitted::Refused(refusal) => return self.refuse(refusal, out),
        }
        let picked = self.pick(picker, read.prompt.as_deref(), false);
        let respond_started = Instant::now();
        self.metrics().phase(
            Phase::Schedule,
            (respond_started - schedule_started).as_secs_f64(),
        );
        if self.trace.is_some() {
            self.trace_schedule(schedule_started, respond_started, picked.as_ref());
        }
        let decision = match picked {
            Ok(decision) => decision,
            Err(e) => return self.fail_pick(e, out),
        };
        let rewritten = match &read.model {
            Some((model, span)) if self.target_model != *model => {
                Some(replace_model_value(&body, span.clone(), &self.target_model))
            }
            _ => None,
        };
        self.begin_log_entry(&decision, read.prompt.as_deref());
        drop(read);
        let sent_len = rewritten.as_ref().map_or(body.len(), Vec::len);
        let buffered_length = self.buffered_content_length(&body, rewritten.as_deref(), end);
        self.queue_routing_replies(&decision, body, rewritten, buffered_length, end, out);
        self.body_lease.release();
        self.decision = Some(decision);
        self.trace_routed();
        let model = self.metrics().model(&self.model, &self.target_model);
        model.request_total();
        model.request_size(sent_len);
        self.telemetry.model = Some(model);
        self.telemetry._running = Some(self.metrics().running_requests_inc(&self.model));
        self.metrics()
            .phase(Phase::Respond, respond_started.elapsed().as_secs_f64());
        Ok(Flow::Continue)
    }

    /// The `content-length` of a BUFFERED reply: set only when the body was rewritten.
    /// For a cut body it is the declared length changed by the rewrite (unknown without
    /// a declared length: the gateway then streams the rest chunked).
    fn buffered_content_length(
        &self,
        body: &[u8],
        rewritten: Option<&[u8]>,
        end: BodyEnd,
    ) -> Option<usize> {
        let new = rewritten?;
        if end != BodyEnd::Cut {
            return Some(new.len());
        }
        let declared: usize = self.headers.get("content-length")?.trim().parse().ok()?;
        declared.checked_add(new.len())?.checked_sub(body.len())
    }

    /// FULL_DUPLEX_STREAMED: the held headers reply (destination, length, metadata), then
    /// the body, replayed or rewritten, in chunks of at most [`BODY_CHUNK_LIMIT`] bytes.
    /// BUFFERED and BUFFERED_PARTIAL: one body reply carrying all of it.
    fn queue_routing_replies(
        &self,
        decision: &Decision,
        body: Vec<u8>,
        rewritten: Option<Vec<u8>>,
        buffered_length: Option<usize>,
        end: BodyEnd,
        out: &mut Vec<ProcessingResponse>,
    ) {
        let metadata = Some(messages::destination_metadata(&decision.destination));
        if self.request_mode() != BodyMode::FullDuplexStreamed {
            let mut common = self.routing_common(decision, buffered_length);
            common.body_mutation = rewritten.map(messages::replaced_body);
            out.push(messages::request_body(Some(common), metadata));
            return;
        }
        let sent = rewritten.unwrap_or(body);
        out.push(messages::request_headers(
            Some(self.routing_common(decision, Some(sent.len()))),
            metadata,
        ));
        // With trailers to come, the trailers reply ends the stream, not the body.
        replay(sent, end == BodyEnd::EndOfStream, out);
    }

    /// STREAMED / NONE request bodies: pick at headers time, by load alone.
    pub(super) fn route_without_body(
        &mut self,
        picker: &dyn EndpointPicker,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        self.target_model = self.rewrite_target().unwrap_or_default().to_owned();
        match self.admit(0) {
            Admitted::Now => {}
            Admitted::Wait => return Ok(self.hold_headers_for_admission(out)),
            Admitted::Refused(refusal) => return self.refuse(refusal, out),
        }
        let started = Instant::now();
        let picked = self.pick(picker, None, true);
        if self.trace.is_some() {
            self.trace_schedule(started, Instant::now(), picked.as_ref());
        }
        let decision = match picked {
            Ok(decision) => decision,
            Err(e) => return self.fail_pick(e, out),
        };
        out.push(messages::request_headers(
            Some(self.routing_common(&decision, None)),
            Some(messages::destination_metadata(&decision.destination)),
        ));
        self.begin_log_entry(&decision, None);
        self.decision = Some(decision);
        self.trace_routed();
        Ok(Flow::Continue)
    }

    /// The model named by `x-gateway-model-name-rewrite`, if set and not empty.
    fn rewrite_target(&self) -> Option<&str> {
        self.headers
            .get(MODEL_REWRITE_HEADER)
            .filter(|m| !m.is_empty())
    }

    /// Asks the picker for endpoints for this request; `at_headers` when the body is not
    /// waited for (STREAMED and NONE body modes).
    fn pick(
        &self,
        picker: &dyn EndpointPicker,
        prompt: Option<&str>,
        at_headers: bool,
    ) -> Result<Decision, PickError> {
        picker.route(&RoutingRequest {
            request_id: &self.request_id,
            model: &self.model,
            target_model: &self.target_model,
            prompt,
            tokens: self.tokens.tokens.as_deref(),
            headers: &self.headers,
            objective: self.headers.get(OBJECTIVE_HEADER),
            subset: self.subset.as_deref(),
            at_headers,
            queued: self.admission.queued,
        })
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
        if let Some(traceparent) = self.trace_parent_header() {
            set.push(messages::set_header(TRACEPARENT_HEADER, &traceparent));
        }
        messages::routing_common(set, self.client_routing_headers.clone())
    }

    // === errors ===

    /// 503 when buffering this body would take all streams past
    /// `--max-buffered-request-bytes`.
    fn fail_budget(
        &mut self,
        exhausted: BudgetExhausted,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        self.drop_body();
        let rejection = Rejection::budget_exhausted();
        self.record_error(rejection.code);
        self.trace_status(rejection.status);
        tracing::warn!({ "x-request-id" = self.request_id(), limit = exhausted.limit }, "request not routed: request body buffer budget exhausted");
        out.push(messages::rejected(rejection));
        Ok(Flow::Close)
    }

    fn fail_body(
        &mut self,
        error: BodyError,
        body: &[u8],
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        let mut message = error.to_string();
        if let BodyError::InvalidJson { detail } = &error {
            tracing::debug!({ "x-request-id" = self.request_id(), error = %detail }, "cannot parse the request body");
            if self.settings.log_bodies {
                message = format!("{message}: {}", String::from_utf8_lossy(body));
            }
        }
        let rejection = Rejection::bad_request(&message);
        self.record_error(rejection.code);
        self.trace_status(rejection.status);
        out.push(messages::rejected(rejection));
        Ok(Flow::Close)
    }

    /// Maps a pick error to what the client gets (v1.0.1 `buildErrResponse`).
    fn fail_pick(
        &mut self,
        error: PickError,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        let Some(rejection) = Rejection::pick(&error) else {
            self.record_error(ErrorCode::Unknown);
            return Err(Status::unavailable(format!(
                "failed to handle request: {error}"
            )));
        };
        self.record_error(rejection.code);
        self.trace_status(rejection.status);
        tracing::info!({ "x-request-id" = self.request_id(), reason = %error, status = rejection.status }, "request not routed");
        out.push(messages::rejected(rejection));
        Ok(Flow::Close)
    }
}

/// How the request body ended: decides how it is read and how its replay ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyEnd {
    /// A body message with `end_of_stream`: the replay ends the stream.
    EndOfStream,
    /// Trailers follow (or are here): the replay must not claim end-of-stream; the
    /// trailers reply ends it.
    Trailers,
    /// BUFFERED_PARTIAL sent the first part of a body larger than the gateway's buffer;
    /// the rest goes straight to the destination. Routed on what the part holds.
    Cut,
}

/// What routing reads from a body: its model (with the byte range of its JSON value,
/// for the rewrite) and prompt. `None` = not in the body (or not in the part that came).
struct ReadBody<'a> {
    model: Option<(String, Range<usize>)>,
    prompt: Option<Cow<'a, str>>,
}

/// A whole body must parse (else 400, as v1.0.1). A cut body is never refused: it is
/// routed on the `model` and prompt fields that ended before the cut, by load alone when
/// the prompt did not (see [`parse_body_prefix`]).
fn read_body(body: &[u8], end: BodyEnd) -> Result<ReadBody<'_>, BodyError> {
    match parse_body(body) {
        Ok(parsed) => Ok(ReadBody {
            model: Some((parsed.model, parsed.model_span)),
            prompt: parsed.prompt,
        }),
        Err(_) if end == BodyEnd::Cut => {
            let prefix = parse_body_prefix(body);
            Ok(ReadBody {
                model: prefix.model,
                prompt: prefix.prompt,
            })
        }
        Err(e) => Err(e),
    }
}

/// Sends `body` back as streamed chunks of at most [`BODY_CHUNK_LIMIT`] bytes, however it
/// arrived (Envoy accepts any chunking in FULL_DUPLEX_STREAMED); the last one is marked
/// end-of-stream when `end_of_stream`. A body that fits one chunk is moved, not copied.
fn replay(body: Vec<u8>, end_of_stream: bool, out: &mut Vec<ProcessingResponse>) {
    if body.len() <= BODY_CHUNK_LIMIT {
        out.push(messages::request_body(
            Some(messages::streamed_chunk(body, end_of_stream)),
            None,
        ));
        return;
    }
    out.extend(
        messages::split_streamed(&body, end_of_stream)
            .map(|chunk| messages::request_body(Some(chunk), None)),
    );
}
