//! One exchange as named steps: read the body, route it, forward it, answer.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::Shared;
use crate::headers::{self, RequestHead};
use crate::inbound::{self, BodyError};
use crate::response::{OpenExchange, ProxyBody, Streamed};
use crate::stats::ServingGuard;
use crate::timeline::{ExchangeReport, Outcome, Timeline};
use crate::upstream;
use epp_core::director::{Decision, PickError, RoutingRequest};
use epp_core::flowcontrol::{Admission, Dispatch};
use epp_core::request::{parse_body, replace_model_value};
use epp_core::telemetry::metrics::{ErrorCode, ModelMetrics, Phase, RunningGuard};
use epp_core::tokens::{TokenizeRequest, Tokens};
use epp_extproc::request_log::RoutedRequest;
use epp_extproc::{
    BudgetLease, MODEL_REWRITE_HEADER, OBJECTIVE_HEADER, Rejection, RequestLogEntry, UsageScanner,
};
use epp_trace::{Mark, RequestTrace};

/// Serves one request.
pub(crate) async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<ProxyBody> {
    let received = Instant::now();
    let (parts, body) = request.into_parts();
    let head = RequestHead::read(&parts.headers);
    let trace = shared
        .settings
        .stream
        .tracer
        .as_ref()
        .and_then(|tracer| tracer.start(received, &head.headers))
        .map(Box::new);
    let exchange = Exchange {
        _serving: shared.stats.serving(),
        head,
        model: String::new(),
        target_model: String::new(),
        timeline: Timeline::starting(received),
        reported: false,
        trace,
        shared,
    };
    exchange.serve(parts, body).await
}

/// What is known of an exchange so far.
pub(crate) struct Exchange {
    pub shared: Arc<Shared>,
    pub head: RequestHead,
    /// The body's model, and the one served (after `x-gateway-model-name-rewrite`).
    pub model: String,
    pub target_model: String,
    pub timeline: Timeline,
    /// The observer was told how it ended; else dropping it means the client left.
    reported: bool,
    /// The OpenTelemetry trace, when tracing is on and the request sampled; its spans are
    /// built from the timeline when the exchange is dropped.
    trace: Option<Box<RequestTrace>>,
    _serving: ServingGuard,
}

impl Drop for Exchange {
    /// The server drops an exchange whose client left before the answer began (while the
    /// body was read or the endpoint was thinking): any upstream request was dropped with
    /// it, which cancels it. Count and report that (status 499, as nginx logs it).
    fn drop(&mut self) {
        if !self.reported {
            self.shared.stats.client_cancelled();
            self.timeline.finished = Some(Instant::now());
            self.report(CLIENT_GONE, Outcome::ClientCancelled, None);
        }
        self.finish_trace();
    }
}

/// The status reported for a client that left before its answer began.
const CLIENT_GONE: u16 = 499;

/// A routed request, ready to forward.
struct Routed {
    decision: Decision,
    /// The body to send (the model rewritten when asked).
    body: Bytes,
    /// Whether it had a body (bodyless requests are not counted per model, as in ext_proc).
    counted: bool,
    log_entry: Option<Box<RequestLogEntry>>,
}

