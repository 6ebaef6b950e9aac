//! Scraping against real HTTP servers on loopback: extraction end to end, failures that
//! must stay contained (hung, 500, garbage, huge pages), and endpoints that come and go.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::test_server::{Behaviour, TestServer};
use super::*;
use crate::presets::{Engine, MetricMapping};
use epp_core::datastore::{Datastore, EndpointSpec, LoraState};

const VLLM_PAGE: &str = "# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name=\"m\"} 7
vllm:num_requests_running{model_name=\"m\"} 3
vllm:kv_cache_usage_perc{model_name=\"m\"} 0.25
vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"a, b\",waiting_lora_adapters=\"\"} 1.75e9
vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"2048\"} 1
";

fn settings(engine: Engine) -> ScrapeSettings {
    ScrapeSettings {
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(300),
        max_bytes: 1 << 20,
        https: false,
        insecure_skip_verify: true,
        path: "/metrics".into(),
        port: None,
        mapping: Arc::new(CompiledMapping::new(MetricMapping::preset(engine))),
        metrics: None,
    }
}

struct Harness {
    datastore: Arc<Datastore>,
    stats: ScrapeStatsMap,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn scrape(addresses: &[SocketAddr], settings: ScrapeSettings) -> Harness {
    let datastore = Arc::new(Datastore::new(100));
    for &address in addresses {
        datastore
            .upsert_endpoint(EndpointSpec::from_address(address))
            .expect("add");
    }
    let scraper = Scraper::new(settings).expect("client");
    let stats = scraper.stats();
    let task = tokio::spawn(scraper.run(Arc::clone(&datastore)));
    Harness {
        datastore,
        stats,
        task,
    }
}

impl Harness {
    fn endpoint(&self, address: SocketAddr) -> Arc<Endpoint> {
        Arc::clone(self.datastore.snapshot().get(address).expect("endpoint"))
    }

    /// The endpoint's scrape counters (empty until its task has started).
    fn stats_of(&self, address: SocketAddr) -> Arc<ScrapeStats> {
        let id = self.endpoint(address).id();
        self.stats.read().get(&id).cloned().unwrap_or_default()
    }
}

/// Polls `condition` every 10 ms for up to 5 s.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn scraped_metrics_reach_the_endpoint() {
    let server = TestServer::start(Behaviour::Page(VLLM_PAGE.into())).await;
    let h = scrape(&[server.address], settings(Engine::Vllm));
    let endpoint = h.endpoint(server.address);
    eventually("metrics are stored", || {
        endpoint.metrics_updated_at().is_some()
    })
    .await;
    let m = endpoint.metrics_snapshot();
    assert_eq!(m.waiting_queue_size, 7);
    assert_eq!(m.running_requests, 3);
    assert_eq!(
        m.kv_cache_usage, 0.25,
        "newer vLLM name read through the rename fallback"
    );
    assert_eq!(
        m.lora,
        LoraState {
            active: vec!["a".into(), "b".into()],
            waiting: vec![],
            max_active: 2
        }
    );
    assert_eq!(
        m.cache.map(|c| (c.block_size, c.num_blocks)),
        Some((16, 2048))
    );
    // It keeps scraping on its interval.
    let first = endpoint.metrics_updated_at();
    eventually("a later scrape", || endpoint.metrics_updated_at() > first).await;
    assert_eq!(h.stats_of(server.address).failures(ScrapeFailure::Parse), 0);
}

#[tokio::test]
async fn a_hung_endpoint_does_not_delay_the_others() {
    let good = TestServer::start(Behaviour::Page(VLLM_PAGE.into())).await;
    let hung = TestServer::start(Behaviour::Hang).await;
    let h = scrape(&[hung.address, good.address], settings(Engine::Vllm));
    let healthy = h.endpoint(good.address);
    eventually("the healthy endpoint has 10 fresh scrapes", || {
        h.stats_of(good.address).scrapes.load(Ordering::Relaxed) >= 10
    })
    .await;
    assert!(
        healthy
            .metrics_age()
            .is_some_and(|age| age < Duration::from_millis(200))
    );
    eventually("the hung endpoint times out", || {
        h.stats_of(hung.address).failures(ScrapeFailure::Timeout) >= 1
    })
    .await;
    assert!(
        h.endpoint(hung.address).metrics_updated_at().is_none(),
        "no metrics from a hung server"
    );
}

#[tokio::test]
async fn failures_are_counted_by_kind_and_keep_old_metrics() {
    let server = TestServer::start(Behaviour::Page(VLLM_PAGE.into())).await;
    let h = scrape(&[server.address], settings(Engine::Vllm));
    let endpoint = h.endpoint(server.address);
    eventually("first metrics", || endpoint.metrics_updated_at().is_some()).await;
    let cases = [
        (Behaviour::Status(500), ScrapeFailure::Status),
        (
            Behaviour::Page("<html><body>Bad gateway</body></html>".into()),
            ScrapeFailure::Parse,
        ),
        (
            Behaviour::Page("vllm:num_requests_waiting{model_name=\"m\" 7\n".into()),
            ScrapeFailure::Parse,
        ),
        (Behaviour::Announced(50 << 20), ScrapeFailure::TooLarge),
        (Behaviour::Huge(50 << 20), ScrapeFailure::TooLarge),
    ];
    let stats = h.stats_of(server.address);
    for (behaviour, kind) in cases {
        server.set(behaviour.clone());
        let before = stats.failures(kind);
        eventually(&format!("{kind:?} from {behaviour:?}"), || {
            stats.failures(kind) > before
        })
        .await;
        let at = endpoint.metrics_updated_at();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            endpoint.metrics_updated_at(),
            at,
            "a failed scrape stores nothing ({kind:?})"
        );
        assert_eq!(endpoint.waiting_queue_size(), 7, "last good values kept");
    }
    // Recovery.
    server.set(Behaviour::Page(VLLM_PAGE.replace("} 7", "} 9")));
    eventually("recovered", || endpoint.waiting_queue_size() == 9).await;
}

#[tokio::test]
async fn endpoints_added_and_removed_while_scraping() {
    let a = TestServer::start(Behaviour::Page(VLLM_PAGE.into())).await;
    let b = TestServer::start(Behaviour::Page(VLLM_PAGE.replace("} 7", "} 1"))).await;
    let h = scrape(&[a.address], settings(Engine::Vllm));
    eventually("a scraped", || {
        h.endpoint(a.address).metrics_updated_at().is_some()
    })
    .await;
    assert_eq!(b.requests(), 0);

    h.datastore
        .upsert_endpoint(EndpointSpec::from_address(b.address))
        .expect("add b");
    let added = h.endpoint(b.address);
    eventually("b scraped", || added.waiting_queue_size() == 1).await;

    assert!(h.datastore.remove_endpoint(a.address));
    eventually("a's stats dropped", || h.stats.read().len() == 1).await;
    let seen = a.requests();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        a.requests() <= seen + 1,
        "scraping of a removed endpoint stops"
    );
    assert!(b.requests() > 0);
}

