//! The request side: headers, body accumulation, routing, and rejections.

use envoy_types::pb::envoy::service::ext_proc::v3::{
    CommonResponse, HttpBody, HttpHeaders, ProcessingResponse,
};
use std::time::Instant;

use tonic::Status;

use super::{
    BodyMode, Flow, MODEL_REWRITE_HEADER, OBJECTIVE_HEADER, REQUEST_ID_HEADER, RequestPhase,
    StreamState,
};
use crate::director::{Decision, PickError, RoutingRequest};
use crate::extproc::EndpointPicker;
use crate::extproc::messages::{self, DESTINATION_ENDPOINT};
use crate::request::{BodyError, parse_body, rewrite_model};
use crate::telemetry::metrics::{ErrorCode, Phase};

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
        self.body_len += body.body.len();
        if self.body_len > self.settings.max_request_body_bytes {
            let limit = self.settings.max_request_body_bytes;
            self.body_chunks.clear();
            self.record_error(ErrorCode::PayloadTooLarge);
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
        let parse_started = Instant::now();
        if let Some(started) = self.telemetry.body_started_at {
            let waited = parse_started.saturating_duration_since(started);
            self.metrics().phase(Phase::BodyWait, waited.as_secs_f64());
        }
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
        self.target_model = self.rewrite_target().unwrap_or(&parsed.model).to_owned();
        let schedule_started = Instant::now();
        self.metrics().phase(
            Phase::Parse,
            (schedule_started - parse_started).as_secs_f64(),
        );
        let picked = self.pick(picker, parsed.prompt.as_deref(), false);
        let respond_started = Instant::now();
        self.metrics().phase(
            Phase::Schedule,
            (respond_started - schedule_started).as_secs_f64(),
        );
        let decision = match picked {
            Ok(decision) => decision,
            Err(e) => return self.fail_pick(e, out),
        };
        let rewritten = (self.target_model != parsed.model)
            .then(|| rewrite_model(body, &parsed, &self.target_model));
        let sent_len = rewritten.as_ref().map_or(body.len(), Vec::len);
        self.queue_routing_replies(&decision, body.len(), chunks, rewritten, out);
        self.decision = Some(decision);
        let model = self.metrics().model(&self.model, &self.target_model);
        model.request_total();
        model.request_size(sent_len);
        self.telemetry.model = Some(model);
        self.telemetry._running = Some(self.metrics().running_requests_inc(&self.model));
        self.metrics()
            .phase(Phase::Respond, respond_started.elapsed().as_secs_f64());
        Ok(Flow::Continue)
    }

    /// FULL_DUPLEX_STREAMED: the held headers reply (destination, length, metadata), then
    /// the body, replayed or rewritten. BUFFERED: one body reply carrying all of it.
    fn queue_routing_replies(
        &self,
        decision: &Decision,
        body_len: usize,
        chunks: Vec<Vec<u8>>,
        rewritten: Option<Vec<u8>>,
        out: &mut Vec<ProcessingResponse>,
    ) {
        let metadata = Some(messages::destination_metadata(&decision.destination));
        if self.request_mode() != BodyMode::FullDuplexStreamed {
            let length = rewritten.as_ref().map(Vec::len);
            let mut common = self.routing_common(decision, length);
            common.body_mutation = rewritten.map(messages::replaced_body);
            out.push(messages::request_body(Some(common), metadata));
            return;
        }
        let length = rewritten.as_ref().map_or(body_len, Vec::len);
        out.push(messages::request_headers(
            Some(self.routing_common(decision, Some(length))),
            metadata,
        ));
        match rewritten {
            Some(new_body) => out.extend(
                messages::split_streamed(&new_body).map(|c| messages::request_body(Some(c), None)),
            ),
            None => replay_chunks(chunks, out),
        }
    }

    /// STREAMED / NONE request bodies: pick at headers time, by load alone.
    fn route_without_body(
        &mut self,
        picker: &dyn EndpointPicker,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        self.target_model = self.rewrite_target().unwrap_or_default().to_owned();
        let decision = match self.pick(picker, None, true) {
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
            headers: &self.headers,
            objective: self.headers.get(OBJECTIVE_HEADER),
            subset: self.subset.as_deref(),
            at_headers,
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
        messages::routing_common(set, self.client_routing_headers.clone())
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
            tracing::debug!({ "x-request-id" = self.request_id(), error = %detail }, "cannot parse the request body");
            if self.settings.log_bodies {
                message = format!("{message}: {}", String::from_utf8_lossy(body));
            }
        }
        self.record_error(ErrorCode::BadRequest);
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
                self.record_error(ErrorCode::Unknown);
                return Err(Status::unavailable(format!(
                    "failed to handle request: {error}"
                )));
            }
            PickError::NoEndpoints | PickError::EmptyResult => (500, ErrorCode::Internal),
            PickError::NoCandidates => (503, ErrorCode::ServiceUnavailable),
            PickError::Shed | PickError::Scheduling(_) => {
                (429, ErrorCode::InferencePoolResourceExhausted)
            }
        };
        self.record_error(code);
        let code = code.as_str();
        tracing::info!({ "x-request-id" = self.request_id(), reason = %error, status }, "request not routed");
        out.push(messages::immediate(
            status,
            format!("inference gateway: {code} - {error}"),
        ));
        Ok(Flow::Close)
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
