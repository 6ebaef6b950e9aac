//! `EndpointPickerConfig::from_text` (YAML or JSON) through the plugin registry to a
//! scheduler, then one routed request with that scheduler.
//!
//! Invariants: `Ok` or `Err`, never a panic; an accepted config describes itself and
//! routes (or refuses with an error) a request without panicking and without leaking
//! an in-flight slot.
#![no_main]

use std::sync::Arc;

use epp_core::config::EndpointPickerConfig;
use epp_core::datastore::fixtures::TestEndpoint;
use epp_core::datastore::{Datastore, PoolInfo};
use epp_core::director::{Director, DirectorSettings, RoutingRequest};
use epp_core::request::RequestHeaders;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = EndpointPickerConfig::from_text(text) else {
        return;
    };
    let _ = config.describe();
    let store = Arc::new(Datastore::new(4));
    for observer in config.endpoint_observers() {
        store.add_observer(observer);
    }
    store.set_pool(PoolInfo {
        name: "fuzz".into(),
        namespace: "default".into(),
        target_ports: vec![8000],
    });
    for (i, e) in [
        TestEndpoint::new("10.0.0.1:8000").queue(0).kv(0.1),
        TestEndpoint::new("10.0.0.2:8000")
            .queue(7)
            .kv(0.9)
            .lora(&["a"], &[], 2),
        TestEndpoint::new("10.0.0.3:8000"),
    ]
    .into_iter()
    .enumerate()
    {
        if let Ok(endpoint) = store.upsert_endpoint(e.spec()) {
            endpoint.store_metrics(e.metrics());
        } else {
            panic!("endpoint {i} not added");
        }
    }
    let settings = DirectorSettings {
        saturation: config
            .saturation
            .apply(DirectorSettings::default().saturation),
        ..DirectorSettings::default()
    };
    let director = Director::new(Arc::clone(&store), Arc::clone(&config.scheduler), settings);
    let headers = RequestHeaders::new();
    let request = RoutingRequest {
        request_id: "fuzz",
        model: "a",
        target_model: "a",
        prompt: Some("You are a helpful assistant. Say hi."),
        tokens: None,
        headers: &headers,
        objective: None,
        subset: None,
        at_headers: false,
        queued: None,
    };
    for _ in 0..2 {
        let decision = director.route(&request);
        drop(decision);
    }
    drop(director);
    for endpoint in store.snapshot().endpoints() {
        assert_eq!(endpoint.in_flight(), 0, "in-flight slot leaked");
    }
});
