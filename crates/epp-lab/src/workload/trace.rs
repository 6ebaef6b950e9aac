//! Trace replay (sim-model.md §2.2): Mooncake JSONL and this EPP's request log. Files are
//! read line by line; a bad line is an error naming its number and field.
//!
//! Block hashes become deterministic token blocks, so two requests sharing a hash share
//! those tokens and the engine's and scheduler's own hashers see the same sharing.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::spec::{TraceFormat, TraceSpec};
use super::tokens::{block_tokens, derived_token, mix};
use super::{Arrival, Prompt, RequestSpec, Workload, WorkloadError, spec_error};
use crate::results::StageInfo;

/// Output length the request log assumes when it recorded none.
const DEFAULT_OUTPUT_TOKENS: u32 = 128;

/// One parsed line, before sorting.
struct Line {
    arrival: Arrival,
    tokens: Vec<u32>,
    output_tokens: u32,
    session: Option<String>,
}

/// A trace line longer than this is refused (a request-log line with 65,536 hashes is
/// about 1.3 MB).
const MAX_LINE_BYTES: usize = 4 << 20;

/// One request's prompt at most, tokens.
const MAX_PROMPT_TOKENS: u64 = 1 << 20;

/// Prompt tokens over the whole trace at most (4 bytes each in memory).
const MAX_TRACE_TOKENS: usize = 1 << 30;

fn too_big(path: &str, line: usize, message: &str) -> WorkloadError {
    WorkloadError::TraceLine {
        path: path.to_owned(),
        line,
        field: "(line)".to_owned(),
        message: message.to_owned(),
    }
}

