//! When each phase of an exchange happened, and the hook that is told when it ends: what
//! request spans (OpenTelemetry) are built from. Nothing here allocates per phase.

use std::time::Instant;

/// The instants of one exchange; a phase not reached is `None`.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    /// The request head arrived.
    pub received: Instant,
    /// The whole request body was read.
    pub body_read: Option<Instant>,
    /// The body was parsed (model, prompt).
    pub parsed: Option<Instant>,
    /// The token source answered (only with a scorer that needs tokens).
    pub tokenized: Option<Instant>,
    /// Flow control held the request from, to (only requests that waited).
    pub queued: Option<(Instant, Instant)>,
    /// The director picked (or refused).
    pub scheduled: Option<Instant>,
    /// The request was handed to the upstream connection.
    pub forwarded: Option<Instant>,
    /// The endpoint's response headers arrived.
    pub upstream_headers: Option<Instant>,
    /// The response ended, failed, or the client left.
    pub finished: Option<Instant>,
}

impl Timeline {
    pub fn starting(received: Instant) -> Self {
        Timeline {
            received,
            body_read: None,
            parsed: None,
            tokenized: None,
            queued: None,
            scheduled: None,
            forwarded: None,
            upstream_headers: None,
            finished: None,
        }
    }
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The whole response reached the client.
    Completed,
    /// Answered by the EPP itself (limits, pick failure, bad body, upstream unreachable).
    Rejected,
    /// The client left before the response ended; the upstream request was cancelled.
    /// Reported with status 499 when it left before the answer began.
    ClientCancelled,
    /// The endpoint's response broke off.
    UpstreamReset,
}

/// One finished exchange, as an observer sees it (no prompt, no body).
#[derive(Debug, Clone, Copy)]
pub struct ExchangeReport<'a> {
    pub request_id: &'a str,
    /// The model asked for and the one served (after the rewrite); empty before parsing.
    pub model: &'a str,
    pub target_model: &'a str,
    /// `ip:port[,ip:port...]` when a pick was made.
    pub destination: Option<&'a str>,
    /// `PickReason::as_str` when a pick was made.
    pub pick_reason: Option<&'static str>,
    /// The status the client got (the endpoint's, or the EPP's own).
    pub status: u16,
    pub outcome: Outcome,
    /// The W3C `traceparent` the client sent, to parent a span on.
    pub traceparent: Option<&'a str>,
    pub timeline: &'a Timeline,
}

/// Told about each exchange when it ends, on the task that ends it: keep it short.
pub trait ExchangeObserver: Send + Sync + 'static {
    fn exchange_finished(&self, report: &ExchangeReport<'_>);
}
