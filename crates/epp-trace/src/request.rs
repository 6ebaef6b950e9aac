//! One request's trace: the request span is started when the request arrives (so its id
//! can be handed to the model server), the phases are recorded as instants, and the child
//! spans are built with those times when the request ends. Nothing here sees a body.

use std::borrow::Cow;
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt as _, Tracer as _,
};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SdkTracer, Span};

use epp_core::director::{Decision, PickError};

/// Span names, as exported.
pub mod names {
    pub const REQUEST: &str = "epp.request";
    pub const BODY_WAIT: &str = "epp.body_wait";
    pub const PARSE: &str = "epp.parse";
    pub const TOKENIZE: &str = "epp.tokenize";
    pub const QUEUE: &str = "epp.queue";
    pub const SCHEDULE: &str = "epp.schedule";
    pub const RESPOND: &str = "epp.respond";
}

/// Attribute keys, as exported.
pub mod keys {
    pub const REQUEST_ID: &str = "epp.request.id";
    pub const MODEL: &str = "gen_ai.request.model";
    pub const TARGET_MODEL: &str = "epp.target_model";
    pub const OBJECTIVE: &str = "epp.objective";
    pub const STATUS_CODE: &str = "http.response.status_code";
    pub const RESULT: &str = "epp.result";
    pub const PROFILES: &str = "epp.profiles";
    pub const PRIMARY_PROFILE: &str = "epp.primary_profile";
    pub const ENDPOINT: &str = "epp.endpoint";
    pub const PICK_REASON: &str = "epp.pick_reason";
    pub const PICK_ERROR: &str = "epp.pick_error";
}

/// The instants a request passes. The request span runs from arrival to the end of the
/// trace; each child span runs between two marks and is left out when either is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The whole body is in (ends `epp.body_wait`, which starts at arrival).
    BodyComplete,
    /// The body is parsed (ends `epp.parse`, which starts at `BodyComplete`).
    Parsed,
    TokenizeStart,
    TokenizeEnd,
    /// Flow control held the request (`epp.queue`, only requests that waited).
    QueueStart,
    QueueEnd,
    ScheduleStart,
    ScheduleEnd,
    /// The routing reply was sent (starts `epp.respond`).
    Routed,
    /// The response ended (ends `epp.respond`; without it, the trace's end does).
    ResponseEnd,
}

impl Mark {
    const COUNT: usize = 10;

    fn index(self) -> usize {
        self as usize
    }
}

/// Header lookup by lower-case name, for the W3C trace context headers.
pub trait HeaderLookup {
    fn header(&self, name: &str) -> Option<&str>;
}

impl HeaderLookup for epp_core::request::RequestHeaders {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

impl HeaderLookup for [(&str, &str)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

impl HeaderLookup for http::HeaderMap {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Adapts a [`HeaderLookup`] to the propagator, which asks for the two trace headers only.
struct TraceHeaders<'a, H: HeaderLookup + ?Sized>(&'a H);

impl<H: HeaderLookup + ?Sized> opentelemetry::propagation::Extractor for TraceHeaders<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.header(key)
    }

