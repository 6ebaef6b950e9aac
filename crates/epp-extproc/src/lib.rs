//! The ext_proc gRPC service (`envoy.service.ext_proc.v3.ExternalProcessor/Process`).
//!
//! Invariants:
//! - One stream is one HTTP exchange; its state lives in a [`StreamState`] owned by one
//!   task, and is dropped (releasing its in-flight count) when the stream ends for any
//!   reason.
//! - No lock is held across an `.await`; scheduling is synchronous and short.
//! - This module never scores or picks: it talks to an [`EndpointPicker`].
//! - Prompts and bodies are never logged at the default level.
//! - A request body is held in one buffer per stream, counted against the process-wide
//!   [`BufferBudget`] (`--max-buffered-request-bytes`) and given back when the body is
//!   handed on or the stream ends, whatever the reason.
//! - The service ends a stream with OK only after the gateway ended it: a message it
//!   cannot read ends the stream with an error status, so fail-closed still applies.

mod budget;
pub mod messages;
pub mod rejection;
pub mod request_log;
mod state;
mod usage;

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use epp_core::director::{Decision, Director, PickError, RoutingRequest};

pub use budget::{BudgetExhausted, BudgetLease, BufferBudget, DEFAULT_BUFFER_BUDGET};
pub use rejection::Rejection;
pub use request_log::{RequestLog, RequestLogEntry, RequestLogSettings};
pub use state::{
    BodyMode, FAIRNESS_HEADER, Flow, MODEL_REWRITE_HEADER, OBJECTIVE_HEADER, REQUEST_ID_HEADER,
    ResponseBodyOverride, StreamSettings, StreamState, TokenSettings,
};
pub use usage::{Usage, UsageScanner};

/// The narrow boundary between the protocol and routing.
pub trait EndpointPicker: Send + Sync + 'static {
    /// Picks endpoints for a request with a body (or routed at headers time).
    fn route(&self, request: &RoutingRequest<'_>) -> Result<Decision, PickError>;
    /// Picks a random endpoint for a request without a body.
    fn route_bodyless(&self, subset: Option<&[String]>) -> Result<Decision, PickError>;
}

impl EndpointPicker for Director {
    fn route(&self, request: &RoutingRequest<'_>) -> Result<Decision, PickError> {
        Director::route(self, request)
    }

    fn route_bodyless(&self, subset: Option<&[String]>) -> Result<Decision, PickError> {
        Director::route_bodyless(self, subset)
    }
}

/// Replies buffered per stream before the sender waits for the gateway to read.
const REPLY_QUEUE: usize = 32;

/// The tonic service; cheap to clone.
pub struct ExtProcService<P: EndpointPicker> {
    picker: Arc<P>,
    settings: Arc<StreamSettings>,
}

