//! The discrete-event simulator: one (experiment, policy, seed) run in virtual time.
//!
//! Events ([`events::Event`]) sit in a heap ordered by (time, sequence), so ties run FIFO
//! and the same inputs give the same run. What the scheduler sees is what it would see in
//! production: pod metrics as of the last scrape tick (each pod scraped on its own phase),
//! its own in-flight counts and prefix index always fresh, and the real director, profiles
//! and plugins making every pick ([`router::Router`]).
//!
//! A request's life: `Arrival` (routed at once) → `Enqueue` on its pod after the frontend
//! delay → engine steps (`StepEnd`) until its last token → `Done` after the streaming and
//! end overheads, when the EPP's in-flight slot is released.
//!
//! A policy with `flowControl` runs the EPP's flow controller ([`waiting`],
//! `epp_core::flowcontrol::FlowController`) on the same manual clock: an arrival is routed
//! at once only when nobody waits and the policy's saturation detector does not hold;
//! otherwise it waits, and the controller dispatches (highest band first, flows in turn)
//! whenever the simulator pumps it, which it does where the EPP's runtime would: a stream
//! end, a scrape (metrics arrive), an arrival, and a request's time to live running out.
//! A request expired, displaced by a higher band or refused at the room's limits fails
//! with that reason. TTFT counts from the arrival at the EPP, so it includes the wait.
//!
//! A policy with a precise prefix scorer also gets its engines' KV-cache events: each step's
//! events are published as one batch (`delivery`), which reaches the index (`KvBatch`) after
//! the experiment's `kv_events` delay, unless it is lost.

pub mod delivery;
pub mod events;
pub mod kv_event;
pub mod pod;
pub mod router;
pub mod waiting;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use epp_core::director::Decision;
use epp_core::prefix::PreciseIndexConfig;
use epp_engine::{EngineConfig, LinearStepTime, StepTime};

use crate::experiment::{Experiment, StepTimeSpec};
use crate::results::{FinishReason, PreciseRun, RequestRecord, RunResult};
use crate::workload::{Arrival, Workload};
use delivery::Delivery;
use events::{Event, EventQueue, Nanos, nanos, seconds};
use pod::Pod;
use router::Router;
use waiting::WaitingRoom;

/// How long after the last arrival the run may go on draining queues; requests still
/// running then are reported `unfinished`.
pub const MAX_DRAIN_S: f64 = 3600.0;

/// Knobs of one run that are not part of the experiment.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions<'p> {
    /// Counts requests resolved (completed or rejected), for a progress bar.
    pub progress: Option<&'p std::sync::atomic::AtomicU64>,
    /// Keep the director's decision records.
    pub record_decisions: bool,
    /// Check the engine invariants after every step (slow; for tests).
    pub check_invariants: bool,
}

/// Why a run could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("policy {policy}: {message}")]
    Policy { policy: String, message: String },
    #[error("invariant broken at t={time_s}s: {message}")]
    Invariant { time_s: f64, message: String },
}

/// The engine configuration of every pod of the experiment's cluster.
pub fn engine_config(experiment: &Experiment) -> EngineConfig {
    let cluster = &experiment.cluster;
    let capacity = cluster
        .kv_capacity_tokens
        .unwrap_or_else(|| cluster.profile.kv_capacity_tokens());
    let block_size = cluster.block_size.max(1);
    let step_time = match &cluster.step_time {
        StepTimeSpec::Roofline => StepTime::Roofline(cluster.profile.roofline()),
        StepTimeSpec::Linear {
            base_ms,
            per_prefill_token_us,
            per_decode_seq_us,
            per_context_token_ns,
        } => StepTime::Linear(LinearStepTime {
            base: Duration::from_secs_f64(base_ms / 1e3),
            per_prefill_token: Duration::from_secs_f64(per_prefill_token_us / 1e6),
            per_decode_seq: Duration::from_secs_f64(per_decode_seq_us / 1e6),
            per_context_token: Duration::from_secs_f64(per_context_token_ns / 1e9),
        }),
        StepTimeSpec::Constant(model) => StepTime::Constant(*model),
        StepTimeSpec::Table(table) => StepTime::Table(table.clone()),
    };
    EngineConfig {
        max_num_seqs: cluster.max_num_seqs.max(1),
        max_num_batched_tokens: cluster.max_num_batched_tokens.max(1),
        block_size,
        num_gpu_blocks: (capacity as usize / block_size).max(1),
        max_loras: 1,
        step_time,
        emit_cache_events: false,
    }
}

