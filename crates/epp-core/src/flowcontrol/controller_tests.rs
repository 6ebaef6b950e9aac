use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::*;
use crate::datastore::fixtures::TestEndpoint;
use crate::flowcontrol::queues::{Limits, QueueConfig};
use crate::flowcontrol::saturation::ConcurrencyDetector;
use crate::time::{Clock, ManualClock};

fn settings(queue: QueueConfig) -> FlowControlSettings {
    FlowControlSettings {
        queue,
        deadline_header: crate::config::DEFAULT_DEADLINE_HEADER.into(),
        trust_fairness_header: false,
    }
}

struct World {
    clock: Arc<ManualClock>,
    store: Arc<Datastore>,
    controller: Arc<FlowController>,
}

/// `endpoints` endpoints that are full at one in-flight request each.
fn world(endpoints: usize, queue: QueueConfig) -> World {
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(Datastore::with_clock(
        100,
        Arc::clone(&clock) as Arc<dyn Clock>,
    ));
    for i in 0..endpoints {
        store
            .upsert_endpoint(TestEndpoint::new(&format!("10.0.0.{}:8000", i + 1)).spec())
            .expect("add");
    }
    let detector = ConcurrencyDetector {
        max_requests: 1,
        max_tokens: u64::MAX,
    };
    let controller = FlowController::new(settings(queue), Box::new(detector), Arc::clone(&store));
    World {
        clock,
        store,
        controller,
    }
}

/// Occupies endpoint `i` with one in-flight request until the guard drops.
fn occupy(world: &World, i: usize) -> crate::datastore::InFlightGuard {
    world.store.snapshot().endpoints()[i].start_request()
}

fn poll(waiting: &mut Waiting) -> Poll<Result<Dispatch, Refusal>> {
    Pin::new(waiting).poll(&mut Context::from_waker(Waker::noop()))
}

fn wait(admission: Admission) -> Waiting {
    match admission {
        Admission::Wait(w) => w,
        Admission::Now => panic!("admitted at once"),
        Admission::Refused(r) => panic!("refused: {r:?}"),
    }
}

fn dispatched(waiting: &mut Waiting) -> Dispatch {
    match poll(waiting) {
        Poll::Ready(Ok(dispatch)) => dispatch,
        other => panic!("not dispatched: {:?}", other.map(|r| r.map(|d| d.waited))),
    }
}

fn refused(waiting: &mut Waiting) -> Refusal {
    match poll(waiting) {
        Poll::Ready(Err(refusal)) => refusal,
        other => panic!("not refused: {:?}", other.map(|r| r.map(|d| d.waited))),
    }
}

#[test]
fn routes_at_once_while_the_pool_has_room_and_nobody_waits() {
    let w = world(2, QueueConfig::default());
    assert!(matches!(
        w.controller.admit(0, "f", 10, None),
        Admission::Now
    ));
    let _busy = occupy(&w, 0);
    assert!(matches!(
        w.controller.admit(0, "f", 10, None),
        Admission::Now
    ));
    let _busy2 = occupy(&w, 1);
    let mut waiting = wait(w.controller.admit(0, "f", 10, None));
    assert!(poll(&mut waiting).is_pending());
    assert_eq!(w.controller.stats().waiting, 1);
}

#[test]
fn a_finished_request_lets_the_highest_band_in_first() {
    let w = world(1, QueueConfig::default());
    let busy = occupy(&w, 0);
    let mut batch = wait(w.controller.admit(0, "batch", 10, None));
    let mut chat = wait(w.controller.admit(10, "chat", 10, None));
    // Nobody overtakes the waiting room, even when capacity is free for a moment.
    w.clock.advance(Duration::from_millis(30));
    drop(busy);
    w.controller.pump();
    let chat_go = dispatched(&mut chat);
    assert_eq!(chat_go.waited, Duration::from_millis(30));
    assert!(poll(&mut batch).is_pending(), "one slot, one dispatch");
    // Routed: the endpoint is busy again; batch waits for the next slot.
    let routed = occupy(&w, 0);
    drop(chat_go);
    assert!(poll(&mut batch).is_pending());
    drop(routed);
    w.controller.pump();
    let _batch_go = dispatched(&mut batch);
    assert_eq!(w.controller.stats().waiting, 0);
}