/// Reads the trace and builds the workload (one stage covering the whole replay).
pub(super) fn load(spec: &TraceSpec, base_dir: &Path) -> Result<Workload, WorkloadError> {
    check(spec)?;
    let path = base_dir.join(&spec.path);
    let shown = path.display().to_string();
    let file = std::fs::File::open(&path).map_err(|source| WorkloadError::Io {
        path: shown.clone(),
        source,
    })?;
    let mut parser = Parser::new(spec, shown.clone());
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    let mut tokens = 0usize;
    for number in 1.. {
        if spec
            .max_requests
            .is_some_and(|max| parser.lines.len() >= max)
        {
            break;
        }
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|source| WorkloadError::Io {
                path: shown.clone(),
                source,
            })?;
        if read == 0 {
            break;
        }
        if line.len() > MAX_LINE_BYTES {
            return Err(too_big(
                &shown,
                number,
                &format!("longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        let text = std::str::from_utf8(&line).map_err(|_| too_big(&shown, number, "not UTF-8"))?;
        if text.trim().is_empty() {
            continue;
        }
        parser.line(number, text)?;
        tokens += parser.lines.last().map_or(0, |l| l.tokens.len());
        if parser.lines.len() > super::arrivals::MAX_REQUESTS || tokens > MAX_TRACE_TOKENS {
            return Err(too_big(
                &shown,
                number,
                &format!(
                    "the trace holds more than {} requests or {MAX_TRACE_TOKENS} prompt tokens; \
                     set trace.max_requests",
                    super::arrivals::MAX_REQUESTS
                ),
            ));
        }
    }
    Ok(parser.finish(spec))
}

/// The settings checks that need no file.
pub(super) fn check(spec: &TraceSpec) -> Result<(), WorkloadError> {
    if !(spec.speedup.is_finite() && spec.speedup > 0.0) {
        return Err(spec_error("trace.speedup", "must be a positive number"));
    }
    if spec.block_size.is_some() && spec.format != TraceFormat::Mooncake {
        return Err(spec_error(
            "trace.block_size",
            "only Mooncake traces take a block size (the request log records its own)",
        ));
    }
    if spec.block_size == Some(0) {
        return Err(spec_error("trace.block_size", "must be at least 1"));
    }
    if spec.max_concurrency == Some(0) {
        return Err(spec_error("trace.max_concurrency", "must be at least 1"));
    }
    Ok(())
}

struct Parser<'a> {
    spec: &'a TraceSpec,
    path: String,
    lines: Vec<Line>,
    /// The request log's first arrival, the origin of time.
    origin_ms: Option<f64>,
    /// Sessions that have sent a request, for Mooncake's `delay`.
    seen_sessions: BTreeMap<String, ()>,
}

impl<'a> Parser<'a> {
    fn new(spec: &'a TraceSpec, path: String) -> Self {
        Parser {
            spec,
            path,
            lines: Vec::new(),
            origin_ms: None,
            seen_sessions: BTreeMap::new(),
        }
    }

    fn line(&mut self, number: usize, text: &str) -> Result<(), WorkloadError> {
        let path = self.path.clone();
        let fields = Fields {
            path: &path,
            number,
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| fields.error("(line)", &e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(fields.error("(line)", "expected a JSON object"));
        };
        let line = match self.spec.format {
            TraceFormat::Mooncake => self.mooncake(&fields, &map)?,
            TraceFormat::EppRequestLog => self.request_log(&fields, &map)?,
        };
        if let Some(session) = &line.session {
            self.seen_sessions.insert(session.clone(), ());
        }
        self.lines.push(line);
        Ok(())
    }

    fn mooncake(&self, f: &Fields<'_>, map: &Map<String, Value>) -> Result<Line, WorkloadError> {
        let block_size = self.spec.block_size.unwrap_or(512) as usize;
        let input = f
            .u64(map, "input_length")?
            .ok_or_else(|| f.missing("input_length"))?;
        if input > MAX_PROMPT_TOKENS {
            return Err(f.error("input_length", &format!("at most {MAX_PROMPT_TOKENS}")));
        }
        let input = input as usize;
        let output = f
            .u64(map, "output_length")?
            .ok_or_else(|| f.missing("output_length"))?;
        let session = f.session(map, "session_id")?;
        let delay_ms = match f.f64(map, "delay_ms")? {
            Some(ms) => Some(ms),
            None => f.f64(map, "delay")?,
        };
        let follows = session
            .as_ref()
            .is_some_and(|s| self.seen_sessions.contains_key(s));
        let arrival = match (delay_ms, follows, f.f64(map, "timestamp")?) {
            (Some(delay), true, _) => Arrival::AfterPrevious {
                think_s: delay / 1000.0 / self.spec.speedup,
            },
            (_, _, Some(ms)) => Arrival::At(ms / 1000.0 / self.spec.speedup),
            (_, _, None) => return Err(f.missing("timestamp")),
        };
        let mut tokens = Vec::with_capacity(input);
        for hash in f.u64_array(map, "hash_ids")? {
            if tokens.len() >= input {
                break;
            }
            block_tokens(hash, block_size, &mut tokens);
        }
        fit(&mut tokens, input, mix(&[0x6d6f_6f6e, f.number as u64]));
        Ok(Line {
            arrival,
            tokens,
            output_tokens: clamp_u32(output),
            session,
        })
    }

    fn request_log(
        &mut self,
        f: &Fields<'_>,
        map: &Map<String, Value>,
    ) -> Result<Line, WorkloadError> {
        let arrival_ms = f
            .f64(map, "arrival_unix_ms")?
            .ok_or_else(|| f.missing("arrival_unix_ms"))?;
        let origin = *self.origin_ms.get_or_insert(arrival_ms);
        let hashes = f.u64_array(map, "prompt_block_hashes")?;
        let block_bytes = f.u64(map, "block_size_bytes")?;
        let block_tokens_len = match block_bytes {
            Some(bytes) if bytes >= 4 => (bytes / 4) as usize,
            Some(_) => return Err(f.error("block_size_bytes", "must be at least 4")),
            None if hashes.is_empty() => 0,
            None => return Err(f.missing("block_size_bytes")),
        };
        let input = match f.u64(map, "input_tokens")? {
            Some(n) => n as usize,
            None => {
                (f.u64(map, "prompt_bytes")?
                    .ok_or_else(|| f.missing("prompt_bytes"))?
                    / 4) as usize
            }
        };
        if input as u64 > MAX_PROMPT_TOKENS {
            return Err(f.error("input_tokens", &format!("at most {MAX_PROMPT_TOKENS}")));
        }
        let mut tokens = Vec::with_capacity(input);
        for &hash in &hashes {
            if tokens.len() >= input {
                break;
            }
            block_tokens(hash, block_tokens_len, &mut tokens);
        }
        let pad_key = hashes
            .last()
            .copied()
            .unwrap_or_else(|| mix(&[f.number as u64]));
        fit(&mut tokens, input, mix(&[0x006c_6f67, pad_key]));
        let output = f
            .u64(map, "output_tokens")?
            .map_or(DEFAULT_OUTPUT_TOKENS, clamp_u32);
        Ok(Line {
            arrival: Arrival::At((arrival_ms - origin) / 1000.0 / self.spec.speedup),
            tokens,
            output_tokens: output,
            session: f.session(map, "session")?,
        })
    }

    /// Sorts by arrival (a follow-up round sorts with its predecessor, after it) and numbers
    /// sessions by first appearance.
    fn finish(self, spec: &TraceSpec) -> Workload {
        let mut keyed: Vec<(f64, Line)> = Vec::with_capacity(self.lines.len());
        let mut last_key: BTreeMap<String, f64> = BTreeMap::new();
        for line in self.lines {
            let key = match (line.arrival, &line.session) {
                (Arrival::At(t), _) => t,
                (Arrival::AfterPrevious { .. }, Some(s)) => last_key.get(s).copied().unwrap_or(0.0),
                (Arrival::AfterPrevious { .. }, None) => 0.0,
            };
            if let Some(s) = &line.session {
                last_key.insert(s.clone(), key);
            }
            keyed.push((key, line));
        }
        // Request-log arrivals can be slightly out of order: shift so none is negative.
        let shift = keyed.iter().map(|(k, _)| *k).fold(0.0, f64::min);
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut session_ids: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        let mut end: f64 = 0.0;
        let requests = keyed
            .into_iter()
            .enumerate()
            .map(|(i, (_, line))| {
                let arrival = match line.arrival {
                    Arrival::At(t) => Arrival::At(t - shift),
                    other => other,
                };
                if let Arrival::At(t) = arrival {
                    end = end.max(t);
                }
                let (session, round) = match line.session {
                    Some(s) => {
                        let next = session_ids.len() as u32;
                        let entry = session_ids.entry(s).or_insert((next, 0));
                        let ids = *entry;
                        entry.1 += 1;
                        (Some(ids.0), Some(ids.1))
                    }
                    None => (None, None),
                };
                RequestSpec {
                    arrival,
                    stage: 0,
                    prompt: Arc::new(Prompt::new(line.tokens)),
                    output_tokens: line.output_tokens,
                    group: None,
                    session,
                    round,
                    output_key: mix(&[0x0074_7261_6365, i as u64]),
                    flow: None,
                }
            })
            .collect();
        let format = match spec.format {
            TraceFormat::Mooncake => "mooncake",
            TraceFormat::EppRequestLog => "epp-request-log",
        };
        Workload {
            name: format!("{format} {}", spec.path),
            requests,
            stages: vec![StageInfo {
                index: 0,
                rate: None,
                start_s: 0.0,
                duration_s: end,
                warmup: false,
            }],
            max_concurrency: spec.max_concurrency,
            classes: Vec::new(),
        }
    }
}

/// Truncates or pads (with tokens derived from `pad_key`) to exactly `len` tokens.
fn fit(tokens: &mut Vec<u32>, len: usize, pad_key: u64) {
    tokens.truncate(len);
    let have = tokens.len() as u64;
    tokens.extend((have..len as u64).map(|n| derived_token(pad_key, n)));
}

fn clamp_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Typed field access for one line, with errors naming the line and field.
struct Fields<'a> {
    path: &'a str,
    number: usize,
}

impl Fields<'_> {
    fn error(&self, field: &str, message: &str) -> WorkloadError {
        WorkloadError::TraceLine {
            path: self.path.to_string(),
            line: self.number,
            field: field.to_string(),
            message: message.to_string(),
        }
    }

    fn missing(&self, field: &str) -> WorkloadError {
        self.error(field, "missing")
    }

    fn u64(&self, map: &Map<String, Value>, field: &str) -> Result<Option<u64>, WorkloadError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                self.error(field, &format!("expected a non-negative integer, got {v}"))
            }),
        }
    }

    fn f64(&self, map: &Map<String, Value>, field: &str) -> Result<Option<f64>, WorkloadError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
                _ => Err(self.error(field, &format!("expected a non-negative number, got {v}"))),
            },
        }
    }

    fn u64_array(&self, map: &Map<String, Value>, field: &str) -> Result<Vec<u64>, WorkloadError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_u64().ok_or_else(|| {
                        self.error(
                            &format!("{field}[{i}]"),
                            &format!("expected an unsigned integer, got {v}"),
                        )
                    })
                })
                .collect(),
            Some(v) => Err(self.error(field, &format!("expected an array, got {v}"))),
        }
    }

    /// A session id, string or number.
    fn session(
        &self,
        map: &Map<String, Value>,
        field: &str,
    ) -> Result<Option<String>, WorkloadError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(v) => Err(self.error(field, &format!("expected a string or number, got {v}"))),
        }
    }
}
