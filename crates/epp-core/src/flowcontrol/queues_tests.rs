use std::time::Duration;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn arrival(priority: i32, flow: &str) -> Arrival<'_> {
    Arrival {
        priority,
        flow,
        bytes: 100,
        deadline: None,
    }
}

fn config(total: usize) -> QueueConfig {
    QueueConfig {
        total: Limits {
            requests: total,
            bytes: u64::MAX,
        },
        ..QueueConfig::default()
    }
}

/// Dispatches everything, returning the payloads in order.
fn drain(queues: &mut FlowQueues<&'static str>) -> Vec<&'static str> {
    std::iter::from_fn(|| queues.dispatch(ms(0)).map(|d| d.payload)).collect()
}

fn add(queues: &mut FlowQueues<&'static str>, priority: i32, flow: &str, name: &'static str) {
    queues
        .enqueue(arrival(priority, flow), name, ms(0))
        .map_err(|(_, reason)| reason)
        .expect("admitted");
}

#[test]
fn bands_are_strict_and_flows_take_turns() {
    let mut q = FlowQueues::new(QueueConfig::default());
    add(&mut q, 0, "batch", "b1");
    add(&mut q, 0, "batch", "b2");
    add(&mut q, 0, "batch", "b3");
    add(&mut q, 0, "other", "o1");
    add(&mut q, 10, "chat", "c1");
    add(&mut q, -1, "shed", "s1");
    add(&mut q, 10, "chat", "c2");
    assert_eq!(q.len(), 7);
    assert_eq!(
        q.bands()
            .map(|b| (b.priority, b.requests))
            .collect::<Vec<_>>(),
        [(10, 2), (0, 4), (-1, 1)]
    );
    // The high band empties first; then batch and other alternate; FCFS inside a flow.
    assert_eq!(drain(&mut q), ["c1", "c2", "b1", "o1", "b2", "b3", "s1"]);
    assert!(q.is_empty() && q.bytes() == 0 && q.bands().count() == 0);
}

#[test]
fn a_new_flow_joins_the_turns_at_the_back() {
    let mut q = FlowQueues::new(QueueConfig::default());
    add(&mut q, 0, "a", "a1");
    add(&mut q, 0, "a", "a2");
    add(&mut q, 0, "b", "b1");
    assert_eq!(q.dispatch(ms(0)).map(|d| d.payload), Some("a1"));
    add(&mut q, 0, "c", "c1");
    assert_eq!(drain(&mut q), ["b1", "a2", "c1"]);
}

#[test]
fn equal_demand_is_served_equally() {
    // Three flows each keep 50 waiting; 90 dispatches serve each 30.
    let mut q = FlowQueues::new(QueueConfig::default());
    let names = ["x", "y", "z"];
    for _ in 0..50 {
        for flow in names {
            add(&mut q, 0, flow, flow);
        }
    }
    let mut served = [0; 3];
    for _ in 0..90 {
        let d = q.dispatch(ms(0)).expect("waiting");
        served[names.iter().position(|n| *n == d.payload).unwrap()] += 1;
    }
    assert_eq!(served, [30, 30, 30]);
}

#[test]
fn edf_orders_by_deadline_inside_a_flow() {
    let mut q = FlowQueues::new(QueueConfig {
        ordering: Ordering::Edf,
        ..QueueConfig::default()
    });
    for (name, deadline) in [
        ("late", Some(ms(900))),
        ("none", None),
        ("soon", Some(ms(100))),
    ] {
        let a = Arrival {
            deadline,
            ..arrival(0, "f")
        };
        q.enqueue(a, name, ms(0)).expect("admitted");
    }
    assert_eq!(drain(&mut q), ["soon", "late", "none"]);
}

#[test]
fn full_room_displaces_the_lowest_band_first_newest_of_heaviest_flow() {
    let mut q = FlowQueues::new(config(4));
    add(&mut q, -1, "s", "s1");
    add(&mut q, -1, "s", "s2");
    add(&mut q, -1, "t", "t1");
    add(&mut q, 0, "b", "b1");
    // Full: a priority-0 arrival displaces from band -1: flow s (2 waiting), newest s2.
    let (_, displaced) = q.enqueue(arrival(0, "b"), "b2", ms(5)).expect("admitted");
    let gone: Vec<_> = displaced.iter().map(|r| (r.payload, r.reason)).collect();
    assert_eq!(gone, [("s2", Rejection::Displaced)]);
    assert_eq!(displaced[0].waited, ms(5));
    // Equal or lower priority cannot displace: refused, nothing else changes.
    let refused = q.enqueue(arrival(-1, "s"), "s3", ms(5)).err();
    assert_eq!(refused.map(|r| r.1), Some(Rejection::QueueFull));
    let refused = q.enqueue(arrival(-5, "s"), "s4", ms(5)).err();
    assert_eq!(refused.map(|r| r.1), Some(Rejection::QueueFull));
    assert_eq!(q.len(), 4);
    assert_eq!(drain(&mut q), ["b1", "b2", "s1", "t1"]);
}

#[test]
fn nothing_is_displaced_when_it_could_not_make_room() {
    // 3 bytes of room; a 3-byte request at priority 5 cannot fit even if band 0 left.
    let mut q: FlowQueues<&str> = FlowQueues::new(QueueConfig {
        total: Limits {
            requests: 10,
            bytes: 3,
        },
        ..QueueConfig::default()
    });
    let small = |priority| Arrival {
        bytes: 1,
        ..arrival(priority, "f")
    };
    q.enqueue(small(0), "low", ms(0)).expect("fits");
    q.enqueue(small(9), "high", ms(0)).expect("fits");
    let big = Arrival {
        bytes: 3,
        ..arrival(5, "f")
    };
    assert_eq!(
        q.enqueue(big, "big", ms(0)).err().map(|r| r.1),
        Some(Rejection::QueueFull)
    );
    assert_eq!((q.len(), q.bytes()), (2, 2));
}

#[test]
fn a_full_band_refuses_even_with_room_elsewhere() {
    let mut q: FlowQueues<&str> = FlowQueues::new(QueueConfig {
        per_band: Limits {
            requests: 2,
            bytes: u64::MAX,
        },
        ..QueueConfig::default()
    });
    add(&mut q, 0, "a", "1");
    add(&mut q, 0, "b", "2");
    assert_eq!(
        q.enqueue(arrival(0, "c"), "3", ms(0)).err().map(|r| r.1),
        Some(Rejection::BandFull)
    );
    add(&mut q, 1, "a", "4");
    // Byte limits too.
    let mut q: FlowQueues<&str> = FlowQueues::new(QueueConfig {
        per_band: Limits {
            requests: 100,
            bytes: 150,
        },
        ..QueueConfig::default()
    });
    add(&mut q, 0, "a", "1");
    assert_eq!(
        q.enqueue(arrival(0, "a"), "2", ms(0)).err().map(|r| r.1),
        Some(Rejection::BandFull)
    );
}

#[test]
fn requests_expire_after_their_ttl() {
    let mut q = FlowQueues::new(QueueConfig {
        ttl: ms(100),
        ..QueueConfig::default()
    });
    q.enqueue(arrival(0, "f"), "first", ms(0)).expect("in");
    q.enqueue(arrival(0, "f"), "second", ms(50)).expect("in");
    assert_eq!(q.next_expiry(), Some(ms(100)));
    assert!(q.expire(ms(99)).is_empty());
    let expired = q.expire(ms(100));
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].payload, expired[0].reason, expired[0].waited),
        ("first", Rejection::Expired, ms(100))
    );
    assert_eq!(q.next_expiry(), Some(ms(150)));
    // Dispatched requests never expire later.
    assert_eq!(
        q.dispatch(ms(120)).map(|d| (d.payload, d.waited)),
        Some(("second", ms(70)))
    );
    assert!(q.expire(ms(1000)).is_empty());
    assert_eq!(q.next_expiry(), None);
}

