//! The token step: a stream whose scorer needs tokens pauses after the body, routes with what
//! the source gave, and replies in the same order as without the step.

use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::core::v3::HeaderMap;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    HttpBody, HttpHeaders, HttpTrailers, ProcessingRequest, ProcessingResponse, processing_request,
    processing_response,
};
use epp_core::config::{DEFAULT_CONFIG, EndpointPickerConfig};
use epp_core::datastore::fixtures::TestEndpoint;
use epp_core::datastore::{Datastore, PoolInfo};
use epp_core::director::{Decision, Director, DirectorSettings, PickError, RoutingRequest};
use epp_core::tokens::{TokenSource, TokenizeFuture, TokenizeRequest};

use super::*;

/// Routes with the real director and remembers the tokens each request came with.
struct RecordingPicker {
    director: Director,
    seen: Mutex<Vec<Option<Vec<u32>>>>,
}

impl EndpointPicker for RecordingPicker {
    fn route(&self, request: &RoutingRequest<'_>) -> Result<Decision, PickError> {
        self.seen
            .lock()
            .expect("not poisoned")
            .push(request.tokens.map(<[u32]>::to_vec));
        self.director.route(request)
    }

    fn route_bodyless(&self, subset: Option<&[String]>) -> Result<Decision, PickError> {
        self.director.route_bodyless(subset)
    }
}

struct NeverCalled;

impl TokenSource for NeverCalled {
    fn tokenize(&self, _: TokenizeRequest) -> TokenizeFuture {
        Box::pin(async { Err(epp_core::tokens::TokenizeError::Timeout) })
    }
}

fn picker() -> RecordingPicker {
    let store = Arc::new(Datastore::new(10));
    store.set_pool(PoolInfo {
        name: "pool".into(),
        namespace: "default".into(),
        target_ports: vec![8000],
    });
    let endpoint = TestEndpoint::new("10.0.0.1:8000");
    store
        .upsert_endpoint(endpoint.spec())
        .expect("add")
        .store_metrics(endpoint.metrics());
    let config = EndpointPickerConfig::from_text(DEFAULT_CONFIG).expect("default config");
    RecordingPicker {
        director: Director::new(store, config.scheduler, DirectorSettings::default()),
        seen: Mutex::new(Vec::new()),
    }
}

fn state() -> StreamState {
    StreamState::new(Arc::new(StreamSettings {
        tokens: Some(TokenSettings {
            source: Arc::new(NeverCalled),
            timeout: std::time::Duration::from_millis(10),
        }),
        ..StreamSettings::default()
    }))
}

fn headers(end_of_stream: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::RequestHeaders(HttpHeaders {
            headers: Some(HeaderMap::default()),
            end_of_stream,
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn body(bytes: &[u8], end_of_stream: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::RequestBody(HttpBody {
            body: bytes.to_vec(),
            end_of_stream,
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn trailers() -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::RequestTrailers(
            HttpTrailers::default(),
        )),
        ..Default::default()
    }
}

fn kinds(out: &[ProcessingResponse]) -> Vec<&'static str> {
    out.iter()
        .map(|r| match &r.response {
            Some(processing_response::Response::RequestHeaders(_)) => "headers",
            Some(processing_response::Response::RequestBody(_)) => "body",
            Some(processing_response::Response::RequestTrailers(_)) => "trailers",
            Some(processing_response::Response::ImmediateResponse(_)) => "immediate",
            _ => "other",
        })
        .collect()
}

const BODY: &[u8] = br#"{"model":"m","prompt":"hello there"}"#;

#[test]
fn the_stream_pauses_for_tokens_and_routes_with_them() {
    let picker = picker();
    let mut state = state();
    let mut out = Vec::new();
    assert_eq!(
        state.on_message(&picker, headers(false), &mut out).ok(),
        Some(Flow::Continue)
    );
    let flow = state.on_message(&picker, body(BODY, true), &mut out);
    assert_eq!(flow.ok(), Some(Flow::AwaitTokens));
    assert!(out.is_empty(), "nothing is routed before the tokens");
    let request = state.tokenize_request().expect("a body is lent");
    assert_eq!((request.model.as_str(), &request.body[..]), ("m", BODY));
    drop(request);
    let tokens: epp_core::tokens::Tokens = Arc::from(vec![1u32, 2, 3]);
    let flow = state.resume_with_tokens(&picker, Some(tokens), std::time::Duration::ZERO, &mut out);
    assert_eq!(flow.ok(), Some(Flow::Continue));
    assert_eq!(kinds(&out), ["headers", "body"]);
    assert_eq!(
        *picker.seen.lock().expect("not poisoned"),
        [Some(vec![1, 2, 3])]
    );
}

#[test]
fn without_tokens_the_request_is_still_routed() {
    let picker = picker();
    let mut state = state();
    let mut out = Vec::new();
    let _ = state.on_message(&picker, headers(false), &mut out);
    let _ = state.on_message(&picker, body(BODY, true), &mut out);
    let flow = state.resume_with_tokens(&picker, None, std::time::Duration::ZERO, &mut out);
    assert_eq!(flow.ok(), Some(Flow::Continue));
    assert_eq!(kinds(&out), ["headers", "body"]);
    assert_eq!(*picker.seen.lock().expect("not poisoned"), [None]);
}

#[test]
fn trailers_reply_after_the_routing_replies() {
    let picker = picker();
    let mut state = state();
    let mut out = Vec::new();
    let _ = state.on_message(&picker, headers(false), &mut out);
    let _ = state.on_message(&picker, body(BODY, false), &mut out);
    assert!(out.is_empty());
    let flow = state.on_message(&picker, trailers(), &mut out);
    assert_eq!(flow.ok(), Some(Flow::AwaitTokens));
    let flow = state.resume_with_tokens(&picker, None, std::time::Duration::ZERO, &mut out);
    assert_eq!(flow.ok(), Some(Flow::Continue));
    assert_eq!(kinds(&out), ["headers", "body", "trailers"]);
}

#[test]
fn a_bodyless_request_is_never_held_for_tokens() {
    let picker = picker();
    let mut state = state();
    let mut out = Vec::new();
    let flow = state.on_message(&picker, headers(true), &mut out);
    assert_eq!(flow.ok(), Some(Flow::Continue));
    assert_eq!(kinds(&out), ["headers"]);
}
