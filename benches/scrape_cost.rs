//! How much CPU does scraping cost: N endpoints, each scraped every interval, each page
//! the realistic 53 KB vLLM fixture? Prints the scraper's CPU per scrape and what that
//! means for 1000 endpoints at the default 50 ms.
//!
//! Not a criterion bench: it runs the real `Scraper` for a while and reads the CPU time
//! of its own threads from /proc, so the metrics server in the same process (on its own
//! threads) is not counted. Knobs: SCRAPE_ENDPOINTS (default 1000), SCRAPE_INTERVAL_MS
//! (default 500: the full 50 ms rate needs ~1 GB/s of loopback traffic, more than this
//! 2-core machine can serve and scrape at once), SCRAPE_SECONDS (default 10).
//! Run: `cargo bench --bench scrape_cost`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use epp_datalayer::extract::CompiledMapping;
use epp_datalayer::presets::{Engine, MetricMapping};
use epp_datalayer::scraper::{ScrapeSettings, Scraper};
use epp_testkit::env::knob;
use epp_testkit::fixtures::TestEndpoint;
use epp_testkit::{datastore, procfs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PAGE: &str = include_str!("../tests/fixtures/vllm-metrics.txt");

/// CPU seconds used so far by this process's threads whose name starts with `prefix`.
fn thread_cpu_seconds(prefix: &str) -> f64 {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let mut total = 0u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        total += procfs::cpu_ticks(&stat).unwrap_or(0);
    }
    total as f64 / ticks_per_second
}

/// A keep-alive HTTP/1.1 server that answers every request with the fixture page.
async fn serve_page(listener: TcpListener) {
    let response: Arc<Vec<u8>> = Arc::new(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{PAGE}",
            PAGE.len()
        )
        .into_bytes(),
    );
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve_connection(stream, Arc::clone(&response)));
    }
}

async fn serve_connection(mut stream: TcpStream, response: Arc<Vec<u8>>) {
    let mut buffer = vec![0u8; 4096];
    let mut pending = Vec::new();
    loop {
        let Ok(n) = stream.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            return;
        }
        pending.extend_from_slice(&buffer[..n]);
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            if stream.write_all(&response).await.is_err() {
                return;
            }
        }
    }
}

fn main() {
    let endpoints: usize = knob("SCRAPE_ENDPOINTS", 1000);
    let interval = Duration::from_millis(knob("SCRAPE_INTERVAL_MS", 500));
    let seconds = knob("SCRAPE_SECONDS", 10);

    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("metrics-server")
        .enable_all()
        .build()
        .expect("server runtime");
    let listener = server
        .block_on(TcpListener::bind("0.0.0.0:0"))
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    server.spawn(serve_page(listener));

    let scraping = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("scraper")
        .enable_all()
        .build()
        .expect("scraper runtime");
    let datastore = datastore::with_endpoints((0..endpoints).map(|i| {
        // Distinct loopback addresses (127.0.0.0/8 all reach this host), one per endpoint.
        let address = SocketAddr::from(([127, 0, (i / 250) as u8, (i % 250 + 1) as u8], 8000));
        TestEndpoint::new(&address.to_string())
    }));
    let settings = ScrapeSettings {
        interval,
        timeout: Duration::from_secs(2),
        max_bytes: 16 << 20,
        https: false,
        insecure_skip_verify: true,
        path: "/metrics".into(),
        port: Some(port),
        mapping: Arc::new(CompiledMapping::new(MetricMapping::preset(Engine::Vllm))),
        metrics: None,
    };
    let scraper = scraping
        .block_on(async { Scraper::new(settings) })
        .expect("scraper");
    let stats = scraper.stats();
    scraping.spawn(scraper.run(Arc::clone(&datastore)));

    let total_scrapes = || -> u64 {
        stats
            .read()
            .values()
            .map(|s| s.scrapes.load(Ordering::Relaxed))
            .sum()
    };
    std::thread::sleep(Duration::from_secs(2)); // warm-up: connections open, jitter spread
    let (cpu0, scrapes0, t0) = (
        thread_cpu_seconds("scraper"),
        total_scrapes(),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, scrapes1, elapsed) = (
        thread_cpu_seconds("scraper"),
        total_scrapes(),
        t0.elapsed().as_secs_f64(),
    );

    let scrapes = (scrapes1 - scrapes0) as f64;
    let cpu = cpu1 - cpu0;
    let per_scrape_us = cpu / scrapes.max(1.0) * 1e6;
    let full_rate = 1000.0 * 20.0; // 1000 endpoints every 50 ms
    println!(
        "endpoints {endpoints}, interval {interval:?}, page {} bytes",
        PAGE.len()
    );
    println!(
        "scrapes/s {:.0} (expected {:.0})",
        scrapes / elapsed,
        endpoints as f64 / interval.as_secs_f64()
    );
    println!(
        "scraper CPU {:.1}% of one core; {per_scrape_us:.1} µs CPU per scrape",
        cpu / elapsed * 100.0
    );
    println!(
        "projected: 1000 endpoints at 50 ms = {:.2} cores",
        per_scrape_us * full_rate / 1e6
    );
}
