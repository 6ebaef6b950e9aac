//! The no-op baseline: an ext_proc server that routes every request to one fixed endpoint
//! without reading bodies, answering with the same message shapes, in the same order and
//! through the same I/O pattern as the EPP (`epp_extproc`), so the difference between the
//! two is the EPP's own work.
//!
//! FULL_DUPLEX_STREAMED: nothing until the request body ends; then the headers reply
//! (destination, content-length, `envoy.lb` metadata, clear_route_cache) and every chunk
//! echoed as a streamed body reply. BUFFERED: an empty headers reply, then one body reply
//! carrying the route. Response headers get `x-went-into-resp-headers`; response chunks are
//! echoed (full duplex) or passed unchanged.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context as _;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    CommonResponse, HeaderMutation, ProcessingRequest, ProcessingResponse, processing_request,
};
use epp_extproc::BodyMode;
use epp_extproc::messages as reply;
use epp_net::tls::{ServingTls, TlsSettings, tls_incoming};
use futures_util::Stream;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::connect::Transport;

/// Replies buffered per stream, as the EPP does.
const REPLY_QUEUE: usize = 32;

/// How a stream's bodies arrive, from its `protocol_config`; a number the server does
/// not know counts as NONE.
fn body_mode(proto: i32) -> BodyMode {
    BodyMode::from_proto(proto).unwrap_or(BodyMode::None)
}

/// BUFFERED or BUFFERED_PARTIAL: the route rides on the body reply.
fn buffered(mode: BodyMode) -> bool {
    matches!(mode, BodyMode::Buffered | BodyMode::BufferedPartial)
}

/// STREAMED or NONE: the route rides on the headers reply.
fn at_headers(mode: BodyMode) -> bool {
    matches!(mode, BodyMode::Streamed | BodyMode::None)
}

/// One stream of the no-op server: pure, no I/O.
struct NoopStream {
    destination: Arc<str>,
    request_mode: BodyMode,
    response_mode: BodyMode,
    chunks: Vec<Vec<u8>>,
    body_len: usize,
}

impl NoopStream {
    fn new(destination: Arc<str>) -> NoopStream {
        NoopStream {
            destination,
            // The EPP's default when the gateway sends no protocol_config.
            request_mode: BodyMode::FullDuplexStreamed,
            response_mode: BodyMode::FullDuplexStreamed,
            chunks: Vec::new(),
            body_len: 0,
        }
    }

    fn on_message(&mut self, message: ProcessingRequest, out: &mut Vec<ProcessingResponse>) {
        if let Some(config) = &message.protocol_config {
            self.request_mode = body_mode(config.request_body_mode);
            self.response_mode = body_mode(config.response_body_mode);
        }
        use processing_request::Request as R;
        match message.request {
            Some(R::RequestHeaders(h)) if h.end_of_stream || at_headers(self.request_mode) => {
                out.push(self.route_on_headers(None));
            }
            Some(R::RequestHeaders(_)) if buffered(self.request_mode) => {
                out.push(reply::request_headers(None, None));
            }
            Some(R::RequestHeaders(_)) => {}
            Some(R::RequestBody(b)) => match self.request_mode {
                BodyMode::FullDuplexStreamed => {
                    self.body_len += b.body.len();
                    if !b.body.is_empty() {
                        self.chunks.push(b.body);
                    }
                    if b.end_of_stream {
                        self.release_body(out);
                    }
                }
                mode if buffered(mode) => out.push(reply::request_body(
                    Some(self.routing(None)),
                    Some(reply::destination_metadata(&self.destination)),
                )),
                _ => out.push(reply::request_body(None, None)),
            },
            Some(R::RequestTrailers(_)) => {
                if !self.chunks.is_empty() {
                    self.release_body(out);
                }
                out.push(reply::request_trailers());
            }
            Some(R::ResponseHeaders(_)) => {
                out.push(reply::response_headers(Some(CommonResponse {
                    header_mutation: Some(HeaderMutation {
                        set_headers: vec![reply::set_header(reply::RESPONSE_MARKER, "true")],
                        remove_headers: Vec::new(),
                    }),
                    ..Default::default()
                })))
            }
            Some(R::ResponseBody(b)) => match self.response_mode {
                BodyMode::FullDuplexStreamed => {
                    out.push(reply::response_body(Some(reply::streamed_chunk(
                        b.body,
                        b.end_of_stream,
                    ))));
                }
                _ => out.push(reply::response_body(None)),
            },
            Some(R::ResponseTrailers(_)) => out.push(reply::response_trailers()),
            None => {}
        }
    }

    fn routing(&self, content_length: Option<usize>) -> CommonResponse {
        let mut set = vec![reply::set_header(
            reply::DESTINATION_ENDPOINT,
            &self.destination,
        )];
        if let Some(length) = content_length.filter(|&l| l > 0) {
            set.push(reply::set_header("content-length", &length.to_string()));
        }
        reply::routing_common(set, Vec::new())
    }

    fn route_on_headers(&self, content_length: Option<usize>) -> ProcessingResponse {
        reply::request_headers(
            Some(self.routing(content_length)),
            Some(reply::destination_metadata(&self.destination)),
        )
    }

    /// The held headers reply, then the chunks echoed, the last marked end-of-stream.
    fn release_body(&mut self, out: &mut Vec<ProcessingResponse>) {
        out.push(self.route_on_headers(Some(self.body_len)));
        let chunks = std::mem::take(&mut self.chunks);
        if chunks.is_empty() {
            out.push(reply::request_body(
                Some(reply::streamed_chunk(Vec::new(), true)),
                None,
            ));
            return;
        }
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            out.push(reply::request_body(
                Some(reply::streamed_chunk(chunk, i == last)),
                None,
            ));
        }
    }
}

