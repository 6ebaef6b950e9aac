//! The ext_proc stream state machine (`StreamState::on_message`) driven by arbitrary
//! message sequences against a real `Director` over a small datastore.
//!
//! Messages are built from a small structured description (request/response headers,
//! bodies, trailers; flags; body modes; subset hints), which reaches further than raw
//! protobuf bytes. As the service does, a sequence stops at `Flow::Close` or an error.
//!
//! Invariants: no panic; after the stream state is dropped, the open-stream gauge and
//! every running-requests gauge are 0 and every endpoint's in-flight count is 0.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue, Metadata};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    HttpBody, HttpHeaders, HttpTrailers, ProcessingRequest, ProtocolConfiguration,
    processing_request,
};
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value};
use epp_core::config::{DEFAULT_CONFIG, EndpointPickerConfig};
use epp_core::datastore::fixtures::TestEndpoint;
use epp_core::datastore::{Datastore, Objective, PoolInfo};
use epp_core::director::{Director, DirectorSettings};
use epp_core::telemetry::metrics::{EppMetrics, MetricsLimits};
use epp_extproc::messages::{SUBSET_KEY, SUBSET_NAMESPACE};
use epp_extproc::{Flow, StreamSettings, StreamState};
use libfuzzer_sys::fuzz_target;

const ENDPOINTS: [&str; 3] = ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"];

struct World {
    director: Director,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let config = EndpointPickerConfig::from_text(DEFAULT_CONFIG).expect("default config");
        let store = Arc::new(Datastore::new(ENDPOINTS.len()));
        for observer in config.endpoint_observers() {
            store.add_observer(observer);
        }
        store.set_pool(PoolInfo {
            name: "fuzz".into(),
            namespace: "default".into(),
            target_ports: vec![8000],
        });
        let endpoints = [
            TestEndpoint::new(ENDPOINTS[0]).queue(0).kv(0.2),
            TestEndpoint::new(ENDPOINTS[1])
                .queue(200)
                .kv(0.99)
                .lora(&["lora-a"], &[], 1),
            TestEndpoint::new(ENDPOINTS[2]).queue(3).kv(0.5),
        ];
        for e in endpoints {
            store
                .upsert_endpoint(e.spec())
                .expect("endpoint added")
                .store_metrics(e.metrics());
        }
        store.set_objective(Objective {
            name: "sheddable".into(),
            priority: -1,
        });
        store.set_objective(Objective {
            name: "critical".into(),
            priority: 10,
        });
        let director = Director::new(
            store,
            config.scheduler,
            DirectorSettings {
                // Metrics set once must stay fresh for the whole run.
                metrics_staleness: Duration::from_secs(365 * 24 * 3600),
                ..DirectorSettings::default()
            },
        )
        .with_metrics(EppMetrics::new(MetricsLimits::default()));
        World { director }
    })
}

// === the message description ===

#[derive(Arbitrary, Debug)]
enum Name {
    RequestId,
    Objective,
    ModelRewrite,
    Fairness,
    Destination,
    DestinationSuffix,
    ContentType,
    ContentLength,
    Status,
    Path,
    Method,
    Other(String),
}

