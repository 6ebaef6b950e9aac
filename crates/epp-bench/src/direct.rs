//! Direct mode: one HTTP exchange per ext_proc stream, driven as Envoy drives it.
//!
//! FULL_DUPLEX_STREAMED: request headers and every body chunk go out at once (the last with
//! end_of_stream); the routing reply and the echoed chunks are awaited; then the model
//! server's response headers and body go out at once and their replies are awaited.
//! BUFFERED: headers, wait, the whole body in one message, wait; response headers, wait;
//! response body, wait. Either way the client then half-closes and waits for the end.

use std::sync::Arc;

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use epp_testkit::messages as wire;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::load::{ErrorKind, Exchange, Sample};
use crate::messages::{self, BodyMode, Phase};
use crate::workload::Workload;

/// Largest gRPC message either side may send: a BUFFERED body travels in one message.
const MAX_MESSAGE: usize = 256 << 20;

/// The timings of a direct exchange, each from the request's start.
/// `exchange`: to the last reply of the response body (the whole stream as Envoy sees it);
/// `request`: to the last request-body reply (when Envoy can send the request upstream);
/// `route`: to the reply that carries the destination.
pub const METRICS: &[&str] = &["exchange", "request", "route"];

/// The `:authority` of every request, as a gateway's listener would see it.
const AUTHORITY: &str = "inference-gateway.bench";

/// Drives one ext_proc server.
pub struct DirectExchange {
    clients: Vec<ExternalProcessorClient<Channel>>,
    workload: Arc<Workload>,
    mode: BodyMode,
    chunk_bytes: usize,
    response: ModelResponse,
}

/// The model server's answer Envoy forwards to the ext_proc server: small JSON with usage,
/// as the two messages that carry it.
struct ModelResponse {
    headers: ProcessingRequest,
    body: ProcessingRequest,
    body_len: usize,
}

impl ModelResponse {
    fn new() -> ModelResponse {
        let body = br#"{"choices":[{"finish_reason":"length","index":0,"text":" bench"}],"created":1,"id":"cmpl-bench","model":"bench","object":"text_completion","usage":{"completion_tokens":16,"prompt_tokens":1024,"total_tokens":1040}}"#;
        let length = body.len().to_string();
        let headers = wire::response_headers(
            &[
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-length", &length),
                ("server", "epp-bench"),
            ],
            false,
        );
        ModelResponse {
            headers,
            body: wire::response_body(body, true),
            body_len: body.len(),
        }
    }
}

impl DirectExchange {
    /// `channels` are shared round-robin by the streams.
    pub fn new(
        channels: Vec<Channel>,
        workload: Arc<Workload>,
        mode: BodyMode,
        chunk_bytes: usize,
    ) -> Self {
        let clients = channels
            .into_iter()
            .map(|channel| {
                ExternalProcessorClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE)
            })
            .collect();
        DirectExchange {
            clients,
            workload,
            mode,
            chunk_bytes,
            response: ModelResponse::new(),
        }
    }

    fn client(&self, index: u64) -> ExternalProcessorClient<Channel> {
        let slot = usize::try_from(index % self.clients.len() as u64).unwrap_or(0);
        self.clients[slot].clone()
    }

    /// The stream's first message: request headers as Envoy's router forwards a client's
    /// POST, announcing the body mode both ways.
    fn request_headers(&self, body_len: usize) -> ProcessingRequest {
        let request_id = uuid::Uuid::new_v4().to_string();
        let length = body_len.to_string();
        let headers = wire::request_headers(
            &[
                (":authority", AUTHORITY),
                (":path", self.workload.api.path()),
                (":method", "POST"),
                (":scheme", "http"),
                ("content-type", "application/json"),
                ("content-length", &length),
                ("user-agent", "epp-bench"),
                ("accept", "*/*"),
                ("x-forwarded-proto", "http"),
                ("x-request-id", &request_id),
            ],
            false,
        );
        wire::with_modes(headers, self.mode.wire(), self.mode.wire())
    }

    async fn full_duplex(&self, index: u64, start: Instant) -> Result<Sample, ErrorKind> {
        let body = &self.workload.get(index).body;
        let chunks = wire::request_body_chunks(body, self.chunk_bytes);
        let (tx, rx) = mpsc::channel(chunks.len() + 3);
        send(&tx, self.request_headers(body.len())).await?;
        for chunk in chunks {
            send(&tx, chunk).await?;
        }
        let mut replies = Replies::open(self.client(index), rx).await?;
        let reply = replies.expect(Phase::RequestHeaders).await?;
        let destination = messages::destination(&reply, Phase::RequestHeaders)?;
        let route = start.elapsed();
        replies
            .streamed_echo(Phase::RequestBody, body.len())
            .await?;
        let request = start.elapsed();
        send(&tx, self.response.headers.clone()).await?;
        send(&tx, self.response.body.clone()).await?;
        replies.expect(Phase::ResponseHeaders).await?;
        replies
            .streamed_echo(Phase::ResponseBody, self.response.body_len)
            .await?;
        let exchange = start.elapsed();
        drop(tx);
        replies.end().await?;
        Ok(Sample {
            timings: vec![exchange, request, route],
            destination: Some(destination),
            group: self.workload.get(index).group,
        })
    }

    async fn buffered(&self, index: u64, start: Instant) -> Result<Sample, ErrorKind> {
        let body = &self.workload.get(index).body;
        let (tx, rx) = mpsc::channel(4);
        send(&tx, self.request_headers(body.len())).await?;
        let mut replies = Replies::open(self.client(index), rx).await?;
        replies.expect(Phase::RequestHeaders).await?;
        send(&tx, wire::request_body(body, true)).await?;
        let reply = replies.expect(Phase::RequestBody).await?;
        let destination = messages::destination(&reply, Phase::RequestBody)?;
        let route = start.elapsed();
        send(&tx, self.response.headers.clone()).await?;
        replies.expect(Phase::ResponseHeaders).await?;
        send(&tx, self.response.body.clone()).await?;
        replies.expect(Phase::ResponseBody).await?;
        let exchange = start.elapsed();
        drop(tx);
        replies.end().await?;
        Ok(Sample {
            timings: vec![exchange, route, route],
            destination: Some(destination),
            group: self.workload.get(index).group,
        })
    }
}

