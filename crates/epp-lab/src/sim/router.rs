//! The production routing path, in process: `epp_core`'s datastore, config, director and
//! plugins, on a manual clock that the simulator moves.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use epp_core::config::{EndpointPickerConfig, FlowControlSettings};
use epp_core::datastore::{Datastore, Endpoint, EndpointSpec, Objective, PoolInfo};
use epp_core::director::records::DecisionRecorder;
use epp_core::director::{
    Decision, Director, DirectorSettings, PickError, RoutingRequest, SaturationThresholds,
};
use epp_core::flowcontrol::FlowController;
use epp_core::prefix::PreciseIndex;
use epp_core::request::RequestHeaders;
use epp_core::time::{Clock, ManualClock};
use epp_kvevents::EventBatch;

/// The port every simulated pod serves on.
const POD_PORT: u16 = 8000;

/// The address of pod `index`: 10.0.x.y:8000.
pub fn pod_address(index: usize) -> SocketAddr {
    let [_, _, hi, lo] = (index as u32 + 1).to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, hi, lo)), POD_PORT)
}

/// The EPP as the simulator drives it.
pub struct Router {
    clock: Arc<ManualClock>,
    director: Director,
    /// Endpoints by pod index.
    endpoints: Vec<Arc<Endpoint>>,
    headers: RequestHeaders,
    records: Option<Receiver<String>>,
    /// The precise indexes of the policy's `precise-prefix-cache-scorer`s (fed by KV events).
    precise: Vec<Arc<PreciseIndex>>,
    /// The EPP's flow controller, when the policy has a `flowControl` section.
    flow_control: Option<Arc<FlowController>>,
}

impl Router {
    /// A router over `pods` endpoints with the policy's config; decisions draw from `seed`.
    pub fn new(
        config_text: &str,
        pods: usize,
        metrics_staleness: Duration,
        seed: u64,
        record_decisions: bool,
        objectives: &[Objective],
    ) -> Result<Router, String> {
        let config = EndpointPickerConfig::from_text(config_text).map_err(|e| e.to_string())?;
        let clock = Arc::new(ManualClock::new());
        let datastore = Arc::new(Datastore::with_clock(pods.max(1), clock.clone()));
        for objective in objectives {
            datastore.set_objective(objective.clone());
        }
        for observer in config.endpoint_observers() {
            datastore.add_observer(observer);
        }
        datastore.set_pool(PoolInfo {
            name: "lab".into(),
            namespace: "lab".into(),
            target_ports: vec![POD_PORT],
        });
        let endpoints = (0..pods)
            .map(|i| datastore.upsert_endpoint(EndpointSpec::from_address(pod_address(i))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        datastore.set_synced(true);
        let thresholds = config.saturation.apply(SaturationThresholds::default());
        let settings = DirectorSettings {
            saturation: thresholds,
            metrics_staleness,
        };
        let flow_control = config
            .flow_control
            .clone()
            .map(|settings: FlowControlSettings| {
                FlowController::new(
                    settings,
                    config.detector.build(thresholds),
                    Arc::clone(&datastore),
                )
            });
        let precise = config
            .kv_event_subscriptions()
            .into_iter()
            .map(|s| s.index)
            .collect();
        let director = Director::new(datastore, Arc::clone(&config.scheduler), settings);
        let director = director.with_seed(seed);
        let (director, records) = match record_decisions {
            true => {
                let (recorder, receiver) = DecisionRecorder::to_memory();
                (director.with_records(recorder), Some(receiver))
            }
            false => (director, None),
        };
        Ok(Router {
            clock,
            director,
            endpoints,
            headers: RequestHeaders::new(),
            records,
            precise,
            flow_control,
        })
    }

    /// The EPP's flow controller (`None`: the policy routes every request at once).
    pub fn flow_controller(&self) -> Option<&Arc<FlowController>> {
        self.flow_control.as_ref()
    }

    /// Moves the EPP's clock to `now`.
    pub fn set_time(&self, now: Duration) {
        self.clock.set(now);
    }

    /// Routes one request at the current time. `tokens` are the prompt's token ids, exactly
    /// what the engine hashes (the EPP gets them from the tokenizer).
    pub fn route(
        &self,
        id: &str,
        model: &str,
        prompt: &str,
        tokens: &[u32],
        objective: Option<&str>,
    ) -> Result<Decision, PickError> {
        let mut request = RoutingRequest::new(id, model, Some(prompt), &self.headers);
        request.tokens = Some(tokens);
        request.objective = objective;
        self.director.route(&request)
    }

    /// The policy's precise indexes (empty: the policy reads no KV events).
    pub fn precise_indexes(&self) -> &[Arc<PreciseIndex>] {
        &self.precise
    }

    /// Delivers pod `index`'s batch `seq` to every precise index, at the current time.
    pub fn apply_kv_batch(&self, index: usize, seq: u64, batch: &EventBatch) {
        let endpoint = self.endpoints[index].id();
        let now = self.clock.now();
        for precise in &self.precise {
            precise.apply_batch(endpoint, seq, batch, now);
        }
    }

    /// The pod a decision picked.
    pub fn pod_of(&self, decision: &Decision) -> Option<usize> {
        let picked = decision.primary().address();
        self.endpoints.iter().position(|e| e.address() == picked)
    }

    /// Pod `index`'s endpoint, for metric updates.
    pub fn endpoint(&self, index: usize) -> &Arc<Endpoint> {
        &self.endpoints[index]
    }

    /// The decision records so far, with the wall-clock decision time zeroed so that the
    /// same seed gives the same file.
    pub fn take_records(&self) -> Option<Vec<String>> {
        let receiver = self.records.as_ref()?;
        let lines = receiver.try_iter().map(|line| {
            match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(mut value) => {
                    value["decision_micros"] = serde_json::Value::from(0);
                    value.to_string()
                }
                Err(_) => line,
            }
        });
        Some(lines.collect())
    }
}