#[test]
fn cancel_takes_a_request_out_once() {
    let mut q = FlowQueues::new(QueueConfig::default());
    let (a, _) = q.enqueue(arrival(0, "f"), "a", ms(0)).expect("in");
    let (b, _) = q.enqueue(arrival(0, "f"), "b", ms(0)).expect("in");
    assert_eq!(q.cancel(a), Some("a"));
    assert_eq!(q.cancel(a), None);
    assert_eq!((q.len(), q.bytes()), (1, 100));
    assert_eq!(drain(&mut q), ["b"]);
    // A ticket of a request that left never names the request that reuses its slot.
    let (c, _) = q.enqueue(arrival(0, "f"), "c", ms(0)).expect("in");
    assert_eq!(q.cancel(b), None);
    assert_eq!(q.cancel(c), Some("c"));
    assert!(q.is_empty() && q.bands().count() == 0);
}

#[test]
fn churn_without_dispatch_keeps_memory_bounded() {
    // One request keeps the flow alive while 100,000 clients come and go.
    let mut q = FlowQueues::new(QueueConfig::default());
    add(&mut q, 0, "f", "stays");
    for i in 0..100_000u64 {
        let (t, _) = q.enqueue(arrival(0, "f"), "churn", ms(i)).expect("in");
        assert_eq!(q.cancel(t), Some("churn"));
    }
    assert_eq!(q.len(), 1);
    let band = q.bands.values().next().expect("one band");
    let flow = band.flows.values().next().expect("one flow");
    assert!(
        flow.arrivals.len() <= 2 + STALE_SLACK,
        "{}",
        flow.arrivals.len()
    );
    assert!(q.expiries.len() <= 2 + STALE_SLACK, "{}", q.expiries.len());
    assert!(q.slots.len() <= 2);
    // Many flows that come and go leave nothing behind.
    for i in 0..10_000 {
        let name = format!("flow-{i}");
        let (t, _) = q.enqueue(arrival(3, &name), "x", ms(0)).expect("in");
        q.cancel(t);
    }
    assert_eq!(q.bands.len(), 1);
}

