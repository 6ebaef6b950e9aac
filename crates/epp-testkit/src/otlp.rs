//! A small OTLP/gRPC trace collector: the real `opentelemetry.proto.collector.trace.v1.
//! TraceService/Export` (protos from `opentelemetry-proto`), served by tonic on loopback.
//! It keeps every span it receives, decoded into [`ReceivedSpan`]; [`OtlpCollector::hold`]
//! makes exports wait until released, to fill an exporter's queue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use parking_lot::Mutex;
use tokio::sync::watch;

/// One span as the collector received it (ids in lower-case hex, as in `traceparent`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    pub service_name: Option<String>,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// OTLP `SpanKind` (1 internal, 2 server, ...).
    pub kind: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// Attribute values as text (arrays as their elements joined with `,`).
    pub attributes: Vec<(String, String)>,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    /// The OTLP span flags (bit 8: the parent is remote; bits 0-7: trace flags).
    pub flags: u32,
}

impl ReceivedSpan {
    /// The value of attribute `key`.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    exports: usize,
    /// Spans received, kept or not.
    count: u64,
}

#[derive(Clone)]
struct Service {
    received: Arc<Mutex<Received>>,
    held: watch::Receiver<bool>,
    /// Whether spans are kept ([`OtlpCollector::start`]) or only counted (a load sink).
    keep: bool,
}

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut held = self.held.clone();
        let _ = held.wait_for(|held| !*held).await;
        let request = request.into_inner();
        let mut received = self.received.lock();
        received.exports += 1;
        if !self.keep {
            received.count += request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len() as u64)
                .sum::<u64>();
            return Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            }));
        }
        for resource_spans in request.resource_spans {
            let service_name = resource_spans.resource.as_ref().and_then(|r| {
                r.attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .map(|kv| text(kv.value.as_ref()))
            });
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.count += 1;
                    received.spans.push(ReceivedSpan {
                        service_name: service_name.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        kind: span.kind,
                        start_unix_nano: span.start_time_unix_nano,
                        end_unix_nano: span.end_time_unix_nano,
                        attributes: span.attributes.iter().map(pair).collect(),
                        status_code: span.status.map_or(0, |s| s.code),
                        flags: span.flags,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pair(kv: &KeyValue) -> (String, String) {
    (kv.key.clone(), text(kv.value.as_ref()))
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::ArrayValue(array)) => array
            .values
            .iter()
            .map(|v| text(Some(v)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// The collector; stops when dropped.
pub struct OtlpCollector {
    pub address: SocketAddr,
    received: Arc<Mutex<Received>>,
    hold: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpCollector {
    /// Serves on an ephemeral loopback port, keeping every span.
    pub async fn start() -> OtlpCollector {
        Self::serve("127.0.0.1:0".parse().expect("address"), true).await
    }

    /// Serves on `address`, counting spans without keeping them (a sink for load runs).
    pub async fn counting_sink(address: SocketAddr) -> OtlpCollector {
        Self::serve(address, false).await
    }

    async fn serve(address: SocketAddr, keep: bool) -> OtlpCollector {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .expect("bind the collector");
        let address = listener.local_addr().expect("collector address");
        let received = Arc::new(Mutex::new(Received::default()));
        let (hold, held) = watch::channel(false);
        let service = Service {
            received: Arc::clone(&received),
            held,
            keep,
        };
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        OtlpCollector {
            address,
            received,
            hold,
            task,
        }
    }

    /// `http://127.0.0.1:port`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.lock().spans.clone()
    }

    /// Spans received so far (kept or only counted).
    pub fn span_count(&self) -> u64 {
        self.received.lock().count
    }

    /// Export calls answered so far.
    pub fn exports(&self) -> usize {
        self.received.lock().exports
    }

    /// Makes exports wait (`true`) until released (`false`).
    pub fn hold(&self, held: bool) {
        let _ = self.hold.send(held);
    }

    /// Waits until at least `count` spans arrived (panics after `limit`).
    pub async fn wait_for_spans(&self, count: usize, limit: Duration) -> Vec<ReceivedSpan> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let spans = self.spans();
            if spans.len() >= count {
                return spans;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} spans after {limit:?}, want {count}: {spans:#?}",
                spans.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for OtlpCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}
