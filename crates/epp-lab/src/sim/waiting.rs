//! The EPP's flow control in virtual time: `epp_core`'s [`FlowController`] (the code the
//! EPP runs, on the router's manual clock), with the simulator standing in for the async
//! runtime.
//!
//! A waiting request is the controller's [`Waiting`] future. Each is polled once with a
//! waker that, when the controller answers it (dispatched, expired, displaced), puts the
//! request's index on a list; the simulator drains that list after every call into the
//! controller, routing dispatched requests and failing refused ones. So the lab needs no
//! runtime and looks at no request that was not answered.
//!
//! A request's band is the priority of its class's objective (the controller reads it from
//! the datastore's objectives); its fairness id is `<class>/<flow>`, which the controller
//! uses as the flow when the policy trusts the fairness header, else the objective. Its
//! size is the prompt's text, the share of the body the lab models.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use epp_core::flowcontrol::{Admission, Dispatch, FlowController, Rejection, Waiting};

use crate::results::FinishReason;
use crate::workload::{RequestSpec, Workload};

/// What the controller decided for a request.
pub enum Answer {
    /// Route it now; drop the guard (if any) once it is routed, so the controller
    /// dispatches more.
    Route(u32, Option<Dispatch>),
    /// It leaves without being routed.
    Refuse(u32, FinishReason),
}

/// Pushes its request's index when the controller answers it.
struct Wakeup {
    request: u32,
    answered: Arc<Mutex<VecDeque<u32>>>,
}

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Ok(mut list) = self.answered.lock() {
            list.push_back(self.request);
        }
    }
}

/// The waiting requests of one run; see the module docs.
pub struct WaitingRoom {
    controller: Arc<FlowController>,
    /// By request index: its future while it waits.
    waiting: Vec<Option<Waiting>>,
    /// Requests the controller answered, in the order it answered them.
    answered: Arc<Mutex<VecDeque<u32>>>,
    /// Fairness ids by class, then flow.
    fairness: Vec<Vec<Box<str>>>,
}

impl WaitingRoom {
    pub fn new(controller: Arc<FlowController>, workload: &Workload) -> Self {
        let fairness = workload
            .classes
            .iter()
            .map(|class| {
                (0..class.flows.max(1))
                    .map(|flow| format!("{}/{flow}", class.name).into_boxed_str())
                    .collect()
            })
            .collect();
        WaitingRoom {
            controller,
            waiting: (0..workload.requests.len()).map(|_| None).collect(),
            answered: Arc::default(),
            fairness,
        }
    }

    /// How long a request may wait.
    pub fn ttl(&self) -> Duration {
        self.controller.settings().queue.ttl
    }

    /// A request reaches the EPP: routed now, refused, or left waiting (then `None`; it
    /// comes back from [`WaitingRoom::next_answer`]).
    pub fn admit(
        &mut self,
        request: u32,
        spec: &RequestSpec,
        workload: &Workload,
    ) -> Option<Answer> {
        let class = spec
            .flow
            .and_then(|f| workload.classes.get(f.class as usize));
        let objective = class.and_then(|c| c.objective.as_deref());
        let fairness = spec.flow.and_then(|f| {
            self.fairness
                .get(f.class as usize)
                .and_then(|flows| flows.get(f.flow as usize))
                .map(|id| &**id)
        });
        let priority = self.controller.priority_of(objective);
        let flow = self.controller.flow_of(objective, fairness);
        let bytes = spec.prompt.text().len() as u64;
        match self.controller.admit(priority, flow, bytes, None) {
            Admission::Now => Some(Answer::Route(request, None)),
            Admission::Refused(refusal) => Some(Answer::Refuse(request, finish(refusal.reason))),
            Admission::Wait(waiting) => {
                let slot = self.waiting.get_mut(request as usize)?;
                *slot = Some(waiting);
                // The first poll registers the waker (or finds it already answered).
                self.poll(request)
            }
        }
    }

    /// Lets the controller dispatch and expire (a stream ended, metrics arrived, a time to
    /// live ran out).
    pub fn pump(&self) {
        self.controller.pump();
    }

    /// The next request the controller answered, if any.
    pub fn next_answer(&mut self) -> Option<Answer> {
        loop {
            let request = self.answered.lock().ok()?.pop_front()?;
            if let Some(answer) = self.poll(request) {
                return Some(answer);
            }
        }
    }

    fn poll(&mut self, request: u32) -> Option<Answer> {
        let waiting = self.waiting.get_mut(request as usize)?.as_mut()?;
        let waker = Waker::from(Arc::new(Wakeup {
            request,
            answered: Arc::clone(&self.answered),
        }));
        let mut context = Context::from_waker(&waker);
        let answer = match Pin::new(waiting).poll(&mut context) {
            Poll::Pending => return None,
            Poll::Ready(Ok(dispatch)) => Answer::Route(request, Some(dispatch)),
            Poll::Ready(Err(refusal)) => Answer::Refuse(request, finish(refusal.reason)),
        };
        self.waiting[request as usize] = None;
        Some(answer)
    }
}

fn finish(reason: Rejection) -> FinishReason {
    match reason {
        Rejection::BandFull => FinishReason::BandFull,
        Rejection::QueueFull => FinishReason::QueueFull,
        Rejection::Displaced => FinishReason::Displaced,
        Rejection::Expired => FinishReason::Expired,
    }
}
