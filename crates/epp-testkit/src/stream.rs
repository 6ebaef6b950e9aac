//! One ext_proc stream driven message by message as Envoy drives it, and what the server
//! did after each message.

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use epp_extproc::BodyMode;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::messages;

/// How long a test waits for one reply before failing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// An ext_proc client, as tonic generates it.
pub type ExtProcClient = ExternalProcessorClient<Channel>;

/// A plaintext ext_proc client of the server at `address`.
pub async fn client(address: SocketAddr) -> ExtProcClient {
    ExternalProcessorClient::connect(format!("http://127.0.0.1:{}", address.port()))
        .await
        .expect("connect to ext_proc")
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
    pub async fn open(mut client: ExtProcClient) -> ExtProcStream {
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
            BodyMode::FullDuplexStreamed,
            BodyMode::FullDuplexStreamed,
        ))
        .await;
    }

    /// Sends `body` as one request-body message per byte, the last marked end-of-stream.
    pub async fn send_body_byte_by_byte(&mut self, body: &[u8]) {
        for message in messages::request_body_chunks(body, 1) {
            self.send(message).await;
        }
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
