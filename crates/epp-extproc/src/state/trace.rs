//! The stream's part in request tracing: hooks the request and response sides call at
//! their phase boundaries. With tracing off (or the request not sampled) each hook is one
//! `Option` check; the spans are built when the stream ends.

use std::time::Instant;

use epp_core::director::{Decision, PickError};
use epp_trace::Mark;

use super::{OBJECTIVE_HEADER, StreamState};

/// The header that carries the trace context to the model server.
pub(super) const TRACEPARENT_HEADER: &str = "traceparent";

impl StreamState {
    /// Starts the request's trace once its headers are read (the parent is their
    /// `traceparent`).
    pub(super) fn start_trace(&mut self) {
        let (Some(tracer), Some(received)) = (&self.settings.tracer, self.telemetry.received_at)
        else {
            return;
        };
        self.trace = tracer.start(received, &self.headers).map(Box::new);
    }

    pub(super) fn trace_mark(&mut self, mark: Mark, at: Instant) {
        if let Some(trace) = &mut self.trace {
            trace.mark(mark, at);
        }
    }

    pub(super) fn trace_mark_once(&mut self, mark: Mark, at: Instant) {
        if let Some(trace) = &mut self.trace {
            trace.mark_once(mark, at);
        }
    }

    /// Marks the routing reply as sent (the start of `epp.respond`).
    pub(super) fn trace_routed(&mut self) {
        if let Some(trace) = &mut self.trace {
            trace.mark(Mark::Routed, Instant::now());
        }
    }

    /// The pick and the schedule span's bounds.
    pub(super) fn trace_schedule(
        &mut self,
        started: Instant,
        ended: Instant,
        picked: Result<&Decision, &PickError>,
    ) {
        let Some(trace) = &mut self.trace else {
            return;
        };
        trace.mark(Mark::ScheduleStart, started);
        trace.mark(Mark::ScheduleEnd, ended);
        match picked {
            Ok(decision) => trace.scheduled(decision),
            Err(error) => trace.not_scheduled(error),
        }
    }

    /// The HTTP status the client gets.
    pub(super) fn trace_status(&mut self, code: u16) {
        if let Some(trace) = &mut self.trace {
            trace.status(code);
        }
    }

    /// The `traceparent` to set on the request to the model server, so its span is a
    /// child of this request's span.
    pub(super) fn trace_parent_header(&self) -> Option<String> {
        self.trace.as_ref().map(|trace| trace.traceparent())
    }

    /// Ends the trace: names the request and builds the spans.
    fn finish_trace(&mut self) {
        let Some(mut trace) = self.trace.take() else {
            return;
        };
        trace.describe(
            &self.request_id,
            &self.model,
            &self.target_model,
            self.headers.get(OBJECTIVE_HEADER),
        );
        trace.finish(Instant::now());
    }
}

impl Drop for StreamState {
    /// A stream ends here whatever the reason, so its trace does too.
    fn drop(&mut self) {
        self.finish_trace();
    }
}