/// Where each request is in its life.
#[derive(Debug)]
struct Flight {
    record: RequestRecord,
    /// Holds the EPP's in-flight slot on the pod until the stream ends.
    decision: Option<Decision>,
}

/// One run's state.
struct Run<'a> {
    experiment: &'a Experiment,
    workload: &'a Workload,
    router: Router,
    pods: Vec<Pod>,
    queue: EventQueue,
    flights: Vec<Flight>,
    /// The next round of each request's session, for closed-loop arrivals.
    next_round: Vec<Option<u32>>,
    /// Requests waiting for a concurrency slot.
    held: VecDeque<u32>,
    in_flight: usize,
    /// Requests neither completed nor rejected yet.
    unresolved: usize,
    options: RunOptions<'a>,
    decision_us: Vec<f64>,
    samples: Vec<crate::results::PodSample>,
    /// Scrapes stop after this time, so an idle run ends.
    horizon: Nanos,
    /// Longest prompt + output a pod accepts (vLLM's `max_model_len`).
    max_model_len: usize,
    /// The KV-event transport, when the policy has a precise index.
    delivery: Option<Delivery>,
    /// Routed requests, and those whose pick was scored from a precise index.
    decisions: u64,
    decisions_precise: u64,
    /// The EPP's flow control, when the policy has it.
    room: Option<WaitingRoom>,
    /// Set while acting on the flow controller's answers (see `drain_answers`).
    draining: bool,
    now: Nanos,
}

/// Runs one policy of `experiment` on `workload` with `seed`.
pub fn run(
    experiment: &Experiment,
    policy: usize,
    workload: &Workload,
    seed: u64,
    options: RunOptions<'_>,
) -> Result<RunResult, SimError> {
    let started = Instant::now();
    let policy = &experiment.policies[policy];
    let pods = experiment.cluster.pods.max(1);
    let staleness = Duration::from_secs_f64(experiment.signals.metrics_staleness_s.max(0.0));
    let objectives: Vec<epp_core::datastore::Objective> = experiment
        .objectives
        .iter()
        .map(|o| epp_core::datastore::Objective {
            name: o.name.clone(),
            priority: o.priority,
        })
        .collect();
    let router = Router::new(
        &policy.config_text,
        pods,
        staleness,
        seed,
        options.record_decisions,
        &objectives,
    )
    .map_err(|message| SimError::Policy {
        policy: policy.name.clone(),
        message,
    })?;
    let mut config = engine_config(experiment);
    let delivery =
        (!router.precise_indexes().is_empty()).then(|| Delivery::new(policy.kv_events, pods, seed));
    config.emit_cache_events = delivery.is_some();
    let room = router
        .flow_controller()
        .map(|controller| WaitingRoom::new(Arc::clone(controller), workload));
    let mut run = Run::new(experiment, workload, router, &config, options);
    run.delivery = delivery;
    run.room = room;
    run.schedule_arrivals();
    run.schedule_scrapes();
    run.drive()?;
    let simulated_s = seconds(run.now);
    let records = run.router.take_records();
    let precise = run.precise_counters();
    let flow_control = run.room.is_some();
    Ok(RunResult {
        policy: policy.name.clone(),
        seed,
        requests: run.flights.into_iter().map(|f| f.record).collect(),
        pods: run.samples,
        stages: workload.stages.clone(),
        simulated_s,
        wall_s: started.elapsed().as_secs_f64(),
        decision_us: run.decision_us,
        decision_records: records,
        precise,
        classes: workload.classes.clone(),
        flow_control,
    })
}

impl<'a> Run<'a> {
    fn new(
        experiment: &'a Experiment,
        workload: &'a Workload,
        router: Router,
        config: &EngineConfig,
        options: RunOptions<'a>,
    ) -> Self {
        let pods = (0..experiment.cluster.pods.max(1))
            .map(|_| Pod::new(config))
            .collect();
        let flights = workload
            .requests
            .iter()
            .enumerate()
            .map(|(id, spec)| Flight {
                record: RequestRecord {
                    id: id as u64,
                    stage: spec.stage,
                    group: spec.group,
                    session: spec.session,
                    round: spec.round,
                    pod: None,
                    arrival_s: 0.0,
                    scheduled_s: None,
                    first_token_s: None,
                    completed_s: None,
                    input_tokens: u32::try_from(spec.prompt.tokens.len()).unwrap_or(u32::MAX),
                    cached_tokens: 0,
                    output_tokens: 0,
                    preemptions: 0,
                    finish: FinishReason::Unfinished,
                    class: spec.flow.map(|f| f.class),
                    flow: spec.flow.map(|f| f.flow),
                    dispatched_s: None,
                },
                decision: None,
            })
            .collect();
        let last_arrival = workload
            .requests
            .iter()
            .filter_map(|r| match r.arrival {
                Arrival::At(t) => Some(t),
                Arrival::AfterPrevious { .. } => None,
            })
            .fold(0.0, f64::max);
        Run {
            experiment,
            workload,
            router,
            pods,
            queue: EventQueue::default(),
            flights,
            next_round: next_rounds(workload),
            held: VecDeque::new(),
            in_flight: 0,
            unresolved: workload.requests.len(),
            options,
            decision_us: Vec::with_capacity(workload.requests.len()),
            samples: Vec::new(),
            horizon: nanos(last_arrival + MAX_DRAIN_S),
            max_model_len: max_model_len(experiment, config),
            delivery: None,
            decisions: 0,
            decisions_precise: 0,
            room: None,
            draining: false,
            now: 0,
        }
    }