/// The tonic service.
#[derive(Clone)]
struct NoopService {
    destination: Arc<str>,
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for NoopService {
    type ProcessStream = ReplyStream;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        let stream = NoopStream::new(Arc::clone(&self.destination));
        tokio::spawn(run_stream(stream, request.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

async fn run_stream(
    mut stream: NoopStream,
    mut inbound: Streaming<ProcessingRequest>,
    tx: mpsc::Sender<Result<ProcessingResponse, Status>>,
) {
    let mut replies = Vec::with_capacity(4);
    while let Ok(Some(message)) = inbound.message().await {
        stream.on_message(message, &mut replies);
        for r in replies.drain(..) {
            if tx.send(Ok(r)).await.is_err() {
                return;
            }
        }
    }
}

/// Serves on `listener` until `shutdown` resolves, with the EPP's HTTP/2 settings
/// (`epp::app`: 4 MiB stream and 64 MiB connection windows, no stream limit) and no Nagle
/// delay on accepted connections (tonic ignores `tcp_nodelay` for a caller's listener; the
/// TLS acceptor of `epp_net::tls` sets it). TLS uses a self-signed certificate, as the EPP does.
pub async fn serve(
    listener: TcpListener,
    destination: &str,
    transport: Transport,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let limit = (64 << 20) + (1 << 20);
    let service = ExternalProcessorServer::new(NoopService {
        destination: Arc::from(destination),
    })
    .max_decoding_message_size(limit)
    .max_encoding_message_size(limit);
    let router = tonic::transport::Server::builder()
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(64 << 20))
        .max_concurrent_streams(Some(1_000_000))
        .add_service(service);
    let served = match transport {
        Transport::Plaintext => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        Transport::InsecureTls => {
            let tls =
                ServingTls::load(&TlsSettings::default()).context("self-signed certificate")?;
            let incoming = tls_incoming(listener, tls.acceptor());
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    served.context("no-op ext_proc server failed")
}

/// A no-op server on its own runtime and threads, as if it were another process; stops
/// when dropped.
pub struct InProcessNoop {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessNoop {
    /// Listens on a free loopback port with `threads` runtime workers.
    pub fn start(
        destination: &str,
        transport: Transport,
        threads: usize,
    ) -> anyhow::Result<InProcessNoop> {
        // Bound here so the address is known at once; the runtime lives on the new thread,
        // since a runtime cannot be started from inside the caller's.
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("bind the no-op server")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let destination = destination.to_owned();
        let thread = std::thread::Builder::new()
            .name("noop-ext-proc".to_owned())
            .spawn(move || {
                let served = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads.max(1))
                    .enable_all()
                    .build()
                    .context("no-op runtime")
                    .and_then(|runtime| {
                        runtime.block_on(async {
                            let listener = TcpListener::from_std(listener)?;
                            serve(listener, &destination, transport, async {
                                let _ = stopped.await;
                            })
                            .await
                        })
                    });
                if let Err(error) = served {
                    eprintln!("epp-bench: {error:#}");
                }
            })
            .context("start the no-op thread")?;
        Ok(InProcessNoop {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for InProcessNoop {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use epp_testkit::messages as wire;

    use super::*;
    use crate::messages::{self, Phase};

    /// The replies to each message, in order.
    fn run(messages: Vec<ProcessingRequest>) -> Vec<Vec<ProcessingResponse>> {
        let mut stream = NoopStream::new(Arc::from("10.0.0.9:8000"));
        messages
            .into_iter()
            .map(|m| {
                let mut out = Vec::new();
                stream.on_message(m, &mut out);
                out
            })
            .collect()
    }

    fn headers(mode: BodyMode) -> ProcessingRequest {
        wire::with_modes(
            wire::request_headers(&[(":method", "POST")], false),
            mode,
            mode,
        )
    }

    #[test]
    fn full_duplex_holds_the_route_until_the_body_ends_and_echoes() {
        let replies = run(vec![
            headers(BodyMode::FullDuplexStreamed),
            wire::request_body(&[1; 10], false),
            wire::request_body(&[2; 5], true),
        ]);
        assert!(replies[0].is_empty() && replies[1].is_empty());
        let end = &replies[2];
        assert_eq!(end.len(), 3);
        assert_eq!(
            messages::destination(&end[0], Phase::RequestHeaders),
            Ok("10.0.0.9:8000".to_owned())
        );
        let lengths: Vec<_> = end[1..]
            .iter()
            .map(|r| messages::streamed(r, Phase::RequestBody).expect("chunk"))
            .collect();
        assert_eq!(lengths, [(10, false), (5, true)]);
    }

    #[test]
    fn buffered_routes_on_the_body_reply() {
        let replies = run(vec![
            headers(BodyMode::Buffered),
            wire::request_body(&[1; 10], true),
            wire::response_headers(&[(":status", "200")], false),
            wire::response_body(&[3; 4], true),
        ]);
        assert!(messages::expect(&replies[0][0], Phase::RequestHeaders).is_ok());
        assert_eq!(
            messages::destination(&replies[1][0], Phase::RequestBody),
            Ok("10.0.0.9:8000".to_owned())
        );
        assert!(messages::expect(&replies[2][0], Phase::ResponseHeaders).is_ok());
        let body = messages::expect(&replies[3][0], Phase::ResponseBody).expect("body reply");
        assert!(body.is_none(), "BUFFERED response bodies pass unchanged");
    }
}