impl Exchange {
    async fn serve(mut self, parts: Parts, body: Incoming) -> Response<ProxyBody> {
        let settings = Arc::clone(&self.shared.settings.stream);
        let mut lease = settings.buffer_budget.lease();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse().ok());
        let limit = settings.max_request_body_bytes;
        let body = match inbound::read_body(body, declared, limit, &mut lease).await {
            Ok(body) => body,
            Err(BodyError::Rejected(rejection)) => return self.reject(rejection),
            Err(BodyError::Client(error)) => {
                tracing::debug!({ "x-request-id" = self.head.request_id, %error }, "cannot read the request body");
                return self.reject(Rejection::bad_request("cannot read the request body"));
            }
        };
        let read_at = Instant::now();
        self.timeline.body_read = Some(read_at);
        settings.metrics.phase(
            Phase::BodyWait,
            read_at.duration_since(self.timeline.received).as_secs_f64(),
        );
        let routed = match self.route(body).await {
            Ok(routed) => routed,
            Err(rejection) => return self.reject(rejection),
        };
        self.forward(parts, routed, lease).await
    }

    // === routing ===

    /// Parses the body and asks the director, as ext_proc does with a complete body; a
    /// request without a body goes to a random endpoint (v1.0.1).
    async fn route(&mut self, body: Bytes) -> Result<Routed, Rejection> {
        let picker = Arc::clone(&self.shared.picker);
        if body.is_empty() {
            let schedule_started = Instant::now();
            let picked = picker.route_bodyless(self.head.subset.as_deref());
            self.timeline.scheduled = Some(Instant::now());
            self.trace_schedule(schedule_started, picked.as_ref());
            let decision = picked.map_err(|e| self.pick_failed(&e))?;
            return Ok(Routed {
                decision,
                body,
                counted: false,
                log_entry: None,
            });
        }
        let parse_started = Instant::now();
        let parsed = parse_body(&body).map_err(|e| Rejection::bad_request(&e.to_string()))?;
        self.model.clone_from(&parsed.model);
        self.target_model = self
            .head
            .headers
            .get(MODEL_REWRITE_HEADER)
            .filter(|m| !m.is_empty())
            .unwrap_or(&parsed.model)
            .to_owned();
        let parsed_at = Instant::now();
        self.timeline.parsed = Some(parsed_at);
        self.metrics()
            .phase(Phase::Parse, (parsed_at - parse_started).as_secs_f64());
        let tokens = match parsed.prompt {
            Some(_) => self.fetch_tokens(&body).await,
            None => None,
        };
        // Held until the pick below has raised the in-flight count.
        let dispatch = self.admit(body.len()).await?;
        let schedule_started = Instant::now();
        let picked = picker.route(&RoutingRequest {
            request_id: &self.head.request_id,
            model: &self.model,
            target_model: &self.target_model,
            prompt: parsed.prompt.as_deref(),
            tokens: tokens.as_deref(),
            headers: &self.head.headers,
            objective: self.head.headers.get(OBJECTIVE_HEADER),
            subset: self.head.subset.as_deref(),
            at_headers: false,
            queued: dispatch.as_ref().map(|d| d.waited),
        });
        drop(dispatch);
        let scheduled_at = Instant::now();
        self.timeline.scheduled = Some(scheduled_at);
        self.trace_schedule(schedule_started, picked.as_ref());
        self.metrics().phase(
            Phase::Schedule,
            (scheduled_at - schedule_started).as_secs_f64(),
        );
        let decision = picked.map_err(|e| self.pick_failed(&e))?;
        let log_entry = self.log_entry(&decision, parsed.prompt.as_deref());
        let sent = if self.target_model != parsed.model {
            Bytes::from(replace_model_value(
                &body,
                parsed.model_span.clone(),
                &self.target_model,
            ))
        } else {
            drop(parsed);
            body
        };
        Ok(Routed {
            decision,
            body: sent,
            counted: true,
            log_entry,
        })
    }

    /// Flow control: waits while the pool is saturated (dropped with the exchange when the
    /// client leaves, which takes the request out of the queue); `None` when it need not
    /// wait or flow control is off.
    async fn admit(&mut self, bytes: usize) -> Result<Option<Dispatch>, Rejection> {
        let Some(controller) = self.shared.settings.stream.flow_control.clone() else {
            return Ok(None);
        };
        let admission = controller.admit_request(&self.head.headers, bytes);
        let waiting = match admission {
            Admission::Now => return Ok(None),
            Admission::Refused(refusal) => return Err(Rejection::flow_control(refusal)),
            Admission::Wait(waiting) => waiting,
        };
        let held = Instant::now();
        let outcome = waiting.await;
        self.timeline.queued = Some((held, Instant::now()));
        match outcome {
            Ok(dispatch) => {
                self.metrics()
                    .phase(Phase::Queue, dispatch.waited.as_secs_f64());
                Ok(Some(dispatch))
            }
            Err(refusal) => Err(Rejection::flow_control(refusal)),
        }
    }

    /// The prompt's token ids when a scorer needs them, within the source's timeout;
    /// `None` otherwise (the request is routed without them, never failed).
    async fn fetch_tokens(&mut self, body: &Bytes) -> Option<Tokens> {
        let settings = self.shared.settings.stream.tokens.clone()?;
        let started = Instant::now();
        let request = TokenizeRequest {
            model: self.target_model.clone(),
            body: body.clone(),
        };
        let tokens = match tokio::time::timeout(settings.timeout, settings.source.tokenize(request))
            .await
        {
            Ok(Ok(tokens)) => Some(tokens),
            Ok(Err(e)) => {
                tracing::debug!({ "x-request-id" = self.head.request_id, reason = e.reason() }, "routing without tokens: {e}");
                None
            }
            Err(_) => {
                tracing::debug!(
                    { "x-request-id" = self.head.request_id },
                    "routing without tokens: the token source timed out"
                );
                None
            }
        };
        let done = Instant::now();
        self.timeline.tokenized = Some(done);
        self.metrics()
            .phase(Phase::Tokenize, (done - started).as_secs_f64());
        tokens
    }

    /// The answer for a failed pick, as ext_proc's; a pool not loaded yet gets 503 here
    /// (there is no gateway failure mode to defer to).
    fn pick_failed(&self, error: &PickError) -> Rejection {
        tracing::info!({ "x-request-id" = self.head.request_id, reason = %error }, "request not routed");
        Rejection::pick(error).unwrap_or_else(Rejection::pool_not_ready)
    }

    /// The request-log entry, begun at the decision (with the log on).
    fn log_entry(&self, decision: &Decision, prompt: Option<&str>) -> Option<Box<RequestLogEntry>> {
        let log = self.shared.settings.stream.request_log.as_ref()?;
        let now = SystemTime::now();
        let arrival = now
            .checked_sub(self.timeline.received.elapsed())
            .unwrap_or(now);
        Some(Box::new(RequestLogEntry::routed(
            &RoutedRequest {
                arrival,
                model: &self.model,
                target_model: &self.target_model,
                prompt,
                session: self.head.headers.get(log.session_header()),
                endpoint: decision.primary().address_text(),
            },
            log.block_size(),
        )))
    }

    // === forwarding ===

    /// Sends the request to the primary endpoint and streams its answer back.
    async fn forward(
        mut self,
        parts: Parts,
        routed: Routed,
        lease: BudgetLease,
    ) -> Response<ProxyBody> {
        let respond_started = Instant::now();
        let decision = routed.decision;
        let request = match self.upstream_request(&parts, &decision, routed.body) {
            Ok(request) => request,
            Err(rejection) => return self.reject(rejection),
        };
        let counted = routed
            .counted
            .then(|| self.count_routed(request.body().size_hint_exact()));
        let forwarded_at = Instant::now();
        self.timeline.forwarded = Some(forwarded_at);
        self.metrics().phase(
            Phase::Respond,
            (forwarded_at - respond_started).as_secs_f64(),
        );
        // Handed on, as ext_proc gives the bytes back once the body is queued as replies:
        // the connection writes it out and frees it.
        drop(lease);
        let sent = self.shared.client.request(request).await;
        self.timeline.upstream_headers = Some(Instant::now());
        match sent {
            Ok(response) => self.stream_back(response, decision, counted, routed.log_entry),
            Err(error) => self.upstream_failed(&error, &decision),
        }
    }

    /// Counts a routed request with a body, as ext_proc does once it routed one:
    /// `inference_model_request_total`, its size, and the running gauge until it ends.
    fn count_routed(&self, size: usize) -> (ModelMetrics, RunningGuard) {
        let model = self.metrics().model(&self.model, &self.target_model);
        model.request_total();
        model.request_size(size);
        (model, self.metrics().running_requests_inc(&self.model))
    }

    /// The endpoint's answer, passed to the client as it streams (headers now, the body
    /// frame by frame); the exchange stays open until the body ends or the client leaves.
    fn stream_back(
        self,
        response: Response<Incoming>,
        decision: Decision,
        counted: Option<(ModelMetrics, RunningGuard)>,
        log_entry: Option<Box<RequestLogEntry>>,
    ) -> Response<ProxyBody> {
        let status = response.status().as_u16();
        if response.status().is_server_error() {
            self.record_error(ErrorCode::ModelServerError);
        }
        let streaming = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let (mut head, incoming) = response.into_parts();
        headers::client_response(
            &mut head.headers,
            &decision.destination,
            &self.head.request_id,
        );
        head.version = http::Version::default();
        let (model, running) = counted.unzip();
        let open = OpenExchange {
            exchange: self,
            decision,
            model,
            _running: running,
            usage: UsageScanner::new(streaming),
            response_bytes: 0,
            status,
            log_entry,
        };
        Response::from_parts(
            head,
            ProxyBody::Streamed(Box::new(Streamed::new(incoming, open))),
        )
    }

    /// The request to the endpoint: the client's method, path and query, forwardable
    /// headers, and the routing headers.
    fn upstream_request(
        &self,
        parts: &Parts,
        decision: &Decision,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, Rejection> {
        let authority = decision.primary().address_text();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = format!("http://{authority}{path}")
            .parse()
            .map_err(|_| Rejection::bad_request("the request path is not a valid URI path"))?;
        let mut request = Request::new(Full::new(body.clone()));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = headers::upstream_request(
            &parts.headers,
            &decision.destination,
            authority,
            &self.head.request_id,
            body.len(),
        );
        if let Some(trace) = &self.trace {
            // The model server's span joins this request's trace.
            headers::set(
                request.headers_mut(),
                http::HeaderName::from_static("traceparent"),
                &trace.traceparent(),
            );
        }
        Ok(request)
    }

    /// 503 (refused), 504 (connect timeout) or 502 (reset), counted.
    fn upstream_failed(
        self,
        error: &hyper_util::client::legacy::Error,
        decision: &Decision,
    ) -> Response<ProxyBody> {
        let kind = upstream::classify(error);
        self.shared.stats.upstream_error(kind);
        self.record_error(ErrorCode::ModelServerError);
        let (status, message) = upstream::answer(kind);
        tracing::info!({ "x-request-id" = self.head.request_id, endpoint = %decision.destination, %error, status }, "upstream request failed");
        self.reply(
            status,
            format!("inference gateway: {message} ({})", decision.destination),
            Some(decision),
        )
    }

    // === answers ===

    /// The EPP's own answer for a request it does not forward.
    fn reject(self, rejection: Rejection) -> Response<ProxyBody> {
        self.record_error(rejection.code);
        let mut response = self.reply(rejection.status, rejection.body, None);
        if let Some(reason) = rejection.reason {
            response.headers_mut().insert(
                http::HeaderName::from_static(epp_extproc::rejection::REJECTION_REASON_HEADER),
                HeaderValue::from_static(reason),
            );
        }
        response
    }

    fn reply(
        mut self,
        status: u16,
        body: String,
        decision: Option<&Decision>,
    ) -> Response<ProxyBody> {
        self.timeline.finished = Some(Instant::now());
        self.report(status, Outcome::Rejected, decision);
        let mut response = Response::new(ProxyBody::answer(body));
        *response.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers::set(
            headers,
            http::HeaderName::from_static(epp_extproc::REQUEST_ID_HEADER),
            &self.head.request_id,
        );
        if let Some(decision) = decision {
            headers::set(
                headers,
                http::HeaderName::from_static(headers::DESTINATION_HEADER),
                &decision.destination,
            );
        }
        response
    }

    /// Tells the observer (if any) how the exchange ended.
    pub(crate) fn report(&mut self, status: u16, outcome: Outcome, decision: Option<&Decision>) {
        self.reported = true;
        if let Some(trace) = &mut self.trace {
            trace.status(status);
        }
        let Some(observer) = &self.shared.settings.observer else {
            return;
        };
        observer.exchange_finished(&ExchangeReport {
            request_id: &self.head.request_id,
            model: &self.model,
            target_model: &self.target_model,
            destination: decision.map(|d| d.destination.as_str()),
            pick_reason: decision.map(|d| d.reason.as_str()),
            status,
            outcome,
            traceparent: self.head.headers.get("traceparent"),
            timeline: &self.timeline,
        });
    }

    /// The schedule span's bounds and the pick (or why there was none).
    fn trace_schedule(&mut self, started: Instant, picked: Result<&Decision, &PickError>) {
        let (Some(trace), Some(ended)) = (&mut self.trace, self.timeline.scheduled) else {
            return;
        };
        trace.mark(Mark::ScheduleStart, started);
        trace.mark(Mark::ScheduleEnd, ended);
        match picked {
            Ok(decision) => trace.scheduled(decision),
            Err(error) => trace.not_scheduled(error),
        }
    }

    /// Builds the spans from the timeline: `epp.body_wait`, `epp.parse`, `epp.tokenize`,
    /// `epp.schedule`, and `epp.respond` from the forward to the end of the response.
    fn finish_trace(&mut self) {
        let Some(mut trace) = self.trace.take() else {
            return;
        };
        let t = self.timeline;
        for (mark, at) in [
            (Mark::BodyComplete, t.body_read),
            (Mark::Parsed, t.parsed),
            (Mark::Routed, t.forwarded),
            (Mark::ResponseEnd, t.finished),
        ] {
            if let Some(at) = at {
                trace.mark(mark, at);
            }
        }
        if let (Some(end), Some(parsed)) = (t.tokenized, t.parsed) {
            trace.mark(Mark::TokenizeStart, parsed);
            trace.mark(Mark::TokenizeEnd, end);
        }
        if let Some((from, to)) = t.queued {
            trace.mark(Mark::QueueStart, from);
            trace.mark(Mark::QueueEnd, to);
        }
        trace.describe(
            &self.head.request_id,
            &self.model,
            &self.target_model,
            self.head.headers.get(OBJECTIVE_HEADER),
        );
        trace.finish(t.finished.unwrap_or_else(Instant::now));
    }

    /// Counts a failed request under whatever model is known so far (none before the body
    /// was parsed), as ext_proc does.
    fn record_error(&self, code: ErrorCode) {
        self.metrics()
            .model(&self.model, &self.target_model)
            .request_error(code);
    }

    fn metrics(&self) -> &epp_core::telemetry::metrics::EppMetrics {
        &self.shared.settings.stream.metrics
    }
}

/// The exact length of a full body.
trait ExactSize {
    fn size_hint_exact(&self) -> usize;
}

impl ExactSize for Full<Bytes> {
    fn size_hint_exact(&self) -> usize {
        use http_body::Body as _;
        self.size_hint()
            .exact()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    }
}
