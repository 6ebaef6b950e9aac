//! Reads token `usage` from responses as they pass through, in bounded memory.
//!
//! SSE: every `data:` line that mentions `"usage"` is decoded, in any chunk (v1.0.1 only
//! looked at the chunk holding `[DONE]`); the last usage seen wins. JSON: the tail of the
//! body is kept and the last top-level-looking `"usage":` object in it is decoded.
//!
//! Both usage shapes are read: Chat/Completions (`prompt_tokens`, `completion_tokens`,
//! `prompt_tokens_details`) and the Responses API (`input_tokens`, `output_tokens`,
//! `input_tokens_details`; streamed inside the `response` of `response.completed`).

use serde::Deserialize;

/// Longest SSE line kept across chunks; longer lines are skipped.
const MAX_LINE: usize = 1 << 20;
/// Bytes of a JSON body's end that are kept to find `usage` (it comes last in OpenAI
/// responses, after the choices).
const JSON_TAIL: usize = 64 << 10;

/// Token counts from a response's `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// `prompt_tokens_details.cached_tokens`: prompt tokens served from the prefix cache;
    /// `None` when the server did not say (vLLM sends it only with
    /// `--enable-prompt-tokens-details`).
    pub cached_tokens: Option<u64>,
}

/// Accumulates what is needed to find `usage` in one response.
#[derive(Debug, Default)]
pub struct UsageScanner {
    streaming: bool,
    /// SSE: the unfinished last line. JSON: the body's last bytes.
    buffer: Vec<u8>,
    /// SSE: the current line is longer than [`MAX_LINE`] and is being skipped.
    skipping_line: bool,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Envelope {
    usage: Option<UsageFields>,
    /// Responses API events carry the response, with its usage, inside.
    response: Option<Box<ResponseEnvelope>>,
}

#[derive(Deserialize)]
struct ResponseEnvelope {
    usage: Option<UsageFields>,
}

#[derive(Deserialize)]
struct UsageFields {
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: Option<f64>,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: Option<f64>,
    #[serde(default)]
    total_tokens: Option<f64>,
    #[serde(default, alias = "input_tokens_details")]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<f64>,
}

/// A token count: finite and not negative, else none.
fn count(v: Option<f64>) -> Option<u64> {
    v.filter(|x| x.is_finite() && *x >= 0.0).map(|x| x as u64)
}

impl UsageFields {
    fn to_usage(&self) -> Usage {
        Usage {
            prompt_tokens: count(self.prompt_tokens).unwrap_or(0),
            completion_tokens: count(self.completion_tokens).unwrap_or(0),
            total_tokens: count(self.total_tokens).unwrap_or(0),
            cached_tokens: self
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| count(d.cached_tokens)),
        }
    }
}

impl UsageScanner {
    /// `streaming`: the response is `text/event-stream`.
    pub fn new(streaming: bool) -> Self {
        UsageScanner {
            streaming,
            ..Default::default()
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.streaming {
            self.feed_sse(chunk);
        } else {
            self.feed_json_tail(chunk);
        }
    }

    /// The usage found, once the body has ended.
    pub fn finish(&mut self) -> Option<Usage> {
        if self.streaming {
            let line = std::mem::take(&mut self.buffer);
            if !self.skipping_line {
                self.scan_line(&line);
            }
        } else {
            self.usage = last_usage_object(&self.buffer).or(self.usage);
        }
        self.usage
    }

    fn feed_sse(&mut self, mut chunk: &[u8]) {
        while let Some(newline) = chunk.iter().position(|&b| b == b'\n') {
            let (head, rest) = chunk.split_at(newline);
            if !self.skipping_line {
                if self.buffer.is_empty() {
                    self.scan_line(head);
                } else {
                    let mut line = std::mem::take(&mut self.buffer);
                    line.extend_from_slice(head);
                    self.scan_line(&line);
                    line.clear();
                    self.buffer = line;
                }
            }
            self.skipping_line = false;
            chunk = &rest[1..];
        }
        if self.skipping_line {
            return;
        }
        if self.buffer.len() + chunk.len() > MAX_LINE {
            self.buffer.clear();
            self.skipping_line = true;
        } else {
            self.buffer.extend_from_slice(chunk);
        }
    }

    fn scan_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        if !contains(data, b"\"usage\"") {
            return;
        }
        if let Ok(envelope) = serde_json::from_slice::<Envelope>(data)
            && let Some(fields) = envelope
                .usage
                .or_else(|| envelope.response.and_then(|r| r.usage))
        {
            self.usage = Some(fields.to_usage());
        }
    }