#[tokio::test]
async fn sglang_preset_and_metrics_port_override() {
    let page = "sglang:num_queue_reqs{model_name=\"m\"} 4\nsglang:num_running_reqs 2\nsglang:token_usage 0.5\nsglang:cache_config_info{page_size=\"64\",num_pages=\"100\"} 1\n";
    let server = TestServer::start(Behaviour::Page(page.into())).await;
    // The endpoint serves traffic on another port; metrics come from --model-server-metrics-port.
    let traffic = SocketAddr::new(server.address.ip(), 1);
    let mut s = settings(Engine::Sglang);
    s.port = Some(server.address.port());
    let h = scrape(&[traffic], s);
    let endpoint = h.endpoint(traffic);
    eventually("sglang metrics", || endpoint.metrics_updated_at().is_some()).await;
    let m = endpoint.metrics_snapshot();
    assert_eq!(
        (m.waiting_queue_size, m.running_requests, m.kv_cache_usage),
        (4, 2, 0.5)
    );
    assert_eq!(
        m.cache.map(|c| (c.block_size, c.num_blocks)),
        Some((64, 100))
    );
}

#[tokio::test]
async fn first_scrapes_are_spread_over_the_interval() {
    let server = TestServer::start(Behaviour::Page(VLLM_PAGE.into())).await;
    let addresses: Vec<SocketAddr> = (1..=50)
        .map(|i| SocketAddr::new(server.address.ip(), i))
        .collect();
    let mut s = settings(Engine::Vllm);
    s.interval = Duration::from_millis(400);
    s.port = Some(server.address.port());
    let h = scrape(&addresses, s);
    // After a quarter of the interval, some but not all endpoints have been scraped once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let done = server.requests();
    assert!(
        done > 0 && done < 50,
        "jittered start: {done} of 50 scraped in the first quarter"
    );
    eventually("all scraped", || server.requests() >= 50).await;
    drop(h);
}

/// An SGLang server scraped under the vLLM preset: a full page, none of it configured.
const SGLANG_ONLY_PAGE: &str = "sglang:num_queue_reqs{model_name=\"m\"} 0\nsglang:num_running_reqs 0\nsglang:token_usage 0.0\n";
const NAN_PAGE: &str = "vllm:num_requests_waiting{model_name=\"m\"} NaN\nvllm:num_requests_running{model_name=\"m\"} -1\nvllm:kv_cache_usage_perc{model_name=\"m\"} +Inf\n";