#[test]
fn dispatch_waits_for_woken_requests_to_be_routed() {
    // Free capacity on both endpoints, but a woken request counts in flight only once
    // routed: at most one dispatch per endpoint until then.
    let w = world(2, QueueConfig::default());
    let busy = [occupy(&w, 0), occupy(&w, 1)];
    let mut waiting: Vec<Waiting> = (0..4)
        .map(|_| wait(w.controller.admit(0, "f", 1, None)))
        .collect();
    drop(busy);
    w.controller.pump();
    // Keep the dispatches: dropping one means "routed" and lets the next one go.
    let polls: Vec<_> = waiting.iter_mut().map(poll).collect();
    let ready: Vec<bool> = polls.iter().map(Poll::is_ready).collect();
    assert_eq!(ready, [true, true, false, false]);
    drop(polls);
    let polls: Vec<_> = waiting[2..].iter_mut().map(poll).collect();
    assert!(polls.iter().all(Poll::is_ready), "routed: the next two go");
}

#[test]
fn a_client_that_leaves_takes_its_place_with_it() {
    let w = world(1, QueueConfig::default());
    let busy = occupy(&w, 0);
    let gone = wait(w.controller.admit(0, "f", 100, None));
    let mut stays = wait(w.controller.admit(0, "f", 100, None));
    assert_eq!(w.controller.stats().waiting_bytes, 200);
    drop(gone);
    assert_eq!(w.controller.stats().waiting_bytes, 100);
    drop(busy);
    w.controller.pump();
    drop(dispatched(&mut stays));
    assert_eq!(w.controller.stats().waiting, 0);

    // Dispatched but dropped before being polled: the slot comes back.
    let busy = occupy(&w, 0);
    let unpolled = wait(w.controller.admit(0, "f", 1, None));
    let mut next = wait(w.controller.admit(0, "f", 1, None));
    drop(busy);
    w.controller.pump();
    drop(unpolled);
    w.controller.pump();
    drop(dispatched(&mut next));
}

#[test]
fn expired_requests_get_429_and_503_when_the_pool_is_empty() {
    let w = world(
        1,
        QueueConfig {
            ttl: Duration::from_millis(100),
            ..QueueConfig::default()
        },
    );
    let _busy = occupy(&w, 0);
    let mut waiting = wait(w.controller.admit(0, "f", 1, None));
    assert_eq!(w.controller.next_expiry(), Some(Duration::from_millis(100)));
    w.clock.advance(Duration::from_millis(100));
    w.controller.pump();
    let refusal = refused(&mut waiting);
    assert_eq!(refusal.reason, Rejection::Expired);
    assert_eq!(refusal.status(), 429);

    let empty = world(
        0,
        QueueConfig {
            ttl: Duration::from_millis(100),
            ..QueueConfig::default()
        },
    );
    let mut waiting = wait(empty.controller.admit(0, "f", 1, None));
    empty.clock.advance(Duration::from_millis(100));
    empty.controller.pump();
    assert_eq!(refused(&mut waiting).status(), 503);
}

#[test]
fn with_no_endpoints_requests_wait_for_the_first_one() {
    let w = world(0, QueueConfig::default());
    let mut waiting = wait(w.controller.admit(0, "f", 1, None));
    w.controller.pump();
    assert!(poll(&mut waiting).is_pending());
    w.store
        .upsert_endpoint(TestEndpoint::new("10.0.0.9:8000").spec())
        .expect("add");
    w.clock.advance(Duration::from_secs(3));
    w.controller.pump();
    assert_eq!(dispatched(&mut waiting).waited, Duration::from_secs(3));
}

#[test]
fn higher_priority_displaces_sheddable_and_full_rooms_refuse() {
    let w = world(
        1,
        QueueConfig {
            total: Limits {
                requests: 1,
                bytes: u64::MAX,
            },
            ..QueueConfig::default()
        },
    );
    let _busy = occupy(&w, 0);
    let mut shed = wait(w.controller.admit(-1, "s", 1, None));
    let _chat = wait(w.controller.admit(5, "c", 1, None));
    assert_eq!(refused(&mut shed).reason, Rejection::Displaced);
    match w.controller.admit(5, "c", 1, None) {
        Admission::Refused(r) => assert_eq!((r.reason, r.status()), (Rejection::QueueFull, 429)),
        _ => panic!("a full room refuses equal priority"),
    }
}

