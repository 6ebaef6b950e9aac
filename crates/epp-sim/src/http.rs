//! The HTTP server: HTTP/1.1 and h2c (prior knowledge) on one port, vLLM's OpenAI routes plus
//! `/health`, `/metrics` and the simulator's own `/sim/fake-metrics`.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/completions`, `POST /v1/chat/completions` | JSON or SSE (`"stream": true`) |
//! | `POST /v1/responses` | a Responses API `response`, or its SSE events (`responses.rs`) |
//! | `POST /v1/embeddings` | vectors after a prefill-only pass through the engine (`embeddings.rs`) |
//! | `POST /tokenize` | vLLM's: the prompt's or chat's token ids, as the engine sees them |
//! | `GET /v1/models` | the base model and the LoRA adapters |
//! | `GET /health` | 200, empty |
//! | `GET /metrics` | Prometheus text 0.0.4 |
//! | `GET`/`PUT`/`DELETE /sim/fake-metrics` | read, set (JSON body, `null` resets) or reset the override |
//!
//! Every response carries `x-sim-server: <port>` so end-to-end tests can see which backend
//! served a request.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{ApiError, Endpoint, Generation};
use crate::embeddings::EmbeddingRequest;
use crate::fake::FakeMetrics;
use crate::metrics;
use crate::respond::{self, ResponseMeta, SseBody};
use crate::responses::{ResponsesRequest, ResponsesSse};
use crate::server::{Shared, stopped};
use epp_net::listener::Acceptor;

/// The identity header on every response.
pub const SERVER_HEADER: HeaderName = HeaderName::from_static("x-sim-server");

/// Largest request body accepted (bytes).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Accepts connections until `stop` turns true, then drops the open ones.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let mut listener = Acceptor::new(listener, "sim");
    loop {
        tokio::select! {
            (stream, _) = listener.accept() => {
                connections.spawn(serve_connection(stream, Arc::clone(&shared)));
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = stopped(&mut stop) => break,
        }
    }
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(shared, request).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    if let Err(error) = builder
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "sim: connection ended with an error");
    }
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let mut response = route(&shared, request).await;
    response
        .headers_mut()
        .insert(SERVER_HEADER, shared.server_id.clone());
    response
}

async fn route(shared: &Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().clone();
    match (request.uri().path(), method) {
        ("/v1/completions", Method::POST) => generate(shared, request, Endpoint::Completions).await,
        ("/v1/chat/completions", Method::POST) => generate(shared, request, Endpoint::Chat).await,
        ("/v1/responses", Method::POST) => responses(shared, request).await,
        ("/v1/embeddings", Method::POST) => embeddings(shared, request).await,
        ("/tokenize", Method::POST) => tokenize(shared, request).await,
        ("/v1/models", Method::GET) => json_response(StatusCode::OK, &models(shared)),
        ("/health", Method::GET) => full(StatusCode::OK, None, Bytes::new()),
        ("/metrics", Method::GET) => {
            let page = shared.render_metrics();
            full(
                StatusCode::OK,
                Some(metrics::CONTENT_TYPE),
                Bytes::from(page),
            )
        }
        ("/sim/fake-metrics", Method::GET) => {
            json_response(StatusCode::OK, &json!(shared.fake_metrics()))
        }
        ("/sim/fake-metrics", Method::PUT | Method::POST) => set_fake(shared, request).await,
        ("/sim/fake-metrics", Method::DELETE) => {
            shared.set_fake_metrics(None);
            json_response(StatusCode::OK, &Value::Null)
        }
        (
            "/v1/completions"
            | "/v1/chat/completions"
            | "/v1/responses"
            | "/v1/embeddings"
            | "/tokenize"
            | "/v1/models"
            | "/health"
            | "/metrics"
            | "/sim/fake-metrics",
            _,
        ) => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"detail": "Method Not Allowed"}),
        ),
        _ => json_response(StatusCode::NOT_FOUND, &json!({"detail": "Not Found"})),
    }
}

