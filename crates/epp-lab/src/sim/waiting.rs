//! The EPP's waiting room in virtual time: `epp_core`'s [`FlowQueues`] holding request
//! indexes, with each request's band and flow taken as the EPP takes them.
//!
//! The band is the priority of the objective the request's class names (0 for none). The
//! flow is the class's fairness id (`<class>/<flow>`) when the policy trusts the gateway's
//! fairness header (`flowControl.trustFairnessHeader`), else the objective (one flow per
//! objective), as in the EPP. The byte size is the prompt's text, the body's share that the
//! lab models.

use std::time::Duration;

use epp_core::config::FlowControlSettings;
use epp_core::flowcontrol::{Arrival, FlowQueues, Rejection};

use crate::experiment::Experiment;
use crate::results::FinishReason;
use crate::workload::{RequestSpec, Workload};

/// The flow of requests outside any class (a single `workload:`).
const DEFAULT_FLOW: &str = "default";

/// Waiting requests of one run, and what the room needs to place each.
pub struct WaitingRoom {
    queues: FlowQueues<u32>,
    /// Flow keys by class, then flow.
    flows: Vec<Vec<Box<str>>>,
    /// Band (priority) by class.
    priorities: Vec<i32>,
    ttl: Duration,
    /// Set while the simulator dispatches, so a dispatch that frees a client slot does not
    /// start a second dispatch loop inside the first.
    pub pumping: bool,
}

impl WaitingRoom {
    pub fn new(
        settings: &FlowControlSettings,
        experiment: &Experiment,
        workload: &Workload,
    ) -> Self {
        let flows = workload
            .classes
            .iter()
            .map(|class| {
                (0..class.flows.max(1))
                    .map(
                        |flow| match (settings.trust_fairness_header, &class.objective) {
                            (true, _) => format!("{}/{flow}", class.name).into_boxed_str(),
                            (false, Some(objective)) => objective.clone().into_boxed_str(),
                            (false, None) => DEFAULT_FLOW.into(),
                        },
                    )
                    .collect()
            })
            .collect();
        let priorities = workload
            .classes
            .iter()
            .map(|class| experiment.priority(class.objective.as_deref()))
            .collect();
        WaitingRoom {
            queues: FlowQueues::new(settings.queue.clone()),
            flows,
            priorities,
            ttl: settings.queue.ttl,
            pumping: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Puts `request` in the room at `now`. `Ok`: when its time to live ends, and the
    /// requests it displaced; `Err`: why it was refused.
    #[allow(clippy::type_complexity)]
    pub fn enqueue(
        &mut self,
        request: u32,
        spec: &RequestSpec,
        now: Duration,
    ) -> Result<(Duration, Vec<(u32, FinishReason)>), FinishReason> {
        let (priority, flow) = match spec.flow {
            Some(tag) => (
                self.priorities
                    .get(tag.class as usize)
                    .copied()
                    .unwrap_or(0),
                self.flows
                    .get(tag.class as usize)
                    .and_then(|flows| flows.get(tag.flow as usize))
                    .map_or(DEFAULT_FLOW, |f| &**f),
            ),
            None => (0, DEFAULT_FLOW),
        };
        let arrival = Arrival {
            priority,
            flow,
            bytes: spec.prompt.text().len() as u64,
            deadline: None,
        };
        match self.queues.enqueue(arrival, request, now) {
            Ok((_, displaced)) => Ok((
                now.saturating_add(self.ttl),
                displaced
                    .into_iter()
                    .map(|r| (r.payload, finish(r.reason)))
                    .collect(),
            )),
            Err((_, reason)) => Err(finish(reason)),
        }
    }

    /// Requests whose time to live ended by `now`.
    pub fn expire(&mut self, now: Duration) -> Vec<(u32, FinishReason)> {
        self.queues
            .expire(now)
            .into_iter()
            .map(|r| (r.payload, finish(r.reason)))
            .collect()
    }

    /// The next request to route.
    pub fn dispatch(&mut self, now: Duration) -> Option<u32> {
        self.queues.dispatch(now).map(|d| d.payload)
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