    fn schedule_arrivals(&mut self) {
        for (i, spec) in self.workload.requests.iter().enumerate() {
            if let Arrival::At(t) = spec.arrival {
                self.queue.push(nanos(t), Event::Arrival(i as u32));
            }
        }
    }

    /// Each pod is scraped every interval, pod `p` offset by `p/pods` of an interval.
    fn schedule_scrapes(&mut self) {
        let interval = nanos(self.experiment.signals.scrape_interval_s).max(1);
        let pods = self.pods.len() as u64;
        for p in 0..pods {
            self.queue
                .push(interval * p / pods, Event::Scrape(p as u32));
        }
    }

    fn drive(&mut self) -> Result<(), SimError> {
        while let Some((at, event)) = self.queue.pop() {
            if at > self.horizon {
                break;
            }
            debug_assert!(at >= self.now, "the clock is monotone");
            self.now = at;
            match event {
                Event::Arrival(r) => self.arrive(r),
                Event::Enqueue { pod, request } => self.enqueue(pod, request),
                Event::StepEnd(pod) => self.step_end(pod)?,
                Event::Scrape(pod) => self.scrape(pod),
                Event::Done(r) => self.done(r),
                Event::KvBatch(slot) => self.deliver(slot),
                Event::Expire(_) => self.pump(),
            }
            if self.is_finished() {
                break;
            }
        }
        Ok(())
    }

    /// Every request has completed or been rejected.
    fn is_finished(&self) -> bool {
        self.unresolved == 0
    }

    /// A request is due. Beyond the workload's concurrency cap it waits in the client, as
    /// inference-perf's and SGLang's clients hold it: that wait is the client's schedule
    /// delay, and its latencies count from when it is actually sent.
    fn arrive(&mut self, request: u32) {
        let limit = self.workload.max_concurrency.unwrap_or(usize::MAX);
        if self.in_flight >= limit {
            self.held.push_back(request);
            return;
        }
        self.send(request);
    }

    /// The request reaches the EPP: routed at once, or (flow control) admitted by the
    /// flow controller, which may hold it.
    fn send(&mut self, request: u32) {
        self.in_flight += 1;
        self.flights[request as usize].record.arrival_s = seconds(self.now);
        let Some(room) = self.room.as_mut() else {
            self.route(request);
            return;
        };
        self.router.set_time(Duration::from_nanos(self.now));
        let spec = &self.workload.requests[request as usize];
        let ttl = room.ttl();
        match room.admit(request, spec, self.workload) {
            None => {
                let expires = self.now.saturating_add(nanos(ttl.as_secs_f64()));
                self.queue.push(expires, Event::Expire(request));
            }
            Some(answer) => self.answer(answer),
        }
        self.drain_answers();
    }

    /// Flow control: lets the controller dispatch and expire, then acts on its answers.
    fn pump(&mut self) {
        let Some(room) = self.room.as_ref() else {
            return;
        };
        self.router.set_time(Duration::from_nanos(self.now));
        room.pump();
        self.drain_answers();
    }

    /// Routes or fails every request the controller answered. Routing one (dropping its
    /// dispatch guard) lets the controller dispatch the next, so this runs until it stops.
    fn drain_answers(&mut self) {
        if self.draining {
            return; // the outer call picks up what this one would
        }
        self.draining = true;
        while let Some(answer) = self.room.as_mut().and_then(WaitingRoom::next_answer) {
            self.answer(answer);
        }
        self.draining = false;
    }

