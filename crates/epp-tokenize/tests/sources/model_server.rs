//! `ModelServerSource`: request shapes, cache, timeout, endpoint choice, failures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use epp_core::datastore::{Datastore, EndpointSpec};
use epp_core::tokens::{TokenSource, TokenizeError, TokenizeRequest, TokenizerSpec, Tokens};
use epp_tokenize::{ModelServerConfig, ModelServerSource};
use serde_json::json;

use crate::stub::{Received, Reply, Stub};

fn pool(stubs: &[&Stub]) -> Arc<Datastore> {
    let datastore = Arc::new(Datastore::new(16));
    for stub in stubs {
        datastore
            .upsert_endpoint(EndpointSpec::from_address(stub.address))
            .expect("room for the endpoint");
    }
    datastore
}

fn source(datastore: Arc<Datastore>, cache_entries: usize, timeout: Duration) -> ModelServerSource {
    let config = ModelServerConfig {
        timeout,
        cache_entries,
        cache_bytes: ModelServerConfig::DEFAULT_CACHE_BYTES,
    };
    ModelServerSource::new(datastore, crate::client(), config)
}

fn request(model: &str, body: serde_json::Value) -> TokenizeRequest {
    TokenizeRequest {
        model: model.to_owned(),
        body: body.to_string().into(),
    }
}

fn ids(ids: &[u32]) -> Result<Tokens, TokenizeError> {
    Ok(Tokens::from(ids))
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_completion_asks_for_the_prompt_with_special_tokens() {
    let stub = Stub::start(Reply::tokens(&[1, 2, 3])).await;
    let source = source(pool(&[&stub]), 0, SECOND);
    // The model is the rewritten one the request carries, not the body's.
    let got = source
        .tokenize(request(
            "served",
            json!({"model": "alias", "prompt": "hello"}),
        ))
        .await;
    assert_eq!(got, ids(&[1, 2, 3]));
    assert_eq!(
        stub.received(),
        [Received {
            path: "/tokenize".into(),
            body: json!({"model": "served", "prompt": "hello", "add_special_tokens": true}),
        }]
    );
}

#[tokio::test]
async fn a_chat_asks_for_the_templated_messages() {
    let stub = Stub::start(Reply::tokens(&[9])).await;
    let source = source(pool(&[&stub]), 0, SECOND);
    let messages = json!([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ]);
    let got = source
        .tokenize(request(
            "m",
            json!({"model": "m", "messages": messages, "stream": true}),
        ))
        .await;
    assert_eq!(got, ids(&[9]));
    assert_eq!(
        stub.received()[0].body,
        json!({
            "model": "m",
            "messages": messages,
            "add_generation_prompt": true,
            "continue_final_message": false,
            "add_special_tokens": false,
        })
    );
    // What changes the rendering is forwarded: tools, template arguments, a prefill.
    let prefill = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Sure"},
    ]);
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    source
        .tokenize(request(
            "m",
            json!({
                "messages": prefill,
                "tools": tools,
                "chat_template_kwargs": {"enable_thinking": false},
                "add_generation_prompt": false,
                "continue_final_message": true,
                "temperature": 0.5,
            }),
        ))
        .await
        .expect("tokens");
    assert_eq!(
        stub.received()[1].body,
        json!({
            "model": "m",
            "messages": prefill,
            "tools": tools,
            "chat_template_kwargs": {"enable_thinking": false},
            "add_generation_prompt": false,
            "continue_final_message": true,
            "add_special_tokens": false,
        })
    );
}

#[tokio::test]
async fn a_cached_prompt_makes_no_call() {
    let stub = Stub::start(Reply::tokens(&[4, 5])).await;
    let source = source(pool(&[&stub]), 8, SECOND);
    let hello = || request("m", json!({"prompt": "hello"}));
    assert_eq!(source.tokenize(hello()).await, ids(&[4, 5]));
    assert_eq!(source.tokenize(hello()).await, ids(&[4, 5]));
    assert_eq!(
        stub.received().len(),
        1,
        "the second call was served from the cache"
    );
    // Another model or another prompt is another entry.
    source
        .tokenize(request("other", json!({"prompt": "hello"})))
        .await
        .expect("tokens");
    source
        .tokenize(request("m", json!({"prompt": "bye"})))
        .await
        .expect("tokens");
    assert_eq!(stub.received().len(), 3);
    let stats = source.stats();
    assert_eq!(
        (stats.cache_hits, stats.cache_misses, stats.cache_entries),
        (1, 3, 3)
    );
    assert!(stats.cache_bytes > 0 && stats.latency_sum > Duration::ZERO);
}

