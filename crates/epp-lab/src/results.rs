//! What one simulated run produces, before any aggregation: the records the report module
//! turns into `summary.json`, inference-perf-shaped stage files, CSVs and plots.
//!
//! Times are seconds of virtual time since the start of the run (`f64`), so records print
//! the same on every machine.

use std::collections::BTreeMap;

use serde::Serialize;

/// Why a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Produced its output length.
    Length,
    /// The scheduler found no endpoint (counted as a failure).
    Rejected,
    /// Prompt plus output exceed the pod's `max_model_len`: vLLM answers 400 before the
    /// engine sees it (counted as a failure).
    TooLong,
    /// Still running when the run ended (counted as a failure).
    Unfinished,
    /// Flow control: refused at the EPP's waiting room, its band at its limit.
    BandFull,
    /// Flow control: refused, the waiting room full with nothing of lower priority to displace.
    QueueFull,
    /// Flow control: pushed out of the waiting room by a request of higher priority.
    Displaced,
    /// Flow control: waited in the EPP longer than its time to live.
    Expired,
}

impl FinishReason {
    /// The word in `requests.csv` and the reports.
    pub fn label(self) -> &'static str {
        match self {
            FinishReason::Length => "length",
            FinishReason::Rejected => "rejected",
            FinishReason::TooLong => "too_long",
            FinishReason::Unfinished => "unfinished",
            FinishReason::BandFull => "band_full",
            FinishReason::QueueFull => "queue_full",
            FinishReason::Displaced => "displaced",
            FinishReason::Expired => "expired",
        }
    }
}

/// One request's life, as the per-request CSV prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestRecord {
    /// Position in arrival order (0-based).
    pub id: u64,
    /// The load stage the request was sent in (0-based, warm-up included when the workload has one).
    pub stage: u32,
    /// The shared-prefix group, when the workload has groups.
    pub group: Option<u32>,
    /// The multi-turn session and round, when the workload has sessions.
    pub session: Option<u32>,
    pub round: Option<u32>,
    /// The pod that served it (index into the cluster), `None` when rejected.
    pub pod: Option<u32>,
    /// When the client sent it (after any wait for a concurrency slot, which the load
    /// generators count as schedule delay, not latency).
    pub arrival_s: f64,
    /// When the engine first scheduled it (after routing and the frontend delay).
    pub scheduled_s: Option<f64>,
    /// When its first output token was emitted.
    pub first_token_s: Option<f64>,
    /// When its last token was emitted.
    pub completed_s: Option<f64>,
    pub input_tokens: u32,
    /// Prompt tokens served from the pod's prefix cache at the first admission.
    pub cached_tokens: u32,
    pub output_tokens: u32,
    pub preemptions: u32,
    pub finish: FinishReason,
    /// Its class and flow in a multi-class workload.
    pub class: Option<u32>,
    pub flow: Option<u32>,
    /// With flow control: when it left the EPP's waiting room to be routed (its arrival
    /// when it did not wait); `None` if it never left or the policy has no flow control.
    pub dispatched_s: Option<f64>,
}

impl RequestRecord {
    /// Time to first token, seconds.
    pub fn ttft_s(&self) -> Option<f64> {
        Some(self.first_token_s? - self.arrival_s)
    }

    /// End to end, seconds.
    pub fn e2e_s(&self) -> Option<f64> {
        Some(self.completed_s? - self.arrival_s)
    }

    /// Time per output token after the first, seconds; `None` with fewer than 2 tokens.
    pub fn tpot_s(&self) -> Option<f64> {
        if self.output_tokens < 2 {
            return None;
        }
        Some((self.completed_s? - self.first_token_s?) / f64::from(self.output_tokens - 1))
    }

    /// Time from arrival to the first engine step, seconds.
    pub fn queue_wait_s(&self) -> Option<f64> {
        Some(self.scheduled_s? - self.arrival_s)
    }

    /// Time in the EPP's waiting room (flow control), seconds.
    pub fn epp_wait_s(&self) -> Option<f64> {
        Some(self.dispatched_s? - self.arrival_s)
    }

    /// Whether the request completed.
    pub fn succeeded(&self) -> bool {
        self.finish == FinishReason::Length
    }
}

/// One pod's state at one scrape tick.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PodSample {
    pub time_s: f64,
    pub pod: u32,
    pub waiting: u32,
    pub running: u32,
    /// 1 − free/total, as vLLM reports it.
    pub kv_usage: f64,
    /// Cumulative prefix-cache queries and hits, tokens.
    pub prefix_queries: u64,
    pub prefix_hits: u64,
    /// Cumulative preemptions.
    pub preemptions: u64,
}

/// One load stage as it was offered.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageInfo {
    pub index: u32,
    /// Offered rate, requests per second (`None` for "as fast as possible" or a trace).
    pub rate: Option<f64>,
    pub start_s: f64,
    pub duration_s: f64,
    /// A warm-up stage is reported but left out of `overall` and of plots.
    pub warmup: bool,
}

/// Everything one (policy, seed) run produced.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunResult {
    /// The policy's name as the experiment gives it.
    pub policy: String,
    pub seed: u64,
    /// Requests in arrival order.
    pub requests: Vec<RequestRecord>,
    /// Pod samples in time order (then pod order).
    pub pods: Vec<PodSample>,
    pub stages: Vec<StageInfo>,
    /// Virtual seconds from the first arrival to the last event.
    pub simulated_s: f64,
    /// Wall-clock seconds the run took (not part of the deterministic outputs).
    pub wall_s: f64,
    /// Wall-clock microseconds per scheduling decision, one per routed request
    /// (not part of the deterministic outputs).
    pub decision_us: Vec<f64>,
    /// Decision records (JSON lines, the `epp --decision-records-file` format), when asked for.
    pub decision_records: Option<Vec<String>>,
    /// KV-event delivery and precise-index counters, for a policy with a precise scorer.
    pub precise: Option<PreciseRun>,
    /// The workload's classes (empty for a single workload).
    pub classes: Vec<crate::workload::classes::ClassInfo>,
    /// Whether the policy had flow control (a waiting room in the EPP).
    pub flow_control: bool,
}

/// One run's KV-event traffic and what its precise index made of it (index counters are
/// summed over the policy's precise scorers; the lab delivers every batch to each).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PreciseRun {
    /// Batches (one per engine step with cache events) and events the engines published.
    pub batches_published: u64,
    pub events_published: u64,
    /// Of those, lost in transit by the `kv_events.drop_ratio` model.
    pub batches_lost: u64,
    pub events_lost: u64,
    /// Batches and events the index applied, and events it refused, by reason.
    pub batches_received: u64,
    pub events_applied: u64,
    pub events_dropped: BTreeMap<String, u64>,
    /// Sequence gaps the index saw, and the batches they skipped.
    pub gaps: u64,
    pub missed_batches: u64,
    /// Switches of an endpoint to the fallback, by reason.
    pub fallback_switches: BTreeMap<String, u64>,
    /// Routed requests, and those whose picked endpoint was scored from the precise index.
    pub decisions: u64,
    pub decisions_scored_precisely: u64,
    /// For those: prompt tokens the index predicted cached on the pick, and the engine's
    /// actual prefix hits.
    pub predicted_cached_tokens: u64,
    pub observed_cached_tokens: u64,
    /// The index at the end of the run: claims, distinct keys, and its size as the memory
    /// budget counts it (`entries × PreciseIndexConfig::BYTES_PER_ENTRY`; the measured size
    /// depends on the process's hasher seed, so it is not reported).
    pub entries: u64,
    pub keys: u64,
    pub bytes: u64,
    pub unreliable_endpoints: u64,
}
