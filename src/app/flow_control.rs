//! Flow control at startup: the controller the config asks for, its metrics, and the
//! dispatcher task that releases waiting requests as the pool frees up and expires those
//! past their time to live.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use epp_core::config::EndpointPickerConfig;
use epp_core::datastore::Datastore;
use epp_core::director::SaturationThresholds;
use epp_core::flowcontrol::FlowController;
use epp_core::flowcontrol::metrics::{FlowCollector, MetricsObserver};
use epp_core::telemetry::metrics::{EppMetrics, FlowMetrics};

/// How often the dispatcher looks at the pool while requests wait. Requests ending and
/// new arrivals also dispatch at once; this catches what only the metrics show (a scrape
/// with headroom, a new endpoint) and expiries.
const TICK: Duration = Duration::from_millis(5);

/// The controller when the config has a `flowControl` section, with its metrics
/// registered and its dispatcher running until `shutdown`.
pub fn start(
    config: &EndpointPickerConfig,
    thresholds: SaturationThresholds,
    datastore: &Arc<Datastore>,
    metrics: &Arc<EppMetrics>,
    shutdown: watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Option<Arc<FlowController>> {
    let settings = config.flow_control.clone()?;
    let flow_metrics = Arc::new(FlowMetrics::default());
    let detector = config.detector.build(thresholds);
    tracing::info!(
        detector = detector.name(),
        max_requests = settings.queue.total.requests,
        ttl = ?settings.queue.ttl,
        "flow control on: requests wait in the EPP while the pool is saturated"
    );
    let controller = FlowController::with_observer(
        settings,
        detector,
        Arc::clone(datastore),
        Box::new(MetricsObserver(Arc::clone(&flow_metrics))),
    );
    metrics.register_collector(Arc::new(FlowCollector {
        metrics: flow_metrics,
        controller: Arc::clone(&controller),
    }));
    tasks.push(tokio::spawn(dispatch(Arc::clone(&controller), shutdown)));
    Some(controller)
}

async fn dispatch(controller: Arc<FlowController>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => controller.pump(),
            _ = shutdown.changed() => return,
        }
    }
}
