//! How long does reading an OpenAI request body take (validate the JSON, find `model`,
//! build the prompt text), for completions and chat bodies of 4 KB, 64 KB and 220 KB?
//! The 220 KB size is the long-prompt case users report as slow in the Go EPP.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use epp_core::request::parse_body;

fn text(size: usize) -> String {
    "The quick brown fox jumps over the lazy dog. ".repeat(size / 45 + 1)[..size].to_string()
}

fn completion(size: usize) -> Vec<u8> {
    serde_json::json!({"model": "llama", "prompt": text(size), "max_tokens": 100, "temperature": 0})
        .to_string()
        .into_bytes()
}

fn chat(size: usize) -> Vec<u8> {
    let turns: Vec<serde_json::Value> = (0..8)
        .map(|i| serde_json::json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": text(size / 8)}))
        .collect();
    serde_json::json!({"model": "llama", "messages": turns, "stream": true})
        .to_string()
        .into_bytes()
}

fn body_parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_body");
    for size in [4 << 10, 64 << 10, 220 << 10] {
        for (kind, body) in [("completion", completion(size)), ("chat", chat(size))] {
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_with_input(
                BenchmarkId::new(kind, format!("{}KB", size >> 10)),
                &body,
                |b, body| {
                    b.iter(|| {
                        parse_body(body)
                            .expect("valid")
                            .prompt
                            .map_or(0, |p| p.len())
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, body_parsing);
criterion_main!(benches);