#[test]
fn metrics_show_what_waits_and_what_was_refused() {
    use crate::flowcontrol::metrics::{FlowCollector, MetricsObserver};
    use crate::telemetry::metrics::{EppMetrics, FlowMetrics, MetricsLimits};

    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(Datastore::with_clock(
        100,
        Arc::clone(&clock) as Arc<dyn Clock>,
    ));
    store
        .upsert_endpoint(TestEndpoint::new("10.0.0.1:8000").spec())
        .expect("add");
    let flow_metrics = Arc::new(FlowMetrics::default());
    let controller = FlowController::with_observer(
        settings(QueueConfig {
            total: Limits {
                requests: 2,
                bytes: u64::MAX,
            },
            ..QueueConfig::default()
        }),
        Box::new(ConcurrencyDetector {
            max_requests: 1,
            max_tokens: u64::MAX,
        }),
        Arc::clone(&store),
        Box::new(MetricsObserver(Arc::clone(&flow_metrics))),
    );
    let metrics = EppMetrics::new(MetricsLimits::default());
    metrics.register_collector(Arc::new(FlowCollector {
        metrics: flow_metrics,
        controller: Arc::clone(&controller),
    }));
    let busy = store.snapshot().endpoints()[0].start_request();
    let mut batch = wait(controller.admit(0, "b", 300, None));
    let _chat = wait(controller.admit(7, "c", 40, None));
    let _chat2 = wait(controller.admit(7, "c", 40, None));
    assert_eq!(refused(&mut batch).reason, Rejection::Displaced);
    assert!(matches!(
        controller.admit(-1, "s", 1, None),
        Admission::Refused(_)
    ));
    let page = metrics.render();
    let sample = |series: &str| {
        page.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(
        sample("inference_extension_flow_control_queue_size{priority=\"7\"}"),
        Some(2.0),
        "{page}"
    );
    assert_eq!(
        sample("inference_extension_flow_control_queue_bytes{priority=\"7\"}"),
        Some(80.0)
    );
    assert_eq!(
        sample(
            "inference_extension_flow_control_rejections_total{priority=\"0\",reason=\"displaced\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            "inference_extension_flow_control_rejections_total{priority=\"-1\",reason=\"queue_full\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample("inference_extension_pool_saturation{detector=\"concurrency\"}"),
        Some(1.0)
    );

    clock.advance(Duration::from_millis(20));
    drop(busy);
    controller.pump();
    let page = metrics.render();
    assert!(
        page.contains("inference_extension_flow_control_dispatches_total{priority=\"7\"} 1"),
        "{page}"
    );
    assert!(
        page.contains("inference_extension_flow_control_queue_duration_seconds_bucket{priority=\"7\",outcome=\"dispatched\",le=\"0.025\"} 1"),
        "{page}"
    );
    assert!(
        page.contains("inference_extension_flow_control_queue_size{priority=\"7\"} 1"),
        "{page}"
    );
}

#[test]
fn flows_follow_the_fairness_id_only_when_trusted() {
    let w = world(1, QueueConfig::default());
    assert_eq!(w.controller.flow_of(Some("chat"), Some("tenant-a")), "chat");
    assert_eq!(w.controller.flow_of(None, None), "");
    let mut trusting = settings(QueueConfig::default());
    trusting.trust_fairness_header = true;
    let c = FlowController::new(
        trusting,
        Box::new(ConcurrencyDetector::default()),
        Arc::clone(&w.store),
    );
    assert_eq!(c.flow_of(Some("chat"), Some("tenant-a")), "tenant-a");
    assert_eq!(c.flow_of(Some("chat"), Some("")), "chat");
    let long = "é".repeat(300);
    assert_eq!(c.flow_of(None, Some(&long)).len(), MAX_FLOW_ID_BYTES);
    w.store.set_objective(crate::datastore::Objective {
        name: "batch".into(),
        priority: -2,
    });
    assert_eq!(c.priority_of(Some("batch")), -2);
    assert_eq!(c.priority_of(Some("unknown")), 0);
    assert_eq!(c.priority_of(None), 0);
}