    fn answer(&mut self, answer: waiting::Answer) {
        match answer {
            waiting::Answer::Route(request, guard) => {
                self.flights[request as usize].record.dispatched_s = Some(seconds(self.now));
                self.route(request);
                drop(guard);
            }
            waiting::Answer::Refuse(request, reason) => {
                let flight = &mut self.flights[request as usize];
                flight.record.finish = reason;
                flight.decision = None;
                self.resolve(request);
            }
        }
    }

    /// Routes a request with the production director and sends it to the pod picked.
    fn route(&mut self, request: u32) {
        let spec = &self.workload.requests[request as usize];
        let objective = spec
            .flow
            .and_then(|f| self.workload.classes.get(f.class as usize))
            .and_then(|c| c.objective.as_deref());
        self.router.set_time(Duration::from_nanos(self.now));
        let id = request.to_string();
        let started = Instant::now();
        let routed = self.router.route(
            &id,
            &self.experiment.model_name,
            spec.prompt.text(),
            &spec.prompt.tokens,
            objective,
        );
        self.decision_us.push(started.elapsed().as_secs_f64() * 1e6);
        let flight = &mut self.flights[request as usize];
        let pod = match routed {
            Ok(decision) => {
                self.decisions += 1;
                self.decisions_precise += u64::from(decision.cache_prediction.is_some());
                let pod = self.router.pod_of(&decision);
                flight.decision = Some(decision);
                pod
            }
            Err(_) => None,
        };
        let Some(pod) = pod else {
            flight.record.finish = FinishReason::Rejected;
            flight.decision = None;
            self.resolve(request);
            return;
        };
        flight.record.pod = Some(pod as u32);
        let delay = nanos(self.experiment.cluster.overheads.frontend_s);
        let pod = pod as u32;
        self.queue
            .push(self.now + delay, Event::Enqueue { pod, request });
    }

    fn enqueue(&mut self, pod: u32, request: u32) {
        let spec = &self.workload.requests[request as usize];
        if spec.prompt.tokens.len() + spec.output_tokens.max(1) as usize > self.max_model_len {
            let flight = &mut self.flights[request as usize];
            flight.record.finish = FinishReason::TooLong;
            flight.decision = None;
            self.resolve(request);
            return;
        }
        let engine = &mut self.pods[pod as usize];
        engine.submit(
            request,
            &spec.prompt.tokens,
            spec.output_tokens,
            spec.output_key,
            self.now,
        );
        self.start_step(pod);
    }

    fn start_step(&mut self, pod: u32) {
        if let Some(end) = self.pods[pod as usize].start_step(self.now) {
            self.queue.push(end, Event::StepEnd(pod));
        }
    }

    fn step_end(&mut self, pod: u32) -> Result<(), SimError> {
        let overheads = self.experiment.cluster.overheads.clone();
        let per_token = overheads.per_token_s;
        let mut finished = Vec::new();
        for retired in self.pods[pod as usize].end_step(self.now) {
            let flight = &mut self.flights[retired.client.request as usize];
            if let Some(prediction) = flight
                .decision
                .as_ref()
                .and_then(|d| d.cache_prediction.as_ref())
            {
                prediction.observe(
                    retired.cached_tokens as u64,
                    u64::from(flight.record.input_tokens),
                );
            }
            let record = &mut flight.record;
            record.scheduled_s = retired.scheduled_at.map(|t| t.as_secs_f64());
            record.first_token_s = retired.first_token.map(|t| t.as_secs_f64() + per_token);
            let done = retired.finished_at.as_secs_f64() + per_token + overheads.end_s;
            record.completed_s = Some(done);
            record.cached_tokens = u32::try_from(retired.cached_tokens).unwrap_or(u32::MAX);
            record.output_tokens = u32::try_from(retired.output_tokens).unwrap_or(u32::MAX);
            record.preemptions = retired.preemptions;
            finished.push((retired.client.request, nanos(done)));
        }
        for (request, at) in finished {
            self.queue.push(at.max(self.now), Event::Done(request));
        }
        self.publish_cache_events(pod);
        if self.options.check_invariants {
            self.pods[pod as usize]
                .check_invariants()
                .map_err(|message| SimError::Invariant {
                    time_s: seconds(self.now),
                    message,
                })?;
        }
        self.start_step(pod);
        Ok(())
    }

    fn scrape(&mut self, pod: u32) {
        let (update, sample) = self.pods[pod as usize].scrape(pod, seconds(self.now));
        self.router.set_time(Duration::from_nanos(self.now));
        self.router.endpoint(pod as usize).store_metrics(update);
        self.samples.push(sample);
        let interval = nanos(self.experiment.signals.scrape_interval_s).max(1);
        self.queue.push(self.now + interval, Event::Scrape(pod));
        self.pump();
    }

