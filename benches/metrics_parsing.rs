//! How much CPU does one scrape's parse take on a realistic vLLM `/metrics` page, and is the
//! filtering parser worth it over prometheus-parse?
//!
//! `extract` is the production path: the default (vLLM) mapping compiled once, then
//! `CompiledMapping::extract` on the 53 KB fixture. `prometheus_parse` parses the whole
//! page with prometheus-parse 0.2.5 and does the same five lookups. prometheus-parse only
//! accepts `\w+` metric names, so it silently drops every `vllm:` line; it is fed a copy
//! with `vllm:` renamed to `vllm_` (same size) so that it does the same work. Even then its
//! label splitting breaks on commas inside values, so its LoRA lists are wrong: this bench
//! measures its cost, not its correctness.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use epp_datalayer::extract::CompiledMapping;
use epp_datalayer::presets::MetricMapping;
use prometheus_parse::{Sample, Scrape, Value};

const PAGE: &[u8] = include_bytes!("../tests/fixtures/vllm-metrics.txt");

fn extract(c: &mut Criterion) {
    let mapping = CompiledMapping::new(MetricMapping::default());
    let mut group = c.benchmark_group("extract");
    group.throughput(Throughput::Bytes(PAGE.len() as u64));
    group.bench_function("vllm_fixture", |b| {
        b.iter(|| {
            mapping
                .extract(black_box(PAGE))
                .expect("the fixture parses")
        })
    });
    group.finish();
}

/// The five lookups of the default mapping, done on prometheus-parse's output.
fn lookups(scrape: &Scrape) -> (f64, f64, f64, usize, Option<String>) {
    let value = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map_or(0.0, |s| match s.value {
                Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v) => v,
                _ => 0.0,
            })
    };
    let lora = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "vllm_lora_requests_info")
        .filter(|s| {
            let labels: &HashMap<String, String> = &s.labels;
            labels.values().any(|v| !v.is_empty())
        })
        .max_by(|a, b| gauge(a).total_cmp(&gauge(b)))
        .map_or(0, |s| {
            s.labels
                .get("running_lora_adapters")
                .map_or(0, |v| v.split(',').count())
        });
    let block_size = scrape
        .samples
        .iter()
        .find(|s| s.metric == "vllm_cache_config_info")
        .and_then(|s| s.labels.get("num_gpu_blocks").map(str::to_owned));
    (
        value("vllm_num_requests_waiting"),
        value("vllm_num_requests_running"),
        value("vllm_gpu_cache_usage_perc"),
        lora,
        block_size,
    )
}

fn gauge(sample: &Sample) -> f64 {
    match sample.value {
        Value::Gauge(v) => v,
        _ => f64::NAN,
    }
}

fn prometheus_parse(c: &mut Criterion) {
    let renamed = std::str::from_utf8(PAGE)
        .expect("UTF-8 fixture")
        .replace("vllm:", "vllm_")
        .into_bytes();
    let mut group = c.benchmark_group("prometheus_parse");
    group.throughput(Throughput::Bytes(renamed.len() as u64));
    group.bench_function("vllm_fixture", |b| {
        b.iter(|| {
            let text = std::str::from_utf8(black_box(&renamed)).expect("UTF-8");
            let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
                .expect("lines are infallible");
            lookups(&scrape)
        })
    });
    group.finish();
}

criterion_group!(benches, extract, prometheus_parse);
criterion_main!(benches);
