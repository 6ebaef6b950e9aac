//! The response body: the endpoint's frames passed on one at a time as the client takes
//! them, with usage and size counted on the way, and the exchange's accounting ended when
//! the body ends, fails, or is dropped because the client left.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::exchange::Exchange;
use crate::stats::UpstreamError;
use crate::timeline::Outcome;
use epp_core::director::Decision;
use epp_core::telemetry::metrics::{ModelMetrics, RunningGuard};
use epp_extproc::{RequestLogEntry, UsageScanner};

/// What the client receives: the EPP's own answer, or an endpoint's streamed response.
pub(crate) enum ProxyBody {
    Answer(Full<Bytes>),
    Streamed(Box<Streamed>),
}

impl ProxyBody {
    pub fn answer(text: String) -> Self {
        ProxyBody::Answer(Full::new(Bytes::from(text)))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Answer(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
            ProxyBody::Streamed(streamed) => streamed.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Answer(full) => full.is_end_stream(),
            ProxyBody::Streamed(streamed) => streamed.upstream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Answer(full) => full.size_hint(),
            ProxyBody::Streamed(streamed) => streamed.upstream.size_hint(),
        }
    }
}

/// An endpoint's response body on its way to the client.
pub(crate) struct Streamed {
    upstream: Incoming,
    /// `None` once the exchange was accounted for.
    open: Option<OpenExchange>,
}

/// A routed exchange whose response is streaming: what ends with it.
pub(crate) struct OpenExchange {
    pub exchange: Exchange,
    /// Holds the endpoint's in-flight count until the exchange ends.
    pub decision: Decision,
    /// The (model, target) metrics; `None` for a bodyless request (not counted per model,
    /// as in ext_proc).
    pub model: Option<ModelMetrics>,
    pub _running: Option<RunningGuard>,
    pub usage: UsageScanner,
    pub response_bytes: usize,
    pub status: u16,
    pub log_entry: Option<Box<RequestLogEntry>>,
}

impl Streamed {
    pub fn new(upstream: Incoming, open: OpenExchange) -> Self {
        Streamed {
            upstream,
            open: Some(open),
        }
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = ready!(Pin::new(&mut self.upstream).poll_frame(cx));
        match polled {
            Some(Ok(frame)) => {
                if let (Some(data), Some(open)) = (frame.data_ref(), self.open.as_mut()) {
                    open.usage.feed(data);
                    open.response_bytes += data.len();
                }
                if self.upstream.is_end_stream() {
                    self.end(Outcome::Completed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                self.end(Outcome::UpstreamReset);
                Poll::Ready(Some(Err(error)))
            }
            None => {
                self.end(Outcome::Completed);
                Poll::Ready(None)
            }
        }
    }

    fn end(&mut self, outcome: Outcome) {
        if let Some(open) = self.open.take() {
            open.finish(outcome);
        }
    }
}

impl Drop for Streamed {
    /// Dropped before its end: the client left (the server drops the body when it cannot
    /// write). Dropping `upstream` right after closes the endpoint's connection, which
    /// cancels the request there.
    fn drop(&mut self) {
        let outcome = if self.upstream.is_end_stream() {
            Outcome::Completed
        } else {
            Outcome::ClientCancelled
        };
        self.end(outcome);
    }
}

impl OpenExchange {
    /// Records the response as ext_proc does when a response ends (duration, size, usage,
    /// cache prediction, request log), counts a cancellation or a reset, tells the
    /// observer, and releases the in-flight count.
    fn finish(mut self, outcome: Outcome) {
        let now = Instant::now();
        self.exchange.timeline.finished = Some(now);
        let shared = std::sync::Arc::clone(&self.exchange.shared);
        match outcome {
            Outcome::Completed => self.record_completed(now),
            Outcome::ClientCancelled => {
                shared.stats.client_cancelled();
                tracing::debug!({ "x-request-id" = self.exchange.head.request_id, endpoint = %self.decision.destination }, "client left; upstream request cancelled");
            }
            Outcome::UpstreamReset => {
                shared.stats.upstream_error(UpstreamError::Reset);
                tracing::info!({ "x-request-id" = self.exchange.head.request_id, endpoint = %self.decision.destination }, "upstream response broke off");
            }
            Outcome::Rejected => {}
        }
        self.exchange
            .report(self.status, outcome, Some(&self.decision));
    }

    fn record_completed(&mut self, now: Instant) {
        let usage = self.usage.finish();
        let seconds = now
            .saturating_duration_since(self.exchange.timeline.received)
            .as_secs_f64();
        if let Some(model) = &self.model {
            model.request_duration(seconds);
            model.response_size(self.response_bytes);
            if let Some(usage) = &usage {
                model.tokens(usage.prompt_tokens, usage.completion_tokens);
                model.normalized_time_per_output_token(seconds, usage.completion_tokens);
            }
        }
        if let Some(usage) = &usage
            && let (Some(prediction), Some(cached)) =
                (&self.decision.cache_prediction, usage.cached_tokens)
        {
            prediction.observe(cached, usage.prompt_tokens);
        }
        if let (Some(mut entry), Some(log)) = (
            self.log_entry.take(),
            &self.exchange.shared.settings.stream.request_log,
        ) {
            entry.status = Some(self.status);
            entry.finish(usage.as_ref());
            log.record(*entry);
        }
    }
}