    fn feed_json_tail(&mut self, chunk: &[u8]) {
        if chunk.len() >= JSON_TAIL {
            self.buffer.clear();
            self.buffer
                .extend_from_slice(&chunk[chunk.len() - JSON_TAIL..]);
            return;
        }
        let overflow = (self.buffer.len() + chunk.len()).saturating_sub(JSON_TAIL);
        if overflow > 0 {
            self.buffer.drain(..overflow);
        }
        self.buffer.extend_from_slice(chunk);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Decodes the object after the last unescaped `"usage"` key in `tail`.
fn last_usage_object(tail: &[u8]) -> Option<Usage> {
    let key = b"\"usage\"";
    let mut end = tail.len();
    while let Some(pos) = tail[..end].windows(key.len()).rposition(|w| w == key) {
        end = pos;
        if pos > 0 && tail[pos - 1] == b'\\' {
            continue;
        }
        let rest = &tail[pos + key.len()..];
        let Some(colon) = rest.iter().position(|b| !b.is_ascii_whitespace()) else {
            continue;
        };
        if rest[colon] != b':' {
            continue;
        }
        let mut values = serde_json::Deserializer::from_slice(&rest[colon + 1..])
            .into_iter::<Option<UsageFields>>();
        if let Some(Ok(Some(fields))) = values.next() {
            return Some(fields.to_usage());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(streaming: bool, chunks: &[&str]) -> Option<Usage> {
        let mut scanner = UsageScanner::new(streaming);
        for chunk in chunks {
            scanner.feed(chunk.as_bytes());
        }
        scanner.finish()
    }

    fn usage(p: u64, c: u64, t: u64) -> Option<Usage> {
        Some(Usage {
            prompt_tokens: p,
            completion_tokens: c,
            total_tokens: t,
            cached_tokens: None,
        })
    }

    #[test]
    fn sse_usage_in_the_done_chunk() {
        let chunks = [
            "data: {\"choices\":[{\"text\":\"a\"}]}\n\n",
            "data: {\"usage\":{\"prompt_tokens\":7,\"total_tokens\":17,\"completion_tokens\":10}}\n\ndata: [DONE]\n\n",
        ];
        assert_eq!(scan(true, &chunks), usage(7, 10, 17));
    }

    #[test]
    fn sse_usage_before_done_and_split_lines() {
        let chunks = [
            "data: {\"choices\":[],\"usage\":{\"prompt_to",
            "kens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\r\n\r\n",
            "data: [DONE]\n\n",
        ];
        assert_eq!(scan(true, &chunks), usage(3, 4, 7));
    }

    #[test]
    fn sse_null_usage_does_not_erase() {
        let chunks = [
            "data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n",
            "data: {\"usage\":null}\n",
        ];
        assert_eq!(scan(true, &chunks), usage(1, 1, 2));
    }

    #[test]
    fn sse_without_usage() {
        assert_eq!(
            scan(true, &["data: {\"choices\":[]}\n", "data: [DONE]\n"]),
            None
        );
    }

    #[test]
    fn json_usage_at_the_end() {
        let body = r#"{"id":"x","choices":[{"text":"he said \"usage\": lots"}],"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}}"#;
        let (a, b) = body.split_at(40);
        assert_eq!(scan(false, &[a, b]), usage(5, 6, 11));
    }

    #[test]
    fn json_big_body_keeps_only_the_tail() {
        let filler = "x".repeat(JSON_TAIL * 3);
        let body =
            format!(r#"{{"data":"{filler}","usage":{{"prompt_tokens":9,"total_tokens":9}}}}"#);
        let mut scanner = UsageScanner::new(false);
        for chunk in body.as_bytes().chunks(10_000) {
            scanner.feed(chunk);
        }
        assert!(scanner.buffer.len() <= JSON_TAIL);
        assert_eq!(scanner.finish(), usage(9, 0, 9));
    }

    #[test]
    fn cached_tokens_from_prompt_tokens_details() {
        let json = r#"{"usage":{"prompt_tokens":50,"completion_tokens":2,"total_tokens":52,"prompt_tokens_details":{"cached_tokens":32}}}"#;
        let want = Usage {
            cached_tokens: Some(32),
            ..usage(50, 2, 52).expect("usage")
        };
        assert_eq!(scan(false, &[json]), Some(want));
        let sse = format!("data: {json}\n\ndata: [DONE]\n\n");
        assert_eq!(scan(true, &[&sse]), Some(want));
        // vLLM without --enable-prompt-tokens-details sends null details.
        let null = r#"{"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6,"prompt_tokens_details":null}}"#;
        assert_eq!(scan(false, &[null]), usage(5, 1, 6));
        let negative =
            r#"{"usage":{"prompt_tokens":5,"prompt_tokens_details":{"cached_tokens":-1}}}"#;
        assert_eq!(scan(false, &[negative]), usage(5, 0, 0));
    }

    #[test]
    fn responses_api_usage() {
        // Non-streamed: the response object ends with its usage.
        let json = r#"{"id":"resp_1","object":"response","output":[{"type":"message","content":[{"type":"output_text","text":"hi"}]}],"usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":8},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":17}}"#;
        let want = Usage {
            cached_tokens: Some(8),
            ..usage(12, 5, 17).expect("usage")
        };
        assert_eq!(scan(false, &[json]), Some(want));
        // Streamed: inside response.completed's response; earlier events carry null usage.
        let sse = concat!(
            "event: response.created\n",
            "data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"usage\":null}}\n\n",
            "event: response.output_text.delta\n",
            "data: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n",
            "event: response.completed\n",
            "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":12,\"output_tokens\":5,\"total_tokens\":17}}}\n\n",
        );
        let (a, b) = sse.split_at(150);
        assert_eq!(scan(true, &[a, b]), usage(12, 5, 17));
    }

    #[test]
    fn not_json() {
        assert_eq!(scan(false, &["no healthy upstream"]), None);
    }
}