#[tokio::test]
async fn identical_calls_in_progress_share_one_request() {
    let tokens = json!({"tokens": [6, 6]}).to_string();
    let stub = Stub::start(Reply::After(Duration::from_millis(150), 200, tokens)).await;
    // No cache: only the in-progress call is shared.
    let source = source(pool(&[&stub]), 0, SECOND);
    let call = || source.tokenize(request("m", json!({"prompt": "same"})));
    let (a, b, c) = tokio::join!(call(), call(), call());
    assert_eq!((&a, &b, &c), (&ids(&[6, 6]), &ids(&[6, 6]), &ids(&[6, 6])));
    assert_eq!(stub.received().len(), 1);
    let stats = source.stats();
    assert_eq!((stats.cache_misses, stats.coalesced), (1, 2));
    // Once it is done, the next call asks again.
    assert_eq!(call().await, ids(&[6, 6]));
    assert_eq!(stub.received().len(), 2);
}

#[tokio::test]
async fn a_hanging_server_times_out() {
    let stub = Stub::start(Reply::Hang(Duration::from_secs(30))).await;
    let source = source(pool(&[&stub]), 8, Duration::from_millis(100));
    let started = Instant::now();
    let got = source
        .tokenize(request("m", json!({"prompt": "hello"})))
        .await;
    assert_eq!(got, Err(TokenizeError::Timeout));
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let stats = source.stats();
    assert_eq!((stats.errors.timeout, stats.cache_misses), (1, 1));
    assert!(stats.latency_sum >= Duration::from_millis(50), "{stats:?}");
    assert_eq!(source.stats().cache_entries, 0, "a failure is not cached");
}

#[tokio::test]
async fn endpoints_are_asked_in_turn() {
    let (a, b) = (
        Stub::start(Reply::tokens(&[1])).await,
        Stub::start(Reply::tokens(&[2])).await,
    );
    let source = source(pool(&[&a, &b]), 0, SECOND);
    let mut answers = Vec::new();
    for i in 0..4 {
        let got = source
            .tokenize(request("m", json!({"prompt": format!("p{i}")})))
            .await;
        answers.push(got.expect("tokens")[0]);
    }
    assert_eq!(answers, [1, 2, 1, 2]);
    assert_eq!((a.received().len(), b.received().len()), (2, 2));
}

#[tokio::test]
async fn an_empty_pool_is_unavailable() {
    let source = source(pool(&[]), 8, SECOND);
    let got = source
        .tokenize(request("m", json!({"prompt": "hello"})))
        .await;
    assert!(matches!(got, Err(TokenizeError::Unavailable(_))), "{got:?}");
    assert_eq!(source.stats().errors.unavailable, 1);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let address = closed.local_addr().expect("bound address");
    drop(closed);
    let datastore = Arc::new(Datastore::new(4));
    datastore
        .upsert_endpoint(EndpointSpec::from_address(address))
        .expect("room");
    let got = source(datastore, 0, SECOND)
        .tokenize(request("m", json!({"prompt": "hello"})))
        .await;
    assert!(
        matches!(got, Err(TokenizeError::Unavailable(ref m)) if m.contains("/tokenize")),
        "{got:?}"
    );
}

#[tokio::test]
async fn unusable_answers_are_bad_responses() {
    let replies = [
        (Reply::Status(200, "not json".into()), "not JSON"),
        (Reply::Status(200, r#"{"count":1}"#.into()), "no `tokens`"),
        (Reply::Status(404, r#"{"tokens":[1]}"#.into()), "404"),
        (Reply::Status(500, String::new()), "500"),
    ];
    for (reply, want) in replies {
        let stub = Stub::start(reply).await;
        let source = source(pool(&[&stub]), 8, SECOND);
        let got = source
            .tokenize(request("m", json!({"prompt": "hello"})))
            .await;
        assert!(
            matches!(got, Err(TokenizeError::BadResponse(ref m)) if m.contains(want)),
            "{want}: {got:?}"
        );
        assert_eq!(source.stats().errors.bad_response, 1);
    }
}

#[tokio::test]
async fn token_ids_in_the_prompt_pass_through() {
    // No endpoint at all: the ids are the answer.
    let source = source(pool(&[]), 8, SECOND);
    let got = source
        .tokenize(request("m", json!({"prompt": [3, 1, 4]})))
        .await;
    assert_eq!(got, ids(&[3, 1, 4]));
    let unsupported = source
        .tokenize(request("m", json!({"prompt": ["a", "b"]})))
        .await;
    assert!(matches!(unsupported, Err(TokenizeError::Unsupported(_))));
    let stats = source.stats();
    assert_eq!((stats.passthrough, stats.errors.unsupported), (1, 1));
}

#[tokio::test]
async fn build_makes_a_model_server_source_from_the_spec() {
    let stub = Stub::start(Reply::tokens(&[7])).await;
    let spec = TokenizerSpec::ModelServer {
        timeout: SECOND,
        cache_entries: 4,
    };
    let built = epp_tokenize::build_with_stats(&spec, pool(&[&stub]), crate::client())
        .expect("a model-server source needs no files");
    for _ in 0..2 {
        let got = built
            .source
            .tokenize(request("m", json!({"prompt": "x"})))
            .await;
        assert_eq!(got, ids(&[7]));
    }
    assert_eq!(built.stats.read().cache_hits, 1);
}
