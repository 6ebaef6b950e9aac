//! Proxy mode: streaming OpenAI requests over HTTP through a gateway (or straight to model
//! servers), timing the first SSE data chunk (TTFT) and the end of the stream.

use std::sync::Arc;

use anyhow::Context as _;
use reqwest::header::{CONTENT_TYPE, HeaderName};
use tokio::time::Instant;

use crate::load::{ErrorKind, Exchange, Sample};
use crate::workload::Workload;

/// `e2e`: to the end of the response; `ttft`: to the first SSE `data:` chunk (the first body
/// bytes when the answer is not SSE).
pub const METRICS: &[&str] = &["e2e", "ttft"];

/// Sends the workload to one URL.
pub struct ProxyExchange {
    client: reqwest::Client,
    url: reqwest::Url,
    workload: Arc<Workload>,
    /// The response header naming who served the request (epp-sim sets `x-sim-server`).
    served_by: HeaderName,
}

impl ProxyExchange {
    /// Keep-alive connections are reused, one per concurrent request.
    pub fn new(url: &str, workload: Arc<Workload>, served_by: &str) -> anyhow::Result<Self> {
        let mut url = reqwest::Url::parse(url).with_context(|| format!("--url {url:?}"))?;
        anyhow::ensure!(
            url.scheme() == "http",
            "--url {url}: only http:// is supported"
        );
        if url.path() == "/" {
            // A bare gateway address: send to the workload's API path.
            url.set_path(workload.api.path());
        }
        epp_net::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            // A test gateway's certificate is usually self-signed.
            .tls_danger_accept_invalid_certs(true)
            .tcp_nodelay(true)
            .build()
            .context("HTTP client")?;
        let served_by = HeaderName::from_bytes(served_by.as_bytes())
            .with_context(|| format!("--served-by-header {served_by:?}"))?;
        Ok(ProxyExchange {
            client,
            url,
            workload,
            served_by,
        })
    }
}

impl Exchange for ProxyExchange {
    fn metrics(&self) -> &'static [&'static str] {
        METRICS
    }

    async fn run(&self, index: u64, start: Instant) -> Result<Sample, ErrorKind> {
        let prepared = self.workload.get(index);
        let body = prepared.body.clone();
        let mut response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ErrorKind::Http(status.as_u16()));
        }
        let destination = response
            .headers()
            .get(&self.served_by)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let sse = response
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let mut ttft = None;
        let mut done = DoneScanner::default();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if ttft.is_none() && !chunk.is_empty() && (!sse || contains(&chunk, b"data:")) {
                ttft = Some(start.elapsed());
            }
            done.feed(&chunk);
        }
        let e2e = start.elapsed();
        if sse && !done.seen {
            return Err(ErrorKind::Protocol("SSE stream ended without [DONE]"));
        }
        Ok(Sample {
            timings: vec![e2e, ttft.unwrap_or(e2e)],
            destination,
            group: prepared.group,
        })
    }
}

fn transport(error: reqwest::Error) -> ErrorKind {
    if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Protocol("HTTP transport error")
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Finds `data: [DONE]` even when it straddles two chunks.
#[derive(Default)]
struct DoneScanner {
    tail: Vec<u8>,
    seen: bool,
}

impl DoneScanner {
    const MARKER: &'static [u8] = b"data: [DONE]";

    fn feed(&mut self, chunk: &[u8]) {
        if self.seen {
            return;
        }
        self.tail.extend_from_slice(chunk);
        self.seen = contains(&self.tail, Self::MARKER);
        let keep = Self::MARKER.len() - 1;
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_marker_across_chunks() {
        let mut scanner = DoneScanner::default();
        for part in [&b"data: {}\n\ndata: [DO"[..], b"NE]\n\n"] {
            scanner.feed(part);
        }
        assert!(scanner.seen);
        let mut scanner = DoneScanner::default();
        scanner.feed(b"data: {\"text\":\"[DONE]\"}\n\n");
        assert!(!scanner.seen);
    }
}
