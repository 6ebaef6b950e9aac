//! `FileSource` over a tiny word-level tokenizer written into a temporary directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use epp_core::datastore::Datastore;
use epp_core::tokens::{TokenSource, TokenizeError, TokenizeRequest, TokenizerSpec, Tokens};
use epp_tokenize::BuildError;
use serde_json::json;

/// Words → ids; `<s>` is added before every encoding with special tokens.
const VOCAB: &[(&str, u32)] = &[
    ("<unk>", 0),
    ("<s>", 1),
    ("</s>", 2),
    ("hello", 3),
    ("world", 4),
    ("user", 5),
    ("assistant", 6),
    (":", 7),
    ("system", 8),
];

/// A `tokenizer.json` in the Hugging Face format: whitespace pre-tokenizer, word-level
/// model, a post-processor that prepends `<s>`.
fn tokenizer_json() -> serde_json::Value {
    let vocab: serde_json::Map<String, serde_json::Value> = VOCAB
        .iter()
        .map(|(w, id)| ((*w).to_owned(), json!(id)))
        .collect();
    let special = |content: &str, id: u32| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special("<unk>", 0), special("<s>", 1), special("</s>", 2)],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    })
}

/// A template in the shape of real ones: `bos_token`, a line per message, the generation
/// prompt.
const TEMPLATE: &str = "{{ bos_token }}{% for m in messages %}{{ m.role }} : {{ m.content }} {% endfor %}{% if add_generation_prompt %}assistant :{% endif %}";

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().expect("a temporary directory");
        write(
            &dir.path().join("tokenizer.json"),
            &tokenizer_json().to_string(),
        );
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spec(&self, chat_template: Option<&str>) -> TokenizerSpec {
        TokenizerSpec::File {
            path: self.path("tokenizer.json"),
            chat_template: chat_template.map(|name| self.path(name)),
            timeout: Duration::from_secs(2),
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write a test file");
}

async fn tokenize(spec: &TokenizerSpec, body: serde_json::Value) -> Result<Tokens, TokenizeError> {
    let source = build(spec).expect("the test files are valid");
    let request = TokenizeRequest {
        model: "m".to_owned(),
        body: body.to_string().into(),
    };
    source.tokenize(request).await
}

fn build(spec: &TokenizerSpec) -> Result<std::sync::Arc<dyn TokenSource>, BuildError> {
    epp_tokenize::build(
        spec,
        std::sync::Arc::new(Datastore::new(1)),
        crate::client(),
    )
}

fn ids(ids: &[u32]) -> Result<Tokens, TokenizeError> {
    Ok(Tokens::from(ids))
}

fn chat() -> serde_json::Value {
    json!({"messages": [{"role": "user", "content": "hello world"}]})
}

#[tokio::test]
async fn a_completion_is_encoded_with_special_tokens() {
    let files = Files::new();
    let built = epp_tokenize::build_with_stats(
        &files.spec(None),
        std::sync::Arc::new(Datastore::new(1)),
        crate::client(),
    )
    .expect("valid files");
    let call = |body: serde_json::Value| {
        built.source.tokenize(TokenizeRequest {
            model: "m".to_owned(),
            body: body.to_string().into(),
        })
    };
    assert_eq!(
        call(json!({"prompt": "hello world stranger"})).await,
        ids(&[1, 3, 4, 0])
    );
    // Ids in the body are the answer; a batch is not tokenized.
    assert_eq!(call(json!({"prompt": [8, 8]})).await, ids(&[8, 8]));
    assert!(matches!(
        call(json!({"prompt": ["a", "b"]})).await,
        Err(TokenizeError::Unsupported(_))
    ));
    let stats = built.stats.read();
    assert_eq!(
        (
            stats.cache_misses,
            stats.passthrough,
            stats.errors.unsupported
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_chat_is_rendered_with_the_template_file() {
    let files = Files::new();
    write(&files.path("chat.jinja"), TEMPLATE);
    let got = tokenize(&files.spec(Some("chat.jinja")), chat()).await;
    // A plain template file has no bos_token: the template prints "" for it.
    assert_eq!(got, ids(&[5, 7, 3, 4, 6, 7]));
}

#[tokio::test]
async fn a_chat_is_rendered_with_the_tokenizer_config() {
    let files = Files::new();
    let config = json!({"bos_token": "<s>", "eos_token": "</s>", "chat_template": TEMPLATE});
    write(&files.path("tokenizer_config.json"), &config.to_string());
    let got = tokenize(&files.spec(Some("tokenizer_config.json")), chat()).await;
    // "<s>user : hello world assistant :", no special tokens added on top.
    assert_eq!(got, ids(&[1, 5, 7, 3, 4, 6, 7]));
}

#[tokio::test]
async fn without_a_template_messages_are_joined() {
    let files = Files::new();
    let body = json!({"messages": [
        {"role": "system", "content": "hello"},
        {"role": "user", "content": "world"},
    ]});
    // "system: hello\nuser: world" with <s> prepended.
    assert_eq!(
        tokenize(&files.spec(None), body).await,
        ids(&[1, 8, 7, 3, 5, 7, 4])
    );
}

#[tokio::test]
async fn a_template_that_refuses_the_chat_is_unsupported() {
    let files = Files::new();
    write(
        &files.path("strict.jinja"),
        "{{ raise_exception('no system role') }}",
    );
    let got = tokenize(&files.spec(Some("strict.jinja")), chat()).await;
    assert!(
        matches!(got, Err(TokenizeError::Unsupported(ref m)) if m.contains("no system role")),
        "{got:?}"
    );
}

#[test]
fn unreadable_files_name_their_path() {
    let files = Files::new();
    let missing = TokenizerSpec::File {
        path: files.path("nope/tokenizer.json"),
        chat_template: None,
        timeout: Duration::from_secs(1),
    };
    let Err(error) = build(&missing) else {
        panic!("a missing tokenizer built");
    };
    assert!(matches!(error, BuildError::Tokenizer { .. }), "{error:?}");
    assert!(error.to_string().contains("nope/tokenizer.json"), "{error}");

    write(&files.path("garbage.json"), "{\"model\": 1}");
    let garbage = TokenizerSpec::File {
        path: files.path("garbage.json"),
        chat_template: None,
        timeout: Duration::from_secs(1),
    };
    let Err(error) = build(&garbage) else {
        panic!("a bad tokenizer.json built");
    };
    assert!(
        error.to_string().contains("garbage.json")
            && error.to_string().contains("not a tokenizer.json"),
        "{error}"
    );

    write(&files.path("config.json"), "{\"eos_token\": \"x\"}");
    for (name, want) in [
        ("missing.jinja", "missing.jinja"),
        ("config.json", "chat_template"),
    ] {
        let Err(error) = build(&files.spec(Some(name))) else {
            panic!("{name}: a bad chat template built");
        };
        assert!(
            matches!(error, BuildError::ChatTemplate { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(want), "{error}");
    }
}

#[tokio::test]
async fn a_long_encoding_times_out() {
    let files = Files::new();
    let spec = TokenizerSpec::File {
        path: files.path("tokenizer.json"),
        chat_template: None,
        timeout: Duration::from_millis(1),
    };
    let built = epp_tokenize::build_with_stats(
        &spec,
        std::sync::Arc::new(Datastore::new(1)),
        crate::client(),
    )
    .expect("valid files");
    // Encoding 20 000 words takes far longer than a millisecond (about 0.4 s in a debug
    // build); the call gives up, the encoding finishes on the blocking pool.
    let request = TokenizeRequest {
        model: "m".to_owned(),
        body: json!({ "prompt": "hello ".repeat(20_000) })
            .to_string()
            .into(),
    };
    let started = std::time::Instant::now();
    assert_eq!(
        built.source.tokenize(request).await,
        Err(TokenizeError::Timeout)
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(built.stats.read().errors.timeout, 1);
}
