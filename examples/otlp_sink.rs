//! An OTLP/gRPC trace sink for load runs: accepts `TraceService/Export` on `--listen`
//! (default 127.0.0.1:4317), counts spans without keeping them, and prints the count every
//! second and on Ctrl-C / SIGTERM.
//!
//!     cargo run --release --example otlp_sink -- 127.0.0.1:4317

use std::net::SocketAddr;
use std::time::Duration;

use epp_testkit::otlp::OtlpCollector;

#[tokio::main]
async fn main() {
    let address: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4317".to_owned())
        .parse()
        .unwrap_or_else(|e| {
            eprintln!("otlp_sink: the argument must be ip:port: {e}");
            std::process::exit(2);
        });
    let sink = OtlpCollector::counting_sink(address).await;
    eprintln!("otlp_sink: listening on {address}");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .unwrap_or_else(|e| {
            eprintln!("otlp_sink: cannot watch SIGTERM: {e}");
            std::process::exit(1);
        });
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
        println!("spans {} exports {}", sink.span_count(), sink.exports());
    }
    println!("spans {} exports {}", sink.span_count(), sink.exports());
}