    /// The step's cache events leave the pod as one batch (policies with a precise index).
    fn publish_cache_events(&mut self, pod: u32) {
        let Some(delivery) = self.delivery.as_mut() else {
            return;
        };
        let events = self.pods[pod as usize].take_cache_events();
        if let Some((at, slot)) = delivery.publish(pod, events, self.now) {
            self.queue.push(at, Event::KvBatch(slot));
        }
    }

    /// A batch reaches the EPP: every precise index of the policy applies it.
    fn deliver(&mut self, slot: u32) {
        let Some(batch) = self.delivery.as_mut().and_then(|d| d.take(slot)) else {
            return;
        };
        self.router.set_time(Duration::from_nanos(self.now));
        self.router
            .apply_kv_batch(batch.pod as usize, batch.seq, &batch.batch);
    }

    /// The run's KV-event and precise-index counters, when the policy has a precise index.
    fn precise_counters(&self) -> Option<PreciseRun> {
        let delivery = self.delivery.as_ref()?;
        let mut out = delivery.counters().clone();
        out.decisions = self.decisions;
        out.decisions_scored_precisely = self.decisions_precise;
        let now = Duration::from_nanos(self.now);
        for index in self.router.precise_indexes() {
            let stats = index.stats(now);
            out.batches_received += stats.batches;
            out.events_applied += stats.events_applied;
            for (reason, n) in stats.events_dropped {
                *out.events_dropped.entry(reason.to_string()).or_default() += n;
            }
            out.gaps += stats.gaps;
            out.missed_batches += stats.missed_batches;
            for (reason, n) in stats.fallback_switches {
                *out.fallback_switches.entry(reason.to_string()).or_default() += n;
            }
            out.predicted_cached_tokens += stats.predicted_cached_tokens;
            out.observed_cached_tokens += stats.observed_cached_tokens;
            out.entries += stats.entries as u64;
            out.keys += stats.keys as u64;
            // Not `stats.bytes`: it measures hash-table capacity, which depends on the
            // process's random hasher seed; the budgeted size is a function of the run.
            out.bytes += (stats.entries * PreciseIndexConfig::BYTES_PER_ENTRY) as u64;
            out.unreliable_endpoints += stats.unreliable_endpoints as u64;
        }
        Some(out)
    }

    /// The client has the whole response: the stream ends, freeing the EPP's in-flight slot.
    fn done(&mut self, request: u32) {
        let flight = &mut self.flights[request as usize];
        flight.record.finish = FinishReason::Length;
        flight.decision = None;
        self.resolve(request);
        self.pump();
    }

    /// A request is over (completed or rejected): its concurrency slot goes to the next held
    /// request and, in a closed loop, its session's next round is sent after the think time.
    fn resolve(&mut self, request: u32) {
        self.unresolved -= 1;
        if let Some(progress) = self.options.progress {
            progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.release_slot();
        if let Some(next) = self.next_round[request as usize]
            && let Arrival::AfterPrevious { think_s } =
                self.workload.requests[next as usize].arrival
        {
            self.queue
                .push(self.now + nanos(think_s), Event::Arrival(next));
        }
    }

    fn release_slot(&mut self) {
        self.in_flight -= 1;
        let limit = self.workload.max_concurrency.unwrap_or(usize::MAX);
        while self.in_flight < limit {
            let Some(next) = self.held.pop_front() else {
                break;
            };
            self.send(next);
        }
    }
}

/// vLLM's `max_model_len`: the experiment's, else the KV capacity (vLLM refuses to start
/// with a longer one), never more than the capacity.
fn max_model_len(experiment: &Experiment, config: &EngineConfig) -> usize {
    let capacity = config.num_gpu_blocks.saturating_mul(config.block_size);
    experiment
        .cluster
        .max_model_len
        .map_or(capacity, |len| len.min(capacity))
}

/// For each request, the next request of its session that waits for it to complete.
fn next_rounds(workload: &Workload) -> Vec<Option<u32>> {
    let mut next = vec![None; workload.requests.len()];
    let mut last_of_session = std::collections::BTreeMap::new();
    for (i, spec) in workload.requests.iter().enumerate() {
        let Some(session) = spec.session else {
            continue;
        };
        if let Some(previous) = last_of_session.insert(session, i as u32)
            && matches!(spec.arrival, Arrival::AfterPrevious { .. })
        {
            next[previous as usize] = Some(i as u32);
        }
    }
    next
}

#[cfg(test)]
mod tests;