async fn generate(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
    endpoint: Endpoint,
) -> Response<Body> {
    let generation = match read_body(request).await {
        Ok(body) => Generation::parse(endpoint, &body, &shared.config),
        Err(error) => Err(error),
    };
    let generation = match generation {
        Ok(g) => g,
        Err(error) => return error_response(&error),
    };
    let events = shared.run(&generation);
    let meta = ResponseMeta {
        id: shared.next_response_id(endpoint.id_prefix()),
        created: shared.unix_seconds(),
        model: generation.model.clone(),
        endpoint,
        prompt_tokens: generation.prompts.iter().map(|p| p.len()).collect(),
    };
    if generation.stream {
        return sse_response(UnsyncBoxBody::new(SseBody::new(
            meta,
            events,
            generation.include_usage,
        )));
    }
    match respond::collect(meta, events).await {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(error) => error_response(&error),
    }
}

async fn responses(shared: &Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let parsed = match read_body(request).await {
        Ok(body) => ResponsesRequest::parse(&body, &shared.config),
        Err(error) => Err(error),
    };
    let request = match parsed {
        Ok(r) => r,
        Err(error) => return error_response(&error),
    };
    let generation = &request.generation;
    let events = shared.run(generation);
    let stream = generation.stream;
    let reply = request.reply(shared.next_response_id("resp_"), shared.unix_seconds());
    if stream {
        return sse_response(UnsyncBoxBody::new(ResponsesSse::new(reply, events)));
    }
    match reply.collect(events).await {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(error) => error_response(&error),
    }
}

async fn embeddings(shared: &Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let parsed = match read_body(request).await {
        Ok(body) => EmbeddingRequest::parse(&body, &shared.config),
        Err(error) => Err(error),
    };
    let request = match parsed {
        Ok(r) => r,
        Err(error) => return error_response(&error),
    };
    let generation = &request.generation;
    let events = shared.run(generation);
    let id = shared.next_response_id("embd-");
    match request.respond(id, shared.unix_seconds(), events).await {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(error) => error_response(&error),
    }
}

fn sse_response(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn tokenize(shared: &Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let answer = read_body(request)
        .await
        .and_then(|body| crate::tokenize::tokenize(&body, &shared.config));
    match answer {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(error) => error_response(&error),
    }
}

async fn set_fake(shared: &Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let parsed = read_body(request).await.and_then(|body| {
        let text = String::from_utf8_lossy(&body);
        match text.trim() {
            "" | "null" => Ok(None),
            json => FakeMetrics::from_json(json)
                .map(Some)
                .map_err(|e| ApiError::bad_request(e, None)),
        }
    });
    match parsed {
        Ok(fake) => {
            shared.set_fake_metrics(fake.clone());
            json_response(StatusCode::OK, &json!(fake))
        }
        Err(error) => error_response(&error),
    }
}

fn models(shared: &Shared) -> Value {
    let config = &shared.config;
    let created = shared.unix_seconds();
    let max_len = config.effective_max_model_len();
    let card = |id: &str, parent: Option<&str>| {
        json!({
            "id": id, "object": "model", "created": created, "owned_by": "vllm",
            "root": id, "parent": parent, "max_model_len": max_len,
        })
    };
    let mut data = vec![card(&config.model, None)];
    data.extend(
        config
            .lora_modules
            .iter()
            .map(|name| card(name, Some(&config.model))),
    );
    json!({"object": "list", "data": data})
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, ApiError> {
    match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            param: None,
        }),
        Err(error) => Err(ApiError::bad_request(
            format!("could not read the body: {error}"),
            None,
        )),
    }
}

fn error_response(error: &ApiError) -> Response<Body> {
    json_response(error.status, &error.body())
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    full(status, Some("application/json"), Bytes::from(body))
}

fn full(status: StatusCode, content_type: Option<&'static str>, body: Bytes) -> Response<Body> {
    let mut response = Response::new(UnsyncBoxBody::new(Full::new(body)));
    *response.status_mut() = status;
    if let Some(value) = content_type {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(value));
    }
    response
}