/// Routes one request with the default scheduling profile and returns the destination.
fn pick(director: &epp_core::director::Director) -> String {
    let headers = epp_core::request::RequestHeaders::new();
    let request = epp_core::director::RoutingRequest::new("r", "m", Some("hello"), &headers);
    director.route(&request).expect("routed").destination
}

#[tokio::test]
async fn unusable_metrics_are_stale_and_a_healthy_endpoint_wins() {
    use epp_core::config::{DEFAULT_CONFIG, EndpointPickerConfig};
    use epp_core::director::{Director, DirectorSettings};
    let empty = TestServer::start(Behaviour::Page(String::new())).await;
    let sglang = TestServer::start(Behaviour::Page(SGLANG_ONLY_PAGE.into())).await;
    let broken = TestServer::start(Behaviour::Page(NAN_PAGE.into())).await;
    let healthy = TestServer::start(Behaviour::Page(VLLM_PAGE.replace("} 7", "} 2"))).await;
    let servers = [&empty, &sglang, &broken, &healthy];
    let addresses: Vec<SocketAddr> = servers.iter().map(|s| s.address).collect();
    let h = scrape(&addresses, settings(Engine::Vllm));
    h.datastore.set_pool(epp_core::datastore::PoolInfo {
        name: "pool".into(),
        namespace: "default".into(),
        target_ports: vec![8000],
    });
    let config = EndpointPickerConfig::from_text(DEFAULT_CONFIG).expect("default config");
    let staleness = Duration::from_millis(300);
    let director = Director::new(
        Arc::clone(&h.datastore),
        config.scheduler,
        DirectorSettings {
            metrics_staleness: staleness,
            ..DirectorSettings::default()
        },
    );
    eventually("every endpoint scraped 3 times", || {
        servers.iter().all(|s| s.requests() >= 3)
    })
    .await;

    // Empty, foreign and NaN pages are unknown load, not idle: the healthy server, with
    // a small queue, gets every request.
    for _ in 0..20 {
        assert_eq!(pick(&director), healthy.address.to_string());
    }

    // The broken server recovers idle and wins; then its page goes empty, its last
    // values age out, and the healthy server wins again.
    broken.set(Behaviour::Page(
        VLLM_PAGE.replace("} 7", "} 0").replace("0.25", "0"),
    ));
    eventually("the recovered idle server is picked", || {
        pick(&director) == broken.address.to_string()
    })
    .await;
    broken.set(Behaviour::Page(String::new()));
    let recovered = h.endpoint(broken.address);
    eventually("the emptied server's metrics are stale", || {
        recovered.metrics_age().is_some_and(|age| age > staleness)
    })
    .await;
    for _ in 0..20 {
        assert_eq!(pick(&director), healthy.address.to_string());
    }
}

#[tokio::test]
async fn unusable_scrapes_are_counted_by_reason() {
    use epp_core::telemetry::metrics::{EppMetrics, MetricsLimits};
    let server = TestServer::start(Behaviour::Page(VLLM_PAGE.into())).await;
    let metrics = EppMetrics::new(MetricsLimits::default());
    let mut s = settings(Engine::Vllm);
    s.metrics = Some(Arc::clone(&metrics));
    let h = scrape(&[server.address], s);
    let count = |reason: &str| -> f64 {
        let series = format!(
            "inference_extension_model_server_unusable_metrics_total{{reason=\"{reason}\"}} "
        );
        let page = metrics.render();
        page.lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{page}"))
    };
    eventually("a few good scrapes", || {
        h.stats_of(server.address).scrapes.load(Ordering::Relaxed) >= 3
    })
    .await;
    // Good pages count nothing; every reason is exported from the start.
    for reason in UnusableReason::ALL {
        assert_eq!(count(reason.as_str()), 0.0, "{reason:?}");
    }
    let cases = [
        (NAN_PAGE.to_owned(), UnusableReason::InvalidValue),
        (
            SGLANG_ONLY_PAGE.to_owned(),
            UnusableReason::NoConfiguredMetrics,
        ),
        (String::new(), UnusableReason::NoConfiguredMetrics),
        (
            VLLM_PAGE.replace("vllm:kv_cache_usage_perc", "other"),
            UnusableReason::MissingMetric,
        ),
    ];
    for (page, reason) in cases {
        let before = count(reason.as_str());
        server.set(Behaviour::Page(page));
        eventually(&format!("{reason:?} counted"), || {
            count(reason.as_str()) >= before + 2.0
        })
        .await;
    }
}
