//! The token sources against a stub `/tokenize` server and a tiny tokenizer file.

mod file;
mod model_server;
mod stub;

/// A reqwest client (the workspace builds reqwest without a crypto provider: install one).
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .expect("a plain HTTP client")
}