impl<P: EndpointPicker> Clone for ExtProcService<P> {
    fn clone(&self) -> Self {
        ExtProcService {
            picker: Arc::clone(&self.picker),
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<P: EndpointPicker> ExtProcService<P> {
    pub fn new(picker: Arc<P>, settings: StreamSettings) -> Self {
        ExtProcService {
            picker,
            settings: Arc::new(settings),
        }
    }

    /// The tonic server wrapper, with message size limits that fit the body limit (a
    /// BUFFERED body arrives, and may be sent back, in one message).
    pub fn into_server(self) -> ExternalProcessorServer<Self> {
        let limit = self.settings.max_request_body_bytes.saturating_add(1 << 20);
        ExternalProcessorServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<P: EndpointPicker> ExternalProcessor for ExtProcService<P> {
    type ProcessStream = ReplyStream;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        let state = StreamState::new(Arc::clone(&self.settings));
        // No per-stream span: entering and leaving it on every poll cost 7% of a 4 KB
        // exchange's CPU. Each line logged for a request names it itself (`x-request-id`).
        tokio::spawn(run_stream(Arc::clone(&self.picker), state, inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Asks the configured token source for the paused request's tokens, within its timeout.
/// Failures are logged at debug level only: the request is routed without tokens.
async fn fetch_tokens(
    state: &StreamState,
) -> (Option<epp_core::tokens::Tokens>, std::time::Duration) {
    let started = std::time::Instant::now();
    let (Some(settings), Some(request)) = (state.token_settings(), state.tokenize_request()) else {
        return (None, started.elapsed());
    };
    let tokens = match tokio::time::timeout(settings.timeout, settings.source.tokenize(request))
        .await
    {
        Ok(Ok(tokens)) => Some(tokens),
        Ok(Err(e)) => {
            tracing::debug!({ "x-request-id" = state.request_id(), reason = e.reason() }, "routing without tokens: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(
                { "x-request-id" = state.request_id() },
                "routing without tokens: the token source timed out"
            );
            None
        }
    };
    (tokens, started.elapsed())
}

/// How a wait in flow control ended.
enum WaitEnded {
    Outcome(Result<epp_core::flowcontrol::Dispatch, epp_core::flowcontrol::Refusal>),
    /// The gateway sent a message while the request waited (it has nothing to send then).
    StreamError(Status),
    GatewayLeft,
}

/// Waits for flow control to dispatch or refuse the paused request, while watching the
/// stream: when the gateway goes away (the client left), the wait is dropped, which takes
/// the request out of the queue at once.
async fn await_admission(
    state: &mut StreamState,
    inbound: &mut Streaming<ProcessingRequest>,
) -> WaitEnded {
    let Some(waiting) = state.take_waiting() else {
        return WaitEnded::StreamError(Status::internal("no request waits for flow control"));
    };
    tokio::select! {
        outcome = waiting => WaitEnded::Outcome(outcome),
        next = inbound.message() => match next {
            Ok(Some(_)) => WaitEnded::StreamError(Status::failed_precondition(
                "ext_proc message received while the request waits in flow control",
            )),
            Ok(None) | Err(_) => WaitEnded::GatewayLeft,
        },
    }
}

/// Serves one stream; when it ends, its endpoint slot is free, so flow control may let a
/// waiting request in now rather than at its next tick.
async fn run_stream<P: EndpointPicker>(
    picker: Arc<P>,
    state: StreamState,
    inbound: Streaming<ProcessingRequest>,
    tx: mpsc::Sender<Result<ProcessingResponse, Status>>,
) {
    let flow_control = state.flow_controller();
    serve_stream(picker, state, inbound, tx).await;
    if let Some(controller) = flow_control {
        controller.pump();
    }
}

/// Reads messages until the stream ends, the client leaves, or a reply closes it.
async fn serve_stream<P: EndpointPicker>(
    picker: Arc<P>,
    mut state: StreamState,
    mut inbound: Streaming<ProcessingRequest>,
    tx: mpsc::Sender<Result<ProcessingResponse, Status>>,
) {
    let mut replies = Vec::with_capacity(4);
    loop {
        let message = match inbound.message().await {
            Ok(Some(message)) => message,
            Ok(None) => {
                state.on_gateway_closed();
                break;
            }
            Err(status) => {
                // Envoy resets each stream once the response has ended: not worth a line,
                // and nobody is left to answer.
                if status.code() == tonic::Code::Cancelled || state.response_finished() {
                    break;
                }
                tracing::warn!({ "x-request-id" = state.request_id(), %status }, "cannot read an ext_proc message");
                let ending = state.on_unreadable_message(&status, &mut replies);
                for reply in replies.drain(..) {
                    if tx.send(Ok(reply)).await.is_err() {
                        return;
                    }
                }
                let _ = tx.send(Err(ending)).await;
                break;
            }
        };
        let observe_only = message.observability_mode;
        let mut flow = state.on_message(picker.as_ref(), message, &mut replies);
        loop {
            if observe_only {
                replies.clear();
            }
            for reply in replies.drain(..) {
                if tx.send(Ok(reply)).await.is_err() {
                    return; // the gateway went away
                }
            }
            flow = match flow {
                Ok(Flow::AwaitTokens) => {
                    let (tokens, waited) = fetch_tokens(&state).await;
                    state.resume_with_tokens(picker.as_ref(), tokens, waited, &mut replies)
                }
                Ok(Flow::AwaitAdmission) => match await_admission(&mut state, &mut inbound).await {
                    WaitEnded::Outcome(outcome) => {
                        state.resume_admitted(picker.as_ref(), outcome, &mut replies)
                    }
                    WaitEnded::StreamError(status) => Err(status),
                    // The gateway went away: dropping the wait took the request out.
                    WaitEnded::GatewayLeft => return,
                },
                done => {
                    flow = done;
                    break;
                }
            };
        }
        match flow {
            Ok(Flow::Continue | Flow::AwaitTokens | Flow::AwaitAdmission) => {}
            Ok(Flow::Close) => break,
            Err(status) => {
                tracing::warn!({ "x-request-id" = state.request_id(), %status }, "closing ext_proc stream");
                let _ = tx.send(Err(status)).await;
                break;
            }
        }
    }
}
