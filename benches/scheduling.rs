//! What does one scheduling cycle of the default profile (queue, KV-cache and prefix
//! scorers, max-score picker) cost, by pool size and prompt size?
//!
//! Measures `Director::route`: admission, candidate snapshot, prefix hashing and index
//! lookup, the three scorers, the picker, the prefix index update and the in-flight
//! reservation — everything between a parsed body and the destination string. The
//! index is warmed with earlier requests that share a system prompt, as in a chat
//! workload. Target: under 20 µs at 100 endpoints with an 8 KB prompt (the Go EPP's
//! scheduling step takes about 300 µs).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use epp_core::config::{DEFAULT_CONFIG, EndpointPickerConfig};
use epp_core::datastore::PoolInfo;
use epp_core::director::{Director, DirectorSettings, RoutingRequest};
use epp_core::request::RequestHeaders;
use epp_testkit::datastore;
use epp_testkit::fixtures::TestEndpoint;

fn director(endpoints: usize) -> Director {
    let config = EndpointPickerConfig::from_text(DEFAULT_CONFIG).expect("default config");
    let store = datastore::with_endpoints((0..endpoints).map(|i| {
        let address = format!("10.{}.{}.{}:8000", i / 65536, (i / 256) % 256, i % 256);
        TestEndpoint::new(&address)
            .queue((i * 7 % 13) as u64)
            .kv((i * 31 % 100) as f64 / 100.0)
    }));
    for observer in config.endpoint_observers() {
        store.add_observer(observer);
    }
    store.set_pool(PoolInfo {
        name: "bench".into(),
        namespace: "default".into(),
        target_ports: vec![8000],
    });
    Director::new(store, config.scheduler, DirectorSettings::default())
}

/// A chat-like prompt of `size` bytes: a shared system prompt, then a varying question.
fn prompt(size: usize, variant: usize) -> String {
    let system = "You are a helpful assistant that answers briefly. ".repeat(size / 100 + 1);
    let mut text = system[..size / 2].to_string();
    while text.len() < size {
        text.push_str(&format!("question {variant} part {} ", text.len()));
    }
    text.truncate(size);
    text
}

fn route(director: &Director, headers: &RequestHeaders, prompt: &str) -> usize {
    let request = RoutingRequest::new("bench", "m", Some(prompt), headers);
    director.route(&request).expect("routed").destination.len()
}

fn scheduling_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduling_cycle");
    let headers = RequestHeaders::new();
    for endpoints in [10, 100, 1000] {
        let director = director(endpoints);
        for size in [4 << 10, 8 << 10, 64 << 10, 220 << 10] {
            // Warm the prefix index: 200 earlier requests with the same system prompt.
            for variant in 0..200 {
                route(&director, &headers, &prompt(size, variant));
            }
            let prompts: Vec<String> = (0..64).map(|v| prompt(size, 1000 + v)).collect();
            let mut next = 0;
            group.throughput(Throughput::Elements(1));
            group.bench_with_input(
                BenchmarkId::new(
                    format!("{endpoints}_endpoints"),
                    format!("{}KB", size >> 10),
                ),
                &size,
                |b, _| {
                    b.iter(|| {
                        next = (next + 1) % prompts.len();
                        route(&director, &headers, &prompts[next])
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, scheduling_cycle);
criterion_main!(benches);