impl Name {
    fn text(&self) -> String {
        match self {
            Name::RequestId => "x-request-id".into(),
            Name::Objective => "x-gateway-inference-objective".into(),
            Name::ModelRewrite => "X-Gateway-Model-Name-Rewrite".into(),
            Name::Fairness => "x-gateway-inference-fairness-id".into(),
            Name::Destination => "x-gateway-destination-endpoint".into(),
            Name::DestinationSuffix => "x-gateway-destination-endpoint-served".into(),
            Name::ContentType => "content-type".into(),
            Name::ContentLength => "content-length".into(),
            Name::Status => ":status".into(),
            Name::Path => ":path".into(),
            Name::Method => ":method".into(),
            Name::Other(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum HeaderText {
    Sheddable,
    Critical,
    Model,
    Lora,
    EventStream,
    Json,
    Status(u16),
    Endpoint(u8),
    Number(u64),
    Empty,
    Other(String),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Header {
    name: Name,
    value: HeaderText,
}

impl Header {
    fn proto(&self) -> HeaderValue {
        let key = self.name.text();
        let text = |s: &str| HeaderValue {
            key: key.clone(),
            value: String::new(),
            raw_value: s.as_bytes().to_vec(),
        };
        match &self.value {
            HeaderText::Sheddable => text("sheddable"),
            HeaderText::Critical => text("critical"),
            HeaderText::Model => text("llama"),
            HeaderText::Lora => text("lora-a"),
            HeaderText::EventStream => text("text/event-stream; charset=utf-8"),
            HeaderText::Json => text("application/json"),
            HeaderText::Status(s) => text(&s.to_string()),
            HeaderText::Endpoint(i) => text(ENDPOINTS[usize::from(*i) % ENDPOINTS.len()]),
            HeaderText::Number(n) => text(&n.to_string()),
            HeaderText::Empty => text(""),
            // `value` is read only when `raw_value` is empty.
            HeaderText::Other(s) => HeaderValue {
                key,
                value: s.clone(),
                raw_value: Vec::new(),
            },
            HeaderText::Raw(bytes) => HeaderValue {
                key,
                value: String::new(),
                raw_value: bytes.clone(),
            },
        }
    }
}

/// Request bodies: whole valid bodies of each API, slices of them (for chunking), or bytes.
const BODIES: [&str; 8] = [
    r#"{"model":"llama","prompt":"Write a poem about the sea","max_tokens":100,"temperature":0}"#,
    r#"{"model":"llama","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Hi"}],"stream":true}"#,
    r#"{"model":"lora-a","messages":[{"role":"user","content":[{"type":"text","text":"What is in this image?"},{"type":"image_url","image_url":{"url":"http://x/y.png"}}]}]}"#,
    r#"{"model":"embed","input":["first text","second text"]}"#,
    r#"{"model":"llama","input":[{"role":"user","content":[{"type":"input_text","text":"Tell me a story"}]}]}"#,
    r#"{"model":"llama","input":[1,2,3,4]}"#,
    r#"{"prompt":"no model here"}"#,
    r#"{"model":"unknown-\u00e9","prompt":["a","b"],"stream":true,"stream_options":{"include_usage":true}}"#,
];

/// Response bodies: JSON with usage, SSE events with usage, `[DONE]`.
const RESPONSES: [&str; 4] = [
    r#"{"id":"x","choices":[{"text":"hello"}],"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}}"#,
    "data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
    "data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1,\"total_tokens\":8}}\n\ndata: [DONE]\n\n",
    "data: [DONE]\n\n",
];

#[derive(Arbitrary, Debug)]
enum Body {
    Whole(u8),
    Slice {
        which: u8,
        start: u16,
        end: u16,
    },
    Bytes(Vec<u8>),
    /// A large body (over the small settings' limit).
    Large {
        which: u8,
        repeat: u8,
    },
}

impl Body {
    fn bytes(&self, table: &[&str]) -> Vec<u8> {
        match self {
            Body::Whole(i) => table[usize::from(*i) % table.len()].as_bytes().to_vec(),
            Body::Slice { which, start, end } => {
                let text = table[usize::from(*which) % table.len()].as_bytes();
                let start = usize::from(*start).min(text.len());
                let end = usize::from(*end).clamp(start, text.len());
                text[start..end].to_vec()
            }
            Body::Bytes(b) => b.clone(),
            Body::Large { which, repeat } => {
                let text = table[usize::from(*which) % table.len()];
                let filler = "x".repeat(usize::from(*repeat) * 8);
                // Valid JSON with a big ignored field first.
                format!("{{\"pad\":\"{filler}\",{}", text.trim_start_matches('{')).into_bytes()
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Kind {
    RequestHeaders {
        headers: Vec<Header>,
        end_of_stream: bool,
    },
    RequestBody {
        body: Body,
        end_of_stream: bool,
    },
    RequestTrailers,
    ResponseHeaders {
        headers: Vec<Header>,
        end_of_stream: bool,
    },
    ResponseBody {
        body: Body,
        end_of_stream: bool,
    },
    ResponseTrailers,
    /// A message with no request at all.
    Nothing,
}

#[derive(Arbitrary, Debug)]
enum Mode {
    None,
    Streamed,
    Buffered,
    BufferedPartial,
    FullDuplex,
    Any(i32),
}

impl Mode {
    fn proto(&self) -> i32 {
        match self {
            Mode::None => 0,
            Mode::Streamed => 1,
            Mode::Buffered => 2,
            Mode::BufferedPartial => 3,
            Mode::FullDuplex => 4,
            Mode::Any(v) => *v,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Subset {
    /// Endpoints by index (`ip:port`, or `ip` alone when `bare`), or unknown addresses.
    List(Vec<(u8, bool)>),
    /// A key that is not a list: "no hint".
    NotAList(String),
    /// The namespace without the key.
    Empty,
}

#[derive(Arbitrary, Debug)]
struct Message {
    kind: Kind,
    modes: Option<(Mode, Mode)>,
    subset: Option<Subset>,
    observability_mode: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// A 256-byte body limit instead of the default 64 MiB.
    small_limit: bool,
    /// Some(tokens): a scorer wants tokens, and the source gives these (`[]`: none in time).
    tokens: Option<Vec<u32>>,
    messages: Vec<Message>,
}

/// A token source for the fuzzer; the stream is resumed by hand, so it is never called.
struct NoSource;

impl epp_core::tokens::TokenSource for NoSource {
    fn tokenize(&self, _: epp_core::tokens::TokenizeRequest) -> epp_core::tokens::TokenizeFuture {
        Box::pin(async { Err(epp_core::tokens::TokenizeError::Timeout) })
    }
}

fn headers(list: &[Header]) -> Option<HeaderMap> {
    Some(HeaderMap {
        headers: list.iter().map(Header::proto).collect(),
    })
}

fn subset_metadata(subset: &Subset) -> Metadata {
    let value = match subset {
        Subset::List(items) => Value {
            kind: Some(value::Kind::ListValue(ListValue {
                values: items
                    .iter()
                    .map(|(i, bare)| {
                        let address = match ENDPOINTS.get(usize::from(*i)) {
                            Some(a) if *bare => a.split(':').next().unwrap_or(a).to_owned(),
                            Some(a) => (*a).to_owned(),
                            None => format!("10.9.9.{i}:8000"),
                        };
                        Value {
                            kind: Some(value::Kind::StringValue(address)),
                        }
                    })
                    .collect(),
            })),
        },
        Subset::NotAList(s) => Value {
            kind: Some(value::Kind::StringValue(s.clone())),
        },
        Subset::Empty => Value { kind: None },
    };
    let fields = match subset {
        Subset::Empty => Default::default(),
        _ => [(SUBSET_KEY.to_owned(), value)].into(),
    };
    Metadata {
        filter_metadata: [(SUBSET_NAMESPACE.to_owned(), Struct { fields })].into(),
        ..Default::default()
    }
}

fn proto(message: &Message) -> ProcessingRequest {
    use processing_request::Request as R;
    let request = match &message.kind {
        Kind::RequestHeaders {
            headers: h,
            end_of_stream,
        } => Some(R::RequestHeaders(HttpHeaders {
            headers: headers(h),
            end_of_stream: *end_of_stream,
            ..Default::default()
        })),
        Kind::RequestBody {
            body,
            end_of_stream,
        } => Some(R::RequestBody(HttpBody {
            body: body.bytes(&BODIES),
            end_of_stream: *end_of_stream,
            ..Default::default()
        })),
        Kind::RequestTrailers => Some(R::RequestTrailers(HttpTrailers::default())),
        Kind::ResponseHeaders {
            headers: h,
            end_of_stream,
        } => Some(R::ResponseHeaders(HttpHeaders {
            headers: headers(h),
            end_of_stream: *end_of_stream,
            ..Default::default()
        })),
        Kind::ResponseBody {
            body,
            end_of_stream,
        } => Some(R::ResponseBody(HttpBody {
            body: body.bytes(&RESPONSES),
            end_of_stream: *end_of_stream,
            ..Default::default()
        })),
        Kind::ResponseTrailers => Some(R::ResponseTrailers(HttpTrailers::default())),
        Kind::Nothing => None,
    };
    ProcessingRequest {
        request,
        protocol_config: message
            .modes
            .as_ref()
            .map(|(req, resp)| ProtocolConfiguration {
                request_body_mode: req.proto(),
                response_body_mode: resp.proto(),
                ..Default::default()
            }),
        metadata_context: message.subset.as_ref().map(subset_metadata),
        observability_mode: message.observability_mode,
        ..Default::default()
    }
}

/// Every line of the gauge `name` (any labels) has the value 0.
fn gauge_is_zero(page: &str, name: &str) -> bool {
    page.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .all(|line| line.ends_with(" 0"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let world = world();
    // Fresh metrics per input: the page rendered below stays small, so checking the
    // gauges costs little.
    let metrics = EppMetrics::new(MetricsLimits::default());
    let settings = StreamSettings {
        max_request_body_bytes: if input.small_limit { 256 } else { 64 << 20 },
        metrics: Arc::clone(&metrics),
        tokens: input.tokens.as_ref().map(|_| epp_extproc::TokenSettings {
            source: Arc::new(NoSource),
            timeout: std::time::Duration::from_millis(1),
        }),
        ..StreamSettings::default()
    };
    let mut state = StreamState::new(Arc::new(settings));
    let mut replies = Vec::new();
    for message in input.messages.iter().take(64) {
        let mut flow = state.on_message(&world.director, proto(message), &mut replies);
        if matches!(flow, Ok(Flow::AwaitTokens)) {
            assert!(state.tokenize_request().is_some(), "paused without a body");
            let tokens = input
                .tokens
                .as_ref()
                .filter(|t| !t.is_empty())
                .map(|t| epp_core::tokens::Tokens::from(t.as_slice()));
            flow = state.resume_with_tokens(
                &world.director,
                tokens,
                std::time::Duration::ZERO,
                &mut replies,
            );
        }
        replies.clear();
        match flow {
            Ok(Flow::Continue) => {}
            Ok(Flow::AwaitTokens) => panic!("asked for tokens twice"),
            Ok(Flow::AwaitAdmission) => panic!("held by flow control, which is off here"),
            Ok(Flow::Close) | Err(_) => break,
        }
    }
    drop(state);
    let page = metrics.render();
    assert!(
        gauge_is_zero(&page, "inference_extension_ext_proc_streams"),
        "open-stream gauge not back to 0"
    );
    assert!(
        gauge_is_zero(&page, "inference_model_running_requests"),
        "running-requests gauge not back to 0"
    );
    for endpoint in world.director.datastore().snapshot().endpoints() {
        assert_eq!(
            endpoint.in_flight(),
            0,
            "in-flight slot leaked on {endpoint:?}"
        );
    }
});
