//! The exchange hook (what tracing spans are built from) sees each exchange once, with its
//! phases in order, the pick and the client's `traceparent`; a graceful stop waits for
//! nothing when idle.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use epp_core::config::{DEFAULT_CONFIG, EndpointPickerConfig};
use epp_core::datastore::{Datastore, EndpointSpec, PoolInfo};
use epp_core::director::{Director, DirectorSettings};
use epp_extproc::StreamSettings;
use epp_proxy::{ExchangeObserver, ExchangeReport, Outcome, Proxy, ProxySettings, Timeline};

/// What the observer keeps of each report.
#[derive(Debug, Clone)]
struct Seen {
    status: u16,
    outcome: Outcome,
    destination: Option<String>,
    pick_reason: Option<&'static str>,
    traceparent: Option<String>,
    model: String,
    timeline: Timeline,
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Seen>>);

impl ExchangeObserver for Recorder {
    fn exchange_finished(&self, report: &ExchangeReport<'_>) {
        self.0.lock().expect("lock").push(Seen {
            status: report.status,
            outcome: report.outcome,
            destination: report.destination.map(str::to_owned),
            pick_reason: report.pick_reason,
            traceparent: report.traceparent.map(str::to_owned),
            model: report.model.to_owned(),
            timeline: *report.timeline,
        });
    }
}

/// A model server stand-in answering `{"ok":true}`.
async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"{\"ok\":true}",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

/// Sends one HTTP/1.1 request and reads the whole answer.
async fn send(proxy: SocketAddr, body: &str, extra: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(proxy)
        .await
        .expect("connect");
    let request = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: epp\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
}

async fn reports(recorder: &Recorder, count: usize) -> Vec<Seen> {
    for _ in 0..500 {
        let seen = recorder.0.lock().expect("lock").clone();
        if seen.len() >= count {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {count} reports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_sees_each_exchange_with_ordered_phases() {
    let model_server = upstream().await;
    let datastore = Arc::new(Datastore::new(8));
    datastore.set_pool(PoolInfo {
        name: "pool".to_owned(),
        namespace: "default".to_owned(),
        target_ports: vec![model_server.port()],
    });
    datastore
        .upsert_endpoint(EndpointSpec::from_address(model_server))
        .expect("endpoint");
    datastore.set_synced(true);
    let config = EndpointPickerConfig::from_text(DEFAULT_CONFIG).expect("default config");
    let director = Director::new(datastore, config.scheduler, DirectorSettings::default());
    let recorder = Arc::new(Recorder::default());
    let mut settings = ProxySettings::new(Arc::new(StreamSettings::default()));
    settings.observer = Some(Arc::clone(&recorder) as Arc<dyn ExchangeObserver>);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Proxy::new(Arc::new(director), settings).serve(listener, async {
            let _ = stopped.await;
        }),
    );

    // A routed exchange.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let answer = send(
        proxy_address,
        r#"{"model":"m","prompt":"hello"}"#,
        &format!("traceparent: {traceparent}\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("{\"ok\":true}"), "{answer}");
    // A rejected one.
    let answer = send(proxy_address, "{not json", "").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    let seen = reports(&recorder, 2).await;
    let routed = &seen[0];
    assert_eq!((routed.status, routed.outcome), (200, Outcome::Completed));
    assert_eq!(
        routed.destination.as_deref(),
        Some(model_server.to_string().as_str())
    );
    // The pool has no scraped metrics: scheduled on stale (absent) ones.
    assert_eq!(routed.pick_reason, Some("stale_metrics"));
    assert_eq!(routed.traceparent.as_deref(), Some(traceparent));
    assert_eq!(routed.model, "m");
    let t = routed.timeline;
    let phases = [
        Some(t.received),
        t.body_read,
        t.parsed,
        t.scheduled,
        t.forwarded,
        t.upstream_headers,
        t.finished,
    ];
    assert!(phases.iter().all(Option::is_some), "{t:?}");
    assert!(
        phases.windows(2).all(|w| w[0] <= w[1]),
        "phases out of order: {t:?}"
    );
    assert_eq!(t.tokenized, None, "no scorer asked for tokens");

    let rejected = &seen[1];
    assert_eq!(
        (rejected.status, rejected.outcome),
        (400, Outcome::Rejected)
    );
    assert_eq!(
        (rejected.destination.as_deref(), rejected.pick_reason),
        (None, None)
    );
    assert!(rejected.timeline.scheduled.is_none() && rejected.timeline.finished.is_some());

    // Nothing open: the graceful stop returns at once.
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops")
        .expect("the server task");
}