impl Exchange for DirectExchange {
    fn metrics(&self) -> &'static [&'static str] {
        METRICS
    }

    async fn run(&self, index: u64, start: Instant) -> Result<Sample, ErrorKind> {
        match self.mode {
            BodyMode::FullDuplex => self.full_duplex(index, start).await,
            BodyMode::Buffered => self.buffered(index, start).await,
        }
    }
}

async fn send(
    tx: &mpsc::Sender<ProcessingRequest>,
    message: ProcessingRequest,
) -> Result<(), ErrorKind> {
    // The receiver lives in the gRPC call; it is gone only when the call ended.
    tx.send(message)
        .await
        .map_err(|_| ErrorKind::Protocol("server ended the stream early"))
}

/// The server's side of one stream.
struct Replies(Streaming<ProcessingResponse>);

impl Replies {
    /// Starts the call; messages already queued in `rx` go out at once.
    async fn open(
        mut client: ExternalProcessorClient<Channel>,
        rx: mpsc::Receiver<ProcessingRequest>,
    ) -> Result<Replies, ErrorKind> {
        let response = client
            .process(ReceiverStream::new(rx))
            .await
            .map_err(|status| ErrorKind::Grpc(status.code()))?;
        Ok(Replies(response.into_inner()))
    }

    async fn next(&mut self) -> Result<ProcessingResponse, ErrorKind> {
        match self.0.message().await {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(ErrorKind::Protocol("server ended the stream early")),
            Err(status) => Err(ErrorKind::Grpc(status.code())),
        }
    }

    /// The next reply, which must answer `phase`.
    async fn expect(&mut self, phase: Phase) -> Result<ProcessingResponse, ErrorKind> {
        let reply = self.next().await?;
        messages::expect(&reply, phase)?;
        Ok(reply)
    }

    /// Streamed replies of `phase` until end_of_stream; they must echo `expected` bytes.
    async fn streamed_echo(&mut self, phase: Phase, expected: usize) -> Result<(), ErrorKind> {
        let mut echoed = 0;
        loop {
            let reply = self.next().await?;
            let (len, end) = messages::streamed(&reply, phase)?;
            echoed += len;
            if end {
                break;
            }
        }
        match echoed == expected {
            true => Ok(()),
            false => Err(ErrorKind::Protocol("echoed body differs in length")),
        }
    }

    /// After the client half-closed: the server must end the stream cleanly.
    async fn end(&mut self) -> Result<(), ErrorKind> {
        match self.0.message().await {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(ErrorKind::Protocol("unexpected reply after the exchange")),
            Err(status) => Err(ErrorKind::Grpc(status.code())),
        }
    }
}