/// Randomised against a simple model: counts, bytes and the strict-band rule always hold.
#[test]
fn random_operations_keep_the_accounting() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut q: FlowQueues<u64> = FlowQueues::new(QueueConfig {
        total: Limits {
            requests: 50,
            bytes: 4_000,
        },
        per_band: Limits {
            requests: 30,
            bytes: 3_000,
        },
        ttl: ms(500),
        ordering: Ordering::Fcfs,
    });
    let mut waiting: std::collections::HashMap<u64, (Ticket, i32, u64)> = Default::default();
    let flows = ["a", "b", "c"];
    for step in 0..20_000u64 {
        let now = ms(step);
        match rng.random_range(0..10) {
            0..=4 => {
                let priority = rng.random_range(-2..3);
                let bytes = rng.random_range(0..200);
                let a = Arrival {
                    priority,
                    flow: flows[rng.random_range(0..3)],
                    bytes,
                    deadline: None,
                };
                if let Ok((ticket, displaced)) = q.enqueue(a, step, now) {
                    for d in displaced {
                        let (_, p, _) = waiting.remove(&d.payload).expect("was waiting");
                        assert!(p < priority, "displaced {p} for {priority}");
                    }
                    waiting.insert(step, (ticket, priority, bytes));
                }
            }
            5..=6 => {
                let top = waiting.values().map(|w| w.1).max();
                if let Some(d) = q.dispatch(now) {
                    assert_eq!(Some(d.priority), top, "strict bands");
                    waiting.remove(&d.payload).expect("was waiting");
                }
            }
            7 => {
                if let Some(&id) = waiting.keys().next() {
                    let (ticket, _, _) = waiting.remove(&id).unwrap();
                    assert_eq!(q.cancel(ticket), Some(id));
                }
            }
            _ => {
                for r in q.expire(now) {
                    waiting.remove(&r.payload).expect("was waiting");
                    assert!(r.waited >= ms(500));
                }
            }
        }
        assert_eq!(q.len(), waiting.len());
        assert_eq!(q.bytes(), waiting.values().map(|w| w.2).sum::<u64>());
        assert!(q.len() <= 50 && q.bytes() <= 4_000);
        for band in q.bands() {
            assert!(band.requests <= 30 && band.bytes <= 3_000);
        }
    }
}
