//! Flow control for one stream: after the body is read and before the pick, the request
//! asks the [`FlowController`]; while the pool is saturated it waits ([`Flow::AwaitAdmission`])
//! with its body held (and still counted in the buffer budget), its ext_proc stream open.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse;
use tonic::Status;

use super::request::BodyEnd;
use super::{Flow, StreamState};
use crate::EndpointPicker;
use crate::messages;
use crate::rejection::Rejection;
use epp_core::flowcontrol::{Admission, Dispatch, FlowController, Refusal, Waiting};
use epp_core::telemetry::metrics::Phase;
use epp_trace::Mark;

/// The flow-control step of one request (only with `StreamSettings::flow_control`).
#[derive(Default)]
pub(super) struct AdmissionState {
    /// Asked once per request.
    asked: bool,
    /// While waiting: what to route once let through.
    pending: Option<Pending>,
    waiting: Option<Waiting>,
    /// From dispatch until the pick is made: holds the controller's dispatch slot.
    dispatch: Option<Dispatch>,
    /// How long it waited, once dispatched.
    pub(super) queued: Option<Duration>,
}

/// A request held by flow control.
enum Pending {
    /// Routed on its body: the body and how it ended.
    Body(Vec<u8>, BodyEnd),
    /// Routed at headers time (STREAMED and NONE body modes).
    Headers,
}

/// What [`StreamState::admit`] decided for a request with its body in hand.
pub(super) enum Admitted {
    Now,
    Wait,
    Refused(Refusal),
}

impl StreamState {
    /// Asks flow control whether the request may be routed now (once per request). On
    /// `Wait` the caller hands the body to [`StreamState::hold_for_admission`].
    pub(super) fn admit(&mut self, bytes: usize) -> Admitted {
        let Some(controller) = self.settings.flow_control.clone() else {
            return Admitted::Now;
        };
        if std::mem::replace(&mut self.admission.asked, true) {
            return Admitted::Now;
        }
        match controller.admit_request(&self.headers, bytes) {
            Admission::Now => Admitted::Now,
            Admission::Refused(refusal) => Admitted::Refused(refusal),
            Admission::Wait(waiting) => {
                self.admission.waiting = Some(waiting);
                self.trace_mark(Mark::QueueStart, Instant::now());
                Admitted::Wait
            }
        }
    }

    /// Keeps the body of a request that waits (still counted in the buffer budget).
    pub(super) fn hold_for_admission(
        &mut self,
        body: Vec<u8>,
        end: BodyEnd,
        out: &mut Vec<ProcessingResponse>,
    ) -> Flow {
        self.hold(Pending::Body(body, end), out)
    }

    /// Holds a request routed at headers time (STREAMED or NONE body modes).
    pub(super) fn hold_headers_for_admission(&mut self, out: &mut Vec<ProcessingResponse>) -> Flow {
        self.hold(Pending::Headers, out)
    }

    /// Except in FULL_DUPLEX_STREAMED, the gateway times its wait for this reply
    /// (`message_timeout`, often short): ask it to wait out the request's time to live
    /// (Envoy allows it up to its `max_message_timeout`).
    fn hold(&mut self, pending: Pending, out: &mut Vec<ProcessingResponse>) -> Flow {
        self.admission.pending = Some(pending);
        if self.request_mode() != super::BodyMode::FullDuplexStreamed
            && let Some(controller) = &self.settings.flow_control
        {
            out.push(messages::extend_message_timeout(
                controller.settings().queue.ttl + Duration::from_secs(1),
            ));
        }
        Flow::AwaitAdmission
    }

    /// The flow controller, when flow control is on.
    pub fn flow_controller(&self) -> Option<std::sync::Arc<FlowController>> {
        self.settings.flow_control.clone()
    }

    /// The wait of a request paused by [`Flow::AwaitAdmission`]; the service awaits it
    /// (dropping it, when the client leaves, takes the request out of the queue).
    pub fn take_waiting(&mut self) -> Option<Waiting> {
        self.admission.waiting.take()
    }

    /// Routes (or refuses) the request that waited, with what flow control answered.
    pub fn resume_admitted(
        &mut self,
        picker: &dyn EndpointPicker,
        outcome: Result<Dispatch, Refusal>,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        let Some(pending) = self.admission.pending.take() else {
            return Err(Status::internal("no request waits for flow control"));
        };
        self.trace_mark(Mark::QueueEnd, Instant::now());
        let dispatch = match outcome {
            Ok(dispatch) => dispatch,
            Err(refusal) => {
                drop(pending);
                return self.refuse(refusal, out);
            }
        };
        self.metrics()
            .phase(Phase::Queue, dispatch.waited.as_secs_f64());
        self.admission.queued = Some(dispatch.waited);
        self.admission.dispatch = Some(dispatch);
        let flow = match pending {
            Pending::Body(body, end) => self.route_body(picker, body, end, Instant::now(), out),
            Pending::Headers => self.route_without_body(picker, out),
        };
        // Routed (its in-flight count raised) or refused: the slot goes back.
        self.admission.dispatch = None;
        let flow = flow?;
        if flow == Flow::Continue && self.tokens.trailers_follow {
            out.push(messages::request_trailers());
        }
        Ok(flow)
    }

    /// Answers a request flow control refused: 429, or 503 with an empty pool.
    pub(super) fn refuse(
        &mut self,
        refusal: Refusal,
        out: &mut Vec<ProcessingResponse>,
    ) -> Result<Flow, Status> {
        self.drop_body();
        let rejection = Rejection::flow_control(refusal);
        self.record_error(rejection.code);
        self.trace_status(rejection.status);
        tracing::info!({ "x-request-id" = self.request_id(), reason = refusal.reason.label(), status = rejection.status }, "request not routed: flow control");
        out.push(messages::rejected(rejection));
        Ok(Flow::Close)
    }
}