    fn keys(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// Starts request traces; cheap to clone.
#[derive(Clone, Debug)]
pub struct RequestTracer {
    tracer: SdkTracer,
}

impl RequestTracer {
    pub(crate) fn new(tracer: SdkTracer) -> Self {
        RequestTracer { tracer }
    }

    /// Starts the trace of a request that arrived at `received`, as a child of the caller's
    /// `traceparent` (and `tracestate`) when the headers carry a valid one. `None` when the
    /// sampler says no: nothing is recorded for the request.
    pub fn start<H: HeaderLookup + ?Sized>(
        &self,
        received: Instant,
        headers: &H,
    ) -> Option<RequestTrace> {
        use opentelemetry::propagation::TextMapPropagator as _;
        let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .extract(&TraceHeaders(headers));
        let clock = Clock::now();
        let root = self.tracer.build_with_context(
            opentelemetry::trace::SpanBuilder::from_name(names::REQUEST)
                .with_kind(SpanKind::Server)
                .with_start_time(clock.wall(received)),
            &parent,
        );
        if !root.span_context().is_sampled() {
            return None;
        }
        Some(RequestTrace {
            tracer: self.tracer.clone(),
            root,
            clock,
            received,
            marks: [None; Mark::COUNT],
            schedule: Vec::new(),
            schedule_failed: false,
            status: None,
            routed: false,
        })
    }
}

/// Maps monotonic instants to wall-clock times (span times are wall-clock).
#[derive(Debug, Clone, Copy)]
struct Clock {
    wall: SystemTime,
    mono: Instant,
}

impl Clock {
    fn now() -> Self {
        Clock {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }

    fn wall(&self, at: Instant) -> SystemTime {
        let moved = if at <= self.mono {
            self.wall.checked_sub(self.mono - at)
        } else {
            self.wall.checked_add(at - self.mono)
        };
        moved.unwrap_or(self.wall)
    }
}

/// One sampled request, from arrival to [`RequestTrace::finish`] (dropping it without
/// finishing ends the request span only).
#[derive(Debug)]
pub struct RequestTrace {
    tracer: SdkTracer,
    root: Span,
    clock: Clock,
    received: Instant,
    marks: [Option<Instant>; Mark::COUNT],
    schedule: Vec<KeyValue>,
    schedule_failed: bool,
    status: Option<u16>,
    routed: bool,
}

impl RequestTrace {
    /// Records `mark` at `at` (a later call for the same mark wins).
    pub fn mark(&mut self, mark: Mark, at: Instant) {
        self.marks[mark.index()] = Some(at);
    }

    /// Records `mark` at `at` unless it was recorded before.
    pub fn mark_once(&mut self, mark: Mark, at: Instant) {
        self.marks[mark.index()].get_or_insert(at);
    }

    /// The request's identity: `x-request-id`, the body's model, the model routed to,
    /// and the objective header. Never the prompt.
    pub fn describe(
        &mut self,
        request_id: &str,
        model: &str,
        target_model: &str,
        objective: Option<&str>,
    ) {
        let mut attributes = vec![
            KeyValue::new(keys::REQUEST_ID, request_id.to_owned()),
            KeyValue::new(keys::MODEL, model.to_owned()),
            KeyValue::new(keys::TARGET_MODEL, target_model.to_owned()),
        ];
        if let Some(objective) = objective {
            attributes.push(KeyValue::new(keys::OBJECTIVE, objective.to_owned()));
        }
        self.root.set_attributes(attributes);
    }

    /// The pick: profiles run, the primary profile, the destination and why.
    pub fn scheduled(&mut self, decision: &Decision) {
        let profiles: Vec<StringValue> = decision
            .profile_runs
            .iter()
            .map(|run| StringValue::from(run.profile_name.to_string()))
            .collect();
        self.schedule.clear();
        if !profiles.is_empty() {
            self.schedule.push(KeyValue::new(
                keys::PROFILES,
                Value::Array(Array::String(profiles)),
            ));
        }
        if let Some(primary) = decision.primary_profile() {
            self.schedule
                .push(KeyValue::new(keys::PRIMARY_PROFILE, primary.to_owned()));
        }
        self.schedule
            .push(KeyValue::new(keys::ENDPOINT, decision.destination.clone()));
        self.schedule
            .push(KeyValue::new(keys::PICK_REASON, decision.reason.as_str()));
        self.routed = true;
    }

    /// No endpoint was picked.
    pub fn not_scheduled(&mut self, error: &PickError) {
        self.schedule.clear();
        self.schedule
            .push(KeyValue::new(keys::PICK_ERROR, error.to_string()));
        self.schedule_failed = true;
    }

    /// The HTTP status the client gets: the model server's `:status`, or the EPP's own
    /// immediate response.
    pub fn status(&mut self, code: u16) {
        self.status = Some(code);
    }

    /// The `traceparent` that makes the model server's span a child of this request span.
    pub fn traceparent(&self) -> String {
        let context = self.root.span_context();
        format!(
            "00-{}-{}-{:02x}",
            context.trace_id(),
            context.span_id(),
            context.trace_flags().to_u8()
        )
    }

    /// The request span's context (trace and span ids).
    pub fn span_context(&self) -> &SpanContext {
        self.root.span_context()
    }

    /// Builds the child spans from the marks and ends the request span at `end`.
    pub fn finish(self, end: Instant) {
        let RequestTrace {
            tracer,
            mut root,
            clock,
            received,
            marks,
            schedule,
            schedule_failed,
            status,
            routed,
        } = self;
        let at = |mark: Mark| marks[mark.index()];
        let result = match (routed, status) {
            (true, _) => "routed",
            (false, Some(_)) => "rejected",
            (false, None) => "not_routed",
        };
        root.set_attribute(KeyValue::new(keys::RESULT, result));
        if let Some(code) = status {
            root.set_attribute(KeyValue::new(keys::STATUS_CODE, i64::from(code)));
            if code >= 500 {
                root.set_status(Status::error(format!("HTTP {code}")));
            }
        }
        let cx = Context::new().with_span(root);
        let child = |name: &'static str,
                     from: Option<Instant>,
                     to: Option<Instant>,
                     attributes: Vec<KeyValue>,
                     failed: bool| {
            let (Some(from), Some(to)) = (from, to) else {
                return;
            };
            let mut span = tracer.build_with_context(
                opentelemetry::trace::SpanBuilder::from_name(Cow::Borrowed(name))
                    .with_kind(SpanKind::Internal)
                    .with_start_time(clock.wall(from))
                    .with_attributes(attributes),
                &cx,
            );
            if failed {
                span.set_status(Status::error("no endpoint picked"));
            }
            span.end_with_timestamp(clock.wall(to.max(from)));
        };
        child(
            names::BODY_WAIT,
            Some(received),
            at(Mark::BodyComplete),
            Vec::new(),
            false,
        );
        child(
            names::PARSE,
            at(Mark::BodyComplete),
            at(Mark::Parsed),
            Vec::new(),
            false,
        );
        child(
            names::TOKENIZE,
            at(Mark::TokenizeStart),
            at(Mark::TokenizeEnd),
            Vec::new(),
            false,
        );
        child(
            names::QUEUE,
            at(Mark::QueueStart),
            at(Mark::QueueEnd),
            Vec::new(),
            false,
        );
        child(
            names::SCHEDULE,
            at(Mark::ScheduleStart),
            at(Mark::ScheduleEnd),
            schedule,
            schedule_failed,
        );
        child(
            names::RESPOND,
            at(Mark::Routed),
            at(Mark::ResponseEnd).or(Some(end)),
            Vec::new(),
            false,
        );
        cx.span().end_with_timestamp(clock.wall(end.max(received)));
    }
}
