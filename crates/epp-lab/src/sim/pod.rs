//! One simulated vLLM pod: an `epp_engine` engine stepped in virtual time, and what the
//! EPP's scraper would read from its `/metrics` page.

use std::time::Duration;

use epp_core::datastore::{CacheGeometry, MetricsUpdate};
use epp_engine::{Client, Emitted, Engine, EngineConfig, NewSequence, Retired};

use super::events::Nanos;
use crate::results::PodSample;
use crate::workload::output_token;

/// The engine's view of one lab request: its output tokens are the workload's, so a later
/// multi-turn round that contains this answer hits the cache.
#[derive(Debug)]
pub struct LabClient {
    /// Index of the request in the workload.
    pub request: u32,
    output_key: u64,
}

impl Client for LabClient {
    fn output_token(&mut self, n: usize) -> u32 {
        output_token(self.output_key, u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn emit(&mut self, _token: Emitted) -> bool {
        true // the request's times are read from the retired sequence
    }
}

/// A pod: its engine and whether a step is in flight.
#[derive(Debug)]
pub struct Pod {
    engine: Engine<LabClient>,
    block_size: usize,
    num_blocks: usize,
    stepping: bool,
}

impl Pod {
    pub fn new(config: &EngineConfig) -> Self {
        Pod {
            engine: Engine::new(config),
            block_size: config.block_size,
            num_blocks: config.num_gpu_blocks,
            stepping: false,
        }
    }

    /// Queues a request's prompt.
    pub fn submit(&mut self, request: u32, prompt: &[u32], output: u32, key: u64, now: Nanos) {
        let output = output.max(1) as usize;
        let sequence = NewSequence {
            adapter: None,
            hash_seed: 0,
            prompt: prompt.to_vec(),
            output_len: output,
            max_tokens: output,
            client: LabClient {
                request,
                output_key: key,
            },
        };
        self.engine.submit([sequence], Duration::from_nanos(now));
    }

    /// Starts a step if none is running and there is work; returns when it ends.
    pub fn start_step(&mut self, now: Nanos) -> Option<Nanos> {
        if self.stepping {
            return None;
        }
        let step = self.engine.schedule(Duration::from_nanos(now))?;
        self.stepping = true;
        // A step takes at least a nanosecond, so virtual time always moves.
        let length = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX).max(1);
        Some(now.saturating_add(length))
    }

    /// Ends the running step: tokens, frees, retirements.
    pub fn end_step(&mut self, now: Nanos) -> impl Iterator<Item = Retired<LabClient>> + '_ {
        self.stepping = false;
        self.engine.complete(Duration::from_nanos(now));
        self.engine.take_retired()
    }

    /// The cache events of the steps since the last call, as vLLM would publish them.
    pub fn take_cache_events(&mut self) -> Vec<epp_kvevents::KvEvent> {
        self.engine
            .take_cache_events()
            .map(super::kv_event::to_kv_event)
            .collect()
    }

    /// One scrape of the pod: what the EPP's scraper would store (every field present, as
    /// the page always carries them) and the sample for the time series, from one snapshot.
    pub fn scrape(&self, pod: u32, time_s: f64) -> (MetricsUpdate, PodSample) {
        let snapshot = self.engine.snapshot();
        let update = MetricsUpdate {
            waiting_queue_size: Some(snapshot.waiting as u64),
            running_requests: Some(snapshot.running as u64),
            kv_cache_usage: Some(snapshot.kv_usage),
            lora: None,
            cache: Some(CacheGeometry {
                block_size: u32::try_from(self.block_size).unwrap_or(u32::MAX),
                num_blocks: self.num_blocks as u64,
            }),
        };
        let sample = PodSample {
            time_s,
            pod,
            waiting: snapshot.waiting as u32,
            running: snapshot.running as u32,
            kv_usage: snapshot.kv_usage,
            prefix_queries: snapshot.counters.prefix_queries,
            prefix_hits: snapshot.counters.prefix_hits,
            preemptions: snapshot.counters.preemptions,
        };
        (update, sample)
    }

    /// Checks the engine's invariants (allocated + free = total, and more).
    pub fn check_invariants(&self) -> Result<(), String> {
        self.engine.check_invariants()
    }

    /// Whether requests are running or waiting.
    pub fn has_work(&self) -> bool {
        self.engine.has_work()
    }
}
