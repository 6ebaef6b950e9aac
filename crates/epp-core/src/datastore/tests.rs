use std::sync::Mutex as StdMutex;

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

#[derive(Default)]
struct Recorder(StdMutex<Vec<EndpointId>>);

impl EndpointObserver for Recorder {
    fn endpoint_removed(&self, endpoint: &Endpoint) {
        self.0.lock().expect("lock").push(endpoint.id());
    }
}

#[test]
fn upsert_keeps_identity_metrics_and_in_flight() {
    let store = Datastore::new(10);
    let first = store
        .upsert_endpoint(EndpointSpec::from_address(addr("10.0.0.1:8000")))
        .expect("add");
    first.store_metrics(MetricsUpdate {
        waiting_queue_size: Some(3),
        ..Default::default()
    });
    let guard = first.start_request();

    let mut relabelled = EndpointSpec::from_address(addr("10.0.0.1:8000"));
    relabelled.labels.insert("rank".into(), "0".into());
    let again = store.upsert_endpoint(relabelled).expect("update");

    assert_eq!(again.id(), first.id());
    assert_eq!(again.waiting_queue_size(), 3);
    assert_eq!(again.in_flight(), 1);
    assert_eq!(
        again.meta().labels.get("rank").map(String::as_str),
        Some("0")
    );
    drop(guard);
    assert_eq!(again.in_flight(), 0);
    assert_eq!(store.snapshot().len(), 1);
}

#[test]
fn endpoints_sharing_an_ip_are_distinct() {
    let store = Datastore::new(10);
    for port in [8000, 8001, 8002] {
        store
            .upsert_endpoint(EndpointSpec::from_address(SocketAddr::new(
                "127.0.0.1".parse().expect("ip"),
                port,
            )))
            .expect("add");
    }
    let snapshot = store.snapshot();
    assert_eq!(snapshot.len(), 3);
    assert!(snapshot.get(addr("127.0.0.1:8001")).is_some());
    assert_eq!(snapshot.endpoints()[2].address_text(), "127.0.0.1:8002");
}

#[test]
fn limit_is_enforced_on_add_and_resync() {
    let store = Datastore::new(2);
    store
        .upsert_endpoint(EndpointSpec::from_address(addr("10.0.0.1:8000")))
        .expect("1");
    store
        .upsert_endpoint(EndpointSpec::from_address(addr("10.0.0.2:8000")))
        .expect("2");
    let err = store
        .upsert_endpoint(EndpointSpec::from_address(addr("10.0.0.3:8000")))
        .expect_err("over the limit");
    assert_eq!(
        err,
        DatastoreError::TooManyEndpoints {
            requested: 3,
            limit: 2
        }
    );
    let three = ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"]
        .map(|a| EndpointSpec::from_address(addr(a)))
        .to_vec();
    assert!(store.replace_endpoints(three).is_err());
    assert_eq!(
        store.snapshot().len(),
        2,
        "a refused resync changes nothing"
    );
}

#[test]
fn resync_keeps_unchanged_and_reports_removed() {
    let store = Datastore::new(10);
    let recorder = Arc::new(Recorder::default());
    store.add_observer(recorder.clone());
    let specs = |list: &[&str]| {
        list.iter()
            .map(|a| EndpointSpec::from_address(addr(a)))
            .collect()
    };
    store
        .replace_endpoints(specs(&["10.0.0.1:8000", "10.0.0.2:8000"]))
        .expect("first");
    let kept_id = store
        .snapshot()
        .get(addr("10.0.0.1:8000"))
        .expect("kept")
        .id();
    let gone_id = store
        .snapshot()
        .get(addr("10.0.0.2:8000"))
        .expect("gone")
        .id();

    store
        .replace_endpoints(specs(&["10.0.0.1:8000", "10.0.0.3:8000"]))
        .expect("second");

    let snapshot = store.snapshot();
    assert_eq!(
        snapshot.get(addr("10.0.0.1:8000")).expect("kept").id(),
        kept_id
    );
    assert!(snapshot.get(addr("10.0.0.2:8000")).is_none());
    assert_eq!(*recorder.0.lock().expect("lock"), vec![gone_id]);
}

#[test]
fn readded_endpoint_gets_a_new_id() {
    let store = Datastore::new(10);
    let a = addr("10.0.0.1:8000");
    let first = store
        .upsert_endpoint(EndpointSpec::from_address(a))
        .expect("add")
        .id();
    assert!(store.remove_endpoint(a));
    assert!(!store.remove_endpoint(a));
    let second = store
        .upsert_endpoint(EndpointSpec::from_address(a))
        .expect("re-add")
        .id();
    assert_ne!(first, second);
}

