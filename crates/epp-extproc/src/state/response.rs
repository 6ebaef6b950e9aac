//! The response side: headers, body pass-through, trailers, and usage.

use envoy_types::pb::envoy::service::ext_proc::v3::{
    CommonResponse, HeaderMutation, HttpBody, HttpHeaders, ProcessingResponse,
};
use std::time::Instant;

use tonic::Status;

use super::{BodyMode, Flow, RequestPhase, ResponsePhase, StreamState, header_text};
use crate::messages;
use crate::usage::{Usage, UsageScanner};
use epp_core::telemetry::metrics::ErrorCode;

impl StreamState {
    pub(super) fn on_response_headers(
        &mut self,
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
        let all = || headers.headers.iter().flat_map(|map| &map.headers);
        let streaming = all().any(|h| {
            h.key.eq_ignore_ascii_case("content-type")
                && header_text(h).contains("text/event-stream")
        });
        // v1.0.1 looks for a `status` key, which Envoy never sends; `:status` is the real one.
        if all().any(|h| h.key == ":status" && header_text(h).starts_with('5')) {
            self.record_error(ErrorCode::ModelServerError);
        }
        self.note_response_status(&headers);
        if self.trace.is_some()
            && let Some(code) = all()
                .find(|h| h.key == ":status")
                .and_then(|h| header_text(h).trim().parse().ok())
        {
            self.trace_status(code);
        }
        self.usage = Some(UsageScanner::new(streaming));
        self.response_phase = ResponsePhase::Body;
        out.push(messages::response_headers(Some(CommonResponse {
            header_mutation: Some(HeaderMutation {
                set_headers: vec![messages::set_header(messages::RESPONSE_MARKER, "true")],
                remove_headers: Vec::new(),
            }),
            ..Default::default()
        })));
        if headers.end_of_stream {
            self.finish_response();
        }
        Ok(Flow::Continue)
    }

    pub(super) fn on_response_body(
        &mut self,
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
        self.telemetry.response_bytes += body.body.len();
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
            self.finish_response();
        }
        Ok(Flow::Continue)
    }

    pub(super) fn on_response_trailers(
        &mut self,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        if self.response_phase == ResponsePhase::AwaitingHeaders {
            return Err(Status::failed_precondition(
                "response trailers received before response headers",
            ));
        }
        self.finish_response();
        out.push(messages::response_trailers());
        Ok(Flow::Continue)
    }

    /// The gateway ended the stream cleanly. When this stream asked for no response body
    /// (`--response-body-mode-override=none`), that is the only end of the response the
    /// EPP sees, so the request's duration and size are recorded now.
    pub fn on_gateway_closed(&mut self) {
        if self.response_override == Some(BodyMode::None)
            && self.response_phase == ResponsePhase::Body
        {
            self.finish_response();
        }
    }

    fn finish_response(&mut self) {
        if self.response_phase == ResponsePhase::Done {
            return;
        }
        self.response_phase = ResponsePhase::Done;
        self.trace_mark(epp_trace::Mark::ResponseEnd, Instant::now());
        let usage: Option<Usage> = self.usage.as_mut().and_then(UsageScanner::finish);
        if let (Some(model), Some(received)) = (&self.telemetry.model, self.telemetry.received_at) {
            let seconds = Instant::now()
                .saturating_duration_since(received)
                .as_secs_f64();
            model.request_duration(seconds);
            model.response_size(self.telemetry.response_bytes);
            if let Some(usage) = usage {
                model.tokens(usage.prompt_tokens, usage.completion_tokens);
                model.normalized_time_per_output_token(seconds, usage.completion_tokens);
            }
        }
        if let (Some(usage), Some(prediction)) = (
            &usage,
            self.decision
                .as_ref()
                .and_then(|d| d.cache_prediction.as_ref()),
        ) && let Some(cached) = usage.cached_tokens
        {
            prediction.observe(cached, usage.prompt_tokens);
        }
        self.finish_log_entry(usage.as_ref());
    }
}
