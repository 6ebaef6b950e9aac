//! Shared helpers for the integration tests: an in-process EPP on loopback and an
//! ext_proc client that speaks like Envoy, message by message.
#![allow(dead_code)]

pub mod driver;
pub mod messages;
pub mod tls_client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use epp::app::{self, RunningEpp};
use epp::cli::{EndpointSource, Options};
use epp_core::config::EndpointPickerConfig;
use epp_core::datastore::{Datastore, MetricsUpdate, Objective};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

/// How long a test waits for one reply before failing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// The scorers of the upstream hermetic test: kv, queue, prefix, lora (weight 1), max-score picker.
pub const HERMETIC_CONFIG: &str = r#"
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: kv-cache-utilization-scorer
- type: queue-scorer
- type: prefix-cache-scorer
- type: lora-affinity-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: kv-cache-utilization-scorer
  - pluginRef: queue-scorer
  - pluginRef: prefix-cache-scorer
  - pluginRef: lora-affinity-scorer
  - pluginRef: max-score-picker
"#;

/// An EPP running in this process on ephemeral loopback ports, plaintext.
pub struct TestEpp {
    pub running: RunningEpp,
}

impl TestEpp {
    /// Starts an EPP over `endpoints` (`ip:port`) with `config` (YAML).
    pub async fn start(endpoints: &[&str], config: &str) -> TestEpp {
        Self::start_with(endpoints, config, |_| {}).await
    }

    /// Like [`TestEpp::start`], letting the test adjust the flags first.
    pub async fn start_with(
        endpoints: &[&str],
        config: &str,
        adjust: impl FnOnce(&mut Options),
    ) -> TestEpp {
        let mut options = Options::default();
        let addresses: Vec<SocketAddr> = endpoints
            .iter()
            .map(|a| a.parse().expect("endpoint address"))
            .collect();
        options.endpoint_source = EndpointSource::Static(addresses.clone());
        options.endpoints = addresses;
        options.grpc_port = 0;
        options.grpc_health_port = 0;
        options.metrics_port = 0;
        options.secure_serving = false;
        adjust(&mut options);
        let config = EndpointPickerConfig::from_text(config).expect("test config");
        let running = app::start(&options, config).await.expect("EPP starts");
        TestEpp { running }
    }

    pub fn datastore(&self) -> &Arc<Datastore> {
        &self.running.datastore
    }

    /// Sets the metrics of the endpoint at `address`.
    pub fn set_metrics(&self, address: &str, update: MetricsUpdate) {
        let address: SocketAddr = address.parse().expect("address");
        let snapshot = self.datastore().snapshot();
        let endpoint = snapshot.get(address).expect("endpoint exists");
        endpoint.store_metrics(update);
    }

    pub fn set_objective(&self, name: &str, priority: i32) {
        self.datastore().set_objective(Objective {
            name: name.to_owned(),
            priority,
        });
    }

    pub async fn client(&self) -> ExternalProcessorClient<Channel> {
        let url = format!("http://127.0.0.1:{}", self.running.ext_proc_address.port());
        ExternalProcessorClient::connect(url)
            .await
            .expect("connect to ext_proc")
    }

    /// Opens one ext_proc stream.
    pub async fn stream(&self) -> ExtProcStream {
        ExtProcStream::open(self.client().await).await
    }
}

/// One ext_proc stream driven like Envoy drives it.
pub struct ExtProcStream {
    tx: Option<mpsc::Sender<ProcessingRequest>>,
    replies: Streaming<ProcessingResponse>,
}

/// What the server did after the messages sent so far.
#[derive(Debug)]
pub enum Next {
    Reply(Box<ProcessingResponse>),
    /// The server closed the stream cleanly.
    Closed,
    /// The server ended the stream with a gRPC error.
    Error(tonic::Status),
    /// Nothing arrived within the wait.
    Silent,
}

impl ExtProcStream {
    pub async fn open(mut client: ExternalProcessorClient<Channel>) -> ExtProcStream {
        let (tx, rx) = mpsc::channel(64);
        let replies = client
            .process(ReceiverStream::new(rx))
            .await
            .expect("open ext_proc stream")
            .into_inner();
        ExtProcStream {
            tx: Some(tx),
            replies,
        }
    }

    pub async fn send(&mut self, message: ProcessingRequest) {
        let tx = self.tx.as_ref().expect("stream still open for sending");
        tx.send(message).await.expect("send to ext_proc");
    }

    /// Sends request headers (no client headers, a body to follow) that ask for
    /// FULL_DUPLEX_STREAMED in both directions, as the upstream Envoy config does.
    pub async fn start_full_duplex(&mut self) {
        self.send(messages::with_modes(
            messages::request_headers(&[], false),
            messages::FULL_DUPLEX,
            messages::FULL_DUPLEX,
        ))
        .await;
    }

    /// Sends `body` as one request-body message per byte, the last marked end-of-stream.
    pub async fn send_body_byte_by_byte(&mut self, body: &[u8]) {
        let (last, rest) = body.split_last().expect("a body");
        for byte in rest {
            self.send(messages::request_body(std::slice::from_ref(byte), false))
                .await;
        }
        self.send(messages::request_body(std::slice::from_ref(last), true))
            .await;
    }

    /// Ends the client side of the stream (as Envoy does when the exchange is over).
    pub fn close_send(&mut self) {
        self.tx = None;
    }

    /// The next event within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Next {
        match tokio::time::timeout(wait, self.replies.message()).await {
            Err(_) => Next::Silent,
            Ok(Ok(Some(reply))) => Next::Reply(Box::new(reply)),
            Ok(Ok(None)) => Next::Closed,
            Ok(Err(status)) => Next::Error(status),
        }
    }

    /// The next reply; panics on anything else.
    pub async fn reply(&mut self) -> ProcessingResponse {
        match self.next_within(REPLY_TIMEOUT).await {
            Next::Reply(reply) => *reply,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    /// Sends `message` and returns the replies it causes: `count` of them.
    pub async fn exchange(
        &mut self,
        message: ProcessingRequest,
        count: usize,
    ) -> Vec<ProcessingResponse> {
        self.send(message).await;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(self.reply().await);
        }
        out
    }

    /// Asserts that nothing arrives for a short while (a held reply).
    pub async fn expect_silence(&mut self) {
        match self.next_within(Duration::from_millis(100)).await {
            Next::Silent => {}
            other => panic!("expected no reply yet, got {other:?}"),
        }
    }

    /// Asserts the server ends the stream (cleanly or with an error) and returns how.
    pub async fn end(&mut self) -> Next {
        match self.next_within(REPLY_TIMEOUT).await {
            Next::Reply(reply) => panic!("expected the stream to end, got {reply:?}"),
            Next::Silent => panic!("expected the stream to end, but it stayed open"),
            other => other,
        }
    }
}

/// Metrics for `set_metrics`: waiting queue, KV usage, active LoRA adapters.
pub fn metrics(queue: u64, kv: f64, active: &[&str]) -> MetricsUpdate {
    MetricsUpdate {
        waiting_queue_size: Some(queue),
        kv_cache_usage: Some(kv),
        lora: Some(epp_core::datastore::LoraState {
            active: active.iter().map(|s| s.to_string()).collect(),
            waiting: Vec::new(),
            max_active: 0,
        }),
        ..Default::default()
    }
}
