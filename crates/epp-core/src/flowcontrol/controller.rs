//! The flow controller: decides, per request, whether it may be routed now or must wait in
//! the [`FlowQueues`], and releases waiting requests as the pool frees up.
//!
//! - A request is routed at once only when nobody waits and the detector does not hold:
//!   a newcomer never overtakes the waiting room.
//! - [`FlowController::pump`] dispatches while the detector does not hold, at most as many
//!   requests as the pool has endpoints between two routings, since a woken request reaches
//!   the in-flight counts (what the concurrency detector reads) only once it is routed. The
//!   runtime calls it when a request ends, when metrics arrive and on a timer; it also
//!   expires requests past their time to live.
//! - A waiting request is a future ([`Waiting`]); dropping it (the client left) takes it
//!   out of the room at once.
//!
//! Runtime-free: `tokio::sync::oneshot` needs no runtime, and time comes from the
//! datastore's clock, so tests and the lab can drive it on a manual clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::config::{FlowControlSettings, parse_deadline_ms};
use crate::datastore::Datastore;
use crate::flowcontrol::queues::{Arrival, FlowQueues, Refused, Rejection, Ticket};
use crate::flowcontrol::saturation::{Saturation, SaturationDetector};
use crate::request::{FAIRNESS_HEADER, OBJECTIVE_HEADER, RequestHeaders};

/// Why a request leaves flow control without being routed, and what the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Rejection,
    /// The pool had no endpoint when it was refused: 503 rather than 429.
    pub pool_empty: bool,
}

impl Refusal {
    /// The HTTP status the client gets.
    pub fn status(&self) -> u16 {
        if self.pool_empty { 503 } else { 429 }
    }
}

/// What [`FlowController::admit`] decided.
pub enum Admission {
    /// Route now.
    Now,
    /// Wait; the future resolves when the request may be routed (or is refused).
    Wait(Waiting),
    /// Refused on arrival (its band or the room is full).
    Refused(Refusal),
}

/// Counts of what the controller did, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub waiting: usize,
    pub waiting_bytes: u64,
}