#[test]
fn clear_drops_pool_endpoints_and_objectives() {
    let store = Datastore::new(10);
    let recorder = Arc::new(Recorder::default());
    store.add_observer(recorder.clone());
    store.set_pool(PoolInfo {
        name: "pool".into(),
        namespace: "default".into(),
        target_ports: vec![8000],
    });
    store.set_objective(Objective {
        name: "critical".into(),
        priority: 2,
    });
    store
        .upsert_endpoint(EndpointSpec::from_address(addr("10.0.0.1:8000")))
        .expect("add");
    assert!(store.pool_synced());
    assert_eq!(store.objective("critical").map(|o| o.priority), Some(2));

    store.clear();

    assert!(!store.pool_synced());
    assert!(store.snapshot().is_empty());
    assert!(store.objective("critical").is_none());
    assert_eq!(recorder.0.lock().expect("lock").len(), 1);
}

#[test]
fn partial_metrics_update_keeps_other_fields() {
    let store = Datastore::new(10);
    let e = store
        .upsert_endpoint(EndpointSpec::from_address(addr("10.0.0.1:8000")))
        .expect("add");
    assert_eq!(e.metrics_updated_at(), None);
    e.store_metrics(MetricsUpdate {
        waiting_queue_size: Some(4),
        kv_cache_usage: Some(0.25),
        ..Default::default()
    });
    e.store_metrics(MetricsUpdate {
        waiting_queue_size: Some(1),
        ..Default::default()
    });
    let m = e.metrics_snapshot();
    assert_eq!(m.waiting_queue_size, 1);
    assert_eq!(m.kv_cache_usage, 0.25);
    assert!(m.updated_at.is_some());
}

#[test]
fn subscribers_see_every_change() {
    let store = Datastore::new(10);
    let mut changes = store.subscribe();
    assert!(!changes.has_changed().expect("open"));
    store
        .upsert_endpoint(EndpointSpec::from_address(addr("10.0.0.1:8000")))
        .expect("add");
    assert!(changes.has_changed().expect("open"));
    changes.mark_unchanged();
    // Relabelling keeps the set; removing an absent endpoint changes nothing.
    let mut relabelled = EndpointSpec::from_address(addr("10.0.0.1:8000"));
    relabelled.labels.insert("a".into(), "b".into());
    store.upsert_endpoint(relabelled).expect("relabel");
    assert!(!store.remove_endpoint(addr("10.0.0.9:8000")));
    assert!(!changes.has_changed().expect("open"));
    assert!(store.remove_endpoint(addr("10.0.0.1:8000")));
    assert!(changes.has_changed().expect("open"));
}

#[test]
fn an_update_without_a_signal_does_not_refresh_it() {
    let clock = Arc::new(crate::time::ManualClock::new());
    let store = Datastore::with_clock(10, Arc::clone(&clock) as Arc<dyn crate::time::Clock>);
    let e = store
        .upsert_endpoint(EndpointSpec::from_address(addr("10.0.0.1:8000")))
        .expect("add");
    // An empty page yields an empty update: nothing becomes fresh, nothing reads as idle.
    e.store_metrics(MetricsUpdate::default());
    assert_eq!(e.metrics_updated_at(), None);
    assert_eq!(e.metrics_age(), None);

    e.store_metrics(MetricsUpdate {
        waiting_queue_size: Some(4),
        kv_cache_usage: Some(0.25),
        ..Default::default()
    });
    let first = e.metrics_updated_at().expect("stamped");
    clock.advance(std::time::Duration::from_secs(5));
    // Later scrapes that lack the signals (or had only invalid values) leave their age alone.
    e.store_metrics(MetricsUpdate::default());
    e.store_metrics(MetricsUpdate {
        lora: Some(crate::datastore::LoraState::default()),
        ..Default::default()
    });
    assert_eq!(e.metrics_updated_at(), Some(first));
    assert_eq!(e.metrics_age(), Some(std::time::Duration::from_secs(5)));
    assert_eq!(e.waiting_queue_size(), 4, "the last valid value is kept");

    // A valid queue refreshes the queue alone; the overall age is the newest signal's.
    e.store_metrics(MetricsUpdate {
        waiting_queue_size: Some(6),
        ..Default::default()
    });
    let zero = std::time::Duration::ZERO;
    assert_eq!(e.signal_age(LoadSignal::Queue), Some(zero));
    assert_eq!(
        e.signal_age(LoadSignal::KvUsage),
        Some(std::time::Duration::from_secs(5))
    );
    assert_eq!(e.signal_updated_at(LoadSignal::Running), None);
    assert_eq!(e.metrics_age(), Some(zero));
    let m = e.metrics_snapshot();
    assert_eq!(
        (m.queue_updated_at, m.kv_updated_at, m.running_updated_at),
        (e.metrics_updated_at(), Some(first), None)
    );
}
