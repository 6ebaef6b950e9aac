//! What does the flow-control waiting room cost with 10,000 requests waiting?
//!
//! * `enqueue_dispatch`: one arrival and one dispatch at steady state, 10,000 waiting over
//!   4 bands × 50 flows (FCFS and EDF).
//! * `enqueue_cancel`: a client arrives and leaves again (its ticket cancelled).
//! * `expire`: one request expiring out of 10,000 (the dispatcher's timer path).
//! * `admit_unsaturated_100_endpoints`: what flow control adds to a request while nobody
//!   waits and the pool has room (one detector reading over 100 endpoints).
//!
//! Memory per waiting request is printed once: the growth of this process's resident set
//! while 1,000,000 requests wait (payload `u64`, so this is the room's own cost; the EPP's
//! payload, a channel to the waiting stream, adds its own).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use epp_core::config::{DEFAULT_DEADLINE_HEADER, DetectorSpec, FlowControlSettings};
use epp_core::director::SaturationThresholds;
use epp_core::flowcontrol::{
    Admission, Arrival, ConcurrencyDetector, FlowController, FlowQueues, Limits, Ordering,
    QueueConfig,
};
use epp_testkit::datastore;
use epp_testkit::fixtures::TestEndpoint;
use epp_testkit::procfs::status_kib;

/// VmRSS in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status_kib(&status, "VmRSS").unwrap_or(0) * 1024
}

const WAITING: u64 = 10_000;
const BANDS: [i32; 4] = [10, 0, -1, -5];
const FLOWS: usize = 50;

fn names() -> Vec<String> {
    (0..FLOWS).map(|i| format!("flow-{i}")).collect()
}

fn arrival(i: u64, flows: &[String]) -> Arrival<'_> {
    Arrival {
        priority: BANDS[(i % 4) as usize],
        flow: &flows[(i / 4) as usize % FLOWS],
        bytes: 4096,
        deadline: Some(Duration::from_millis(i % 977)),
    }
}

fn filled(ordering: Ordering, flows: &[String]) -> FlowQueues<u64> {
    let mut room = FlowQueues::new(QueueConfig {
        ordering,
        ttl: Duration::from_secs(3600),
        ..QueueConfig::default()
    });
    for i in 0..WAITING {
        room.enqueue(arrival(i, flows), i, Duration::ZERO)
            .expect("room for 10,000");
    }
    room
}

fn bench(c: &mut Criterion) {
    let flows = names();
    let before = rss();
    let mut room = FlowQueues::new(QueueConfig {
        total: Limits {
            requests: 1_000_000,
            bytes: u64::MAX,
        },
        per_band: Limits {
            requests: 1_000_000,
            bytes: u64::MAX,
        },
        ..QueueConfig::default()
    });
    for i in 0..1_000_000 {
        room.enqueue(arrival(i, &flows), i, Duration::ZERO)
            .expect("room for a million");
    }
    let held = rss().saturating_sub(before);
    println!(
        "flow control: 1,000,000 waiting requests grew the resident set by {} MiB, {} bytes per request",
        held >> 20,
        held / 1_000_000
    );
    drop(room);

    let mut group = c.benchmark_group("flow_control");
    for ordering in [Ordering::Fcfs, Ordering::Edf] {
        let mut room = filled(ordering, &flows);
        let mut next = WAITING;
        group.bench_function(
            BenchmarkId::new("enqueue_dispatch", format!("{ordering:?}")),
            |b| {
                b.iter(|| {
                    room.enqueue(arrival(next, &flows), next, Duration::ZERO)
                        .expect("room");
                    next += 1;
                    room.dispatch(Duration::ZERO).expect("waiting")
                })
            },
        );
    }
    let mut room = filled(Ordering::Fcfs, &flows);
    let mut next = WAITING;
    group.bench_function("enqueue_cancel", |b| {
        b.iter(|| {
            let (ticket, _) = room
                .enqueue(arrival(next, &flows), next, Duration::ZERO)
                .expect("room");
            next += 1;
            room.cancel(ticket).expect("waiting")
        })
    });
    let mut room = FlowQueues::new(QueueConfig {
        ttl: Duration::from_secs(1),
        ..QueueConfig::default()
    });
    for i in 0..WAITING {
        room.enqueue(arrival(i, &flows), i, Duration::from_nanos(i))
            .expect("room");
    }
    let mut next = 0;
    group.bench_function("expire", |b| {
        b.iter(|| {
            // One expiry (the oldest), one arrival: the room stays at 10,000.
            let expired = room.expire(Duration::from_secs(1) + Duration::from_nanos(next));
            assert_eq!(expired.len(), 1);
            let i = WAITING + next;
            room.enqueue(arrival(i, &flows), i, Duration::from_nanos(i))
                .expect("room");
            next += 1;
            expired
        })
    });

    // The cost flow control adds to a request when nobody waits and the pool has room:
    // one detector reading over the pool (100 endpoints).
    let store = datastore::with_endpoints((1..=100).map(|i| {
        TestEndpoint::new(&format!("10.0.{}.{}:8000", i / 250, i % 250))
            .queue(1)
            .kv(0.2)
    }));
    let settings = FlowControlSettings {
        queue: QueueConfig::default(),
        deadline_header: DEFAULT_DEADLINE_HEADER.into(),
        trust_fairness_header: false,
    };
    let detectors: [(&str, DetectorSpec); 2] = [
        ("utilization", DetectorSpec::Utilization),
        (
            "concurrency",
            DetectorSpec::Concurrency(ConcurrencyDetector::default()),
        ),
    ];
    for (name, detector) in detectors {
        let controller = FlowController::new(
            settings.clone(),
            detector.build(SaturationThresholds::default()),
            std::sync::Arc::clone(&store),
        );
        group.bench_function(
            BenchmarkId::new("admit_unsaturated_100_endpoints", name),
            |b| {
                b.iter(|| match controller.admit(0, "chat", 4096, None) {
                    Admission::Now => true,
                    _ => panic!("the pool has room"),
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
