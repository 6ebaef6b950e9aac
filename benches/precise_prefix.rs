//! What do the precise prefix scorer and its index cost?
//!
//! * `precise_cycle`: one `Director::route` with the published precise profile (precise
//!   prefix 3, KV-cache 2, queue 2, max-score picker) and the request's token ids, at 100 and
//!   1,000 endpoints. Each endpoint's engine has reported 2,000 blocks (a shared 64-token
//!   system prompt, then its own), so the index holds 200 k / 2 M entries. The request's
//!   2,048 tokens (128 blocks of 16) share the system prompt; one endpoint in ten also holds
//!   its next 32 blocks.
//! * `kv_event_apply`: applying batches of `BlockStored` (8 requests × 4 blocks, chained) and
//!   the matching `BlockRemoved` to one endpoint of a 100-endpoint index; throughput is in
//!   events per second on one core.
//!
//! Memory per indexed block is printed once (`stats().bytes / entries` at 2 M entries).

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use epp_core::config::EndpointPickerConfig;
use epp_core::datastore::{EndpointId, PoolInfo};
use epp_core::director::{Director, DirectorSettings, RoutingRequest};
use epp_core::prefix::PreciseIndex;
use epp_core::request::RequestHeaders;
use epp_kvevents::{BlockHash, BlockRemoved, BlockStored, EventBatch, KvEvent, Medium};
use epp_testkit::datastore;
use epp_testkit::fixtures::TestEndpoint;

const BLOCK: usize = 16;
const CONFIG: &str = "apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-scorer
  parameters: {blockSize: 16}
- type: kv-cache-utilization-scorer
- type: queue-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: precise-prefix-cache-scorer
    weight: 3
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: max-score-picker
";

fn stored(hashes: std::ops::Range<u64>, parent: Option<u64>, tokens: &[u32]) -> KvEvent {
    KvEvent::BlockStored(BlockStored {
        block_hashes: hashes.map(BlockHash::Int).collect(),
        parent_block_hash: parent.map(BlockHash::Int),
        token_ids: tokens.to_vec(),
        block_size: BLOCK as u32,
        lora_id: None,
        medium: Some(Medium::Gpu),
        lora_name: None,
        group_idx: None,
    })
}

fn batch(events: Vec<KvEvent>) -> EventBatch {
    EventBatch {
        ts: 0.0,
        events,
        data_parallel_rank: None,
    }
}

/// The request's tokens: a 64-token system prompt, then tokens shared by a tenth of the
/// endpoints, then the request's own.
fn request_tokens() -> Vec<u32> {
    (0..2048u32)
        .map(|t| if t < 64 { t } else { 1_000_000 + t })
        .collect()
}

fn director(endpoints: usize) -> (Director, Arc<PreciseIndex>) {
    let config = EndpointPickerConfig::from_text(CONFIG).expect("precise config");
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
    let index = config.kv_event_subscriptions()[0].index.clone();
    let request = request_tokens();
    let now = store.clock().now();
    for (i, endpoint) in store.snapshot().endpoints().iter().enumerate() {
        let base = (i as u64) << 32;
        // 4 system-prompt blocks, then (one endpoint in ten) 32 of the request's blocks,
        // then its own blocks up to 2,000.
        let shared = if i % 10 == 0 { 36 } else { 4 };
        let mut tokens: Vec<u32> = request[..shared * BLOCK].to_vec();
        tokens.extend((0..(2000 - shared) * BLOCK).map(|t| (i * 7_919 + t) as u32 | 1 << 31));
        let event = stored(base..base + 2000, None, &tokens);
        index.apply_batch(endpoint.id(), 0, &batch(vec![event]), now);
    }
    let stats = index.stats(now);
    eprintln!(
        "precise index at {endpoints} endpoints: {} entries, {} keys, {:.1} MB, {} bytes per entry",
        stats.entries,
        stats.keys,
        stats.bytes as f64 / 1e6,
        stats.bytes / stats.entries.max(1)
    );
    let director = Director::new(store, config.scheduler, DirectorSettings::default());
    (director, index)
}

fn precise_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("precise_cycle");
    let headers = RequestHeaders::new();
    let tokens = request_tokens();
    let prompt = "p".repeat(8 << 10);
    for endpoints in [100, 1000] {
        let (director, _index) = director(endpoints);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::new(format!("{endpoints}_endpoints"), "2048_tokens"),
            &endpoints,
            |b, _| {
                b.iter(|| {
                    let request = RoutingRequest {
                        tokens: Some(&tokens),
                        ..RoutingRequest::new("bench", "m", Some(&prompt), &headers)
                    };
                    director.route(&request).expect("routed").destination.len()
                })
            },
        );
    }
    group.finish();
}

fn kv_event_apply(c: &mut Criterion) {
    let (_director, index) = director(100);
    let endpoint = EndpointId(0);
    let mut group = c.benchmark_group("kv_event_apply");
    // 8 requests × 4 blocks stored, then the same blocks removed: 16 events per round.
    let mut seq = 1u64;
    let mut round = 0u64;
    group.throughput(Throughput::Elements(16));
    group.bench_function("store_and_remove_16_events", |b| {
        b.iter(|| {
            round += 1;
            let base = 1 << 60 | round << 8;
            let mut stores = Vec::with_capacity(8);
            let mut removes = Vec::with_capacity(8);
            for r in 0..8u64 {
                let first = base + r * 4;
                let tokens: Vec<u32> = (0..4 * BLOCK as u32).map(|t| t ^ (first as u32)).collect();
                stores.push(stored(first..first + 4, None, &tokens));
                removes.push(KvEvent::BlockRemoved(BlockRemoved {
                    block_hashes: (first..first + 4).map(BlockHash::Int).collect(),
                    medium: Some(Medium::Gpu),
                    group_idx: None,
                }));
            }
            let now = Duration::from_secs(seq);
            index.apply_batch(endpoint, seq, &batch(stores), now);
            index.apply_batch(endpoint, seq + 1, &batch(removes), now);
            seq += 2;
        })
    });
    group.finish();
}

criterion_group!(benches, precise_cycle, kv_event_apply);
criterion_main!(benches);