/// Receives the controller's events (metrics); all methods default to doing nothing.
pub trait FlowObserver: Send + Sync {
    fn dispatched(&self, _priority: i32, _waited: Duration) {}
    fn refused(&self, _priority: i32, _reason: Rejection, _waited: Duration) {}
    fn saturation(&self, _detector: &'static str, _saturation: Saturation) {}
}

struct NoObserver;
impl FlowObserver for NoObserver {}

type Reply = Result<Duration, Refusal>;

/// Longest flow id kept; longer ids (client-sized headers) are cut, so they share a flow.
pub const MAX_FLOW_ID_BYTES: usize = 256;

/// See the module docs.
pub struct FlowController {
    room: Mutex<FlowQueues<oneshot::Sender<Reply>>>,
    /// Mirrors the room's length, so the common case (nobody waits) takes no lock.
    waiting: AtomicUsize,
    /// Dispatched but not yet routed.
    pending: AtomicUsize,
    detector: Box<dyn SaturationDetector>,
    datastore: Arc<Datastore>,
    settings: FlowControlSettings,
    observer: Box<dyn FlowObserver>,
}

impl std::fmt::Debug for FlowController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowController")
            .field("detector", &self.detector.name())
            .field("waiting", &self.waiting.load(AtomicOrdering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl FlowController {
    pub fn new(
        settings: FlowControlSettings,
        detector: Box<dyn SaturationDetector>,
        datastore: Arc<Datastore>,
    ) -> Arc<Self> {
        Self::with_observer(settings, detector, datastore, Box::new(NoObserver))
    }

    pub fn with_observer(
        settings: FlowControlSettings,
        detector: Box<dyn SaturationDetector>,
        datastore: Arc<Datastore>,
        observer: Box<dyn FlowObserver>,
    ) -> Arc<Self> {
        Arc::new(FlowController {
            room: Mutex::new(FlowQueues::new(settings.queue.clone())),
            waiting: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            detector,
            datastore,
            settings,
            observer,
        })
    }

    pub fn settings(&self) -> &FlowControlSettings {
        &self.settings
    }

    /// The priority band of a request naming `objective` (0 when it names none or an
    /// unknown one).
    pub fn priority_of(&self, objective: Option<&str>) -> i32 {
        objective
            .and_then(|name| self.datastore.objective(name))
            .map_or(0, |o| o.priority)
    }

    /// The flow a request belongs to: the gateway's fairness id when the config trusts it,
    /// else the objective (one flow per objective). Cut to [`MAX_FLOW_ID_BYTES`].
    pub fn flow_of<'a>(&self, objective: Option<&'a str>, fairness_id: Option<&'a str>) -> &'a str {
        let id = match fairness_id {
            Some(id) if self.settings.trust_fairness_header && !id.is_empty() => id,
            _ => objective.unwrap_or(""),
        };
        let mut end = id.len().min(MAX_FLOW_ID_BYTES);
        while !id.is_char_boundary(end) {
            end -= 1;
        }
        &id[..end]
    }

    /// [`FlowController::admit`] for a request with these headers: its band from the
    /// objective, its flow, its deadline. What every front end calls.
    pub fn admit_request(self: &Arc<Self>, headers: &RequestHeaders, bytes: usize) -> Admission {
        let objective = headers.get(OBJECTIVE_HEADER);
        let deadline = headers
            .get(&self.settings.deadline_header)
            .and_then(parse_deadline_ms);
        self.admit(
            self.priority_of(objective),
            self.flow_of(objective, headers.get(FAIRNESS_HEADER)),
            bytes as u64,
            deadline,
        )
    }

    /// Requests waiting now, and their bytes.
    pub fn stats(&self) -> FlowStats {
        let room = self.room.lock();
        FlowStats {
            waiting: room.len(),
            waiting_bytes: room.bytes(),
        }
    }

    /// Sizes of the bands with waiting requests (for the metrics).
    pub fn bands(&self) -> Vec<crate::flowcontrol::BandStats> {
        self.room.lock().bands().collect()
    }

    /// Admits or queues one request. `flow` is the fairness id the gateway vouches for, or
    /// the objective; `deadline` is for EDF ordering, relative to now.
    pub fn admit(
        self: &Arc<Self>,
        priority: i32,
        flow: &str,
        bytes: u64,
        deadline: Option<Duration>,
    ) -> Admission {
        let now = self.datastore.clock().now();
        if self.waiting.load(AtomicOrdering::Acquire) == 0 && !self.saturation(now).hold {
            return Admission::Now;
        }
        let (tx, rx) = oneshot::channel();
        let arrival = Arrival {
            priority,
            flow,
            bytes,
            deadline: deadline.map(|d| now.saturating_add(d)),
        };
        let mut room = self.room.lock();
        let result = room.enqueue(arrival, tx, now);
        self.waiting.store(room.len(), AtomicOrdering::Release);
        drop(room);
        match result {
            Ok((ticket, displaced)) => {
                self.answer_refused(displaced);
                // Capacity may have freed up between the check and the enqueue.
                self.pump();
                Admission::Wait(Waiting {
                    rx,
                    ticket: Some(ticket),
                    controller: Arc::clone(self),
                })
            }
            Err((_, reason)) => {
                self.observer.refused(priority, reason, Duration::ZERO);
                Admission::Refused(Refusal {
                    reason,
                    pool_empty: self.datastore.snapshot().is_empty(),
                })
            }
        }
    }

    /// Dispatches waiting requests while the pool has room, and refuses those past their
    /// time to live. Cheap when nobody waits.
    pub fn pump(&self) {
        if self.waiting.load(AtomicOrdering::Acquire) == 0 {
            return;
        }
        let now = self.datastore.clock().now();
        let mut room = self.room.lock();
        let expired = room.expire(now);
        let limit = self.datastore.snapshot().len().max(1);
        let mut dispatched = Vec::new();
        while !room.is_empty() && self.pending.load(AtomicOrdering::Acquire) < limit {
            if self.saturation(now).hold {
                break;
            }
            let Some(next) = room.dispatch(now) else {
                break;
            };
            // A receiver already gone (its client left without being cancelled yet) takes
            // no slot.
            if next.payload.send(Ok(next.waited)).is_ok() {
                self.pending.fetch_add(1, AtomicOrdering::AcqRel);
                dispatched.push((next.priority, next.waited));
            }
        }
        self.waiting.store(room.len(), AtomicOrdering::Release);
        drop(room);
        for (priority, waited) in dispatched {
            self.observer.dispatched(priority, waited);
        }
        self.answer_refused(expired);
    }

    /// When the next request expires: the dispatcher's latest wake-up.
    pub fn next_expiry(&self) -> Option<Duration> {
        self.room.lock().next_expiry()
    }

    /// A dispatched request was routed (or gave up): its slot counts in the in-flight
    /// figures now, so more may be dispatched. Called by [`Dispatch`]'s drop.
    fn routed(&self) {
        let _ = self
            .pending
            .fetch_update(AtomicOrdering::AcqRel, AtomicOrdering::Acquire, |p| {
                p.checked_sub(1)
            });
        self.pump();
    }

    fn saturation(&self, now: Duration) -> Saturation {
        let saturation = self.detector.saturation(&self.datastore.snapshot(), now);
        self.observer.saturation(self.detector.name(), saturation);
        saturation
    }

    fn answer_refused(&self, refused: Vec<Refused<oneshot::Sender<Reply>>>) {
        if refused.is_empty() {
            return;
        }
        let pool_empty = self.datastore.snapshot().is_empty();
        for r in refused {
            self.observer.refused(r.priority, r.reason, r.waited);
            let _ = r.payload.send(Err(Refusal {
                reason: r.reason,
                pool_empty,
            }));
        }
    }

    fn cancel(&self, ticket: Ticket) {
        let mut room = self.room.lock();
        room.cancel(ticket);
        self.waiting.store(room.len(), AtomicOrdering::Release);
    }
}

/// A request waiting in the room. Resolves to a [`Dispatch`] once it may be routed (keep
/// it until the request is routed), or to a [`Refusal`]. Dropped unresolved, it leaves the
/// room.
pub struct Waiting {
    rx: oneshot::Receiver<Reply>,
    ticket: Option<Ticket>,
    controller: Arc<FlowController>,
}

/// A dispatched request on its way to being routed. Drop it once the request is routed
/// (its in-flight count raised) or abandoned: the controller then dispatches more.
pub struct Dispatch {
    /// How long the request waited.
    pub waited: Duration,
    controller: Arc<FlowController>,
}

impl Drop for Dispatch {
    fn drop(&mut self) {
        self.controller.routed();
    }
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("waited", &self.waited)
            .finish()
    }
}

impl Future for Waiting {
    type Output = Result<Dispatch, Refusal>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let reply = match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(reply) => reply,
        };
        // Answered: the room no longer holds it.
        self.ticket = None;
        Poll::Ready(match reply {
            Ok(Ok(waited)) => Ok(Dispatch {
                waited,
                controller: Arc::clone(&self.controller),
            }),
            Ok(Err(refusal)) => Err(refusal),
            // The controller went away: nothing will dispatch it.
            Err(_) => Err(Refusal {
                reason: Rejection::Expired,
                pool_empty: false,
            }),
        })
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.controller.cancel(ticket);
            // It may have been dispatched just now: give the slot back.
            if let Ok(Ok(_)) = self.rx.try_recv() {
                self.controller.routed();
            }
        }
    }
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
