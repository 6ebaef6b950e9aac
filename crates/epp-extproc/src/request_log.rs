//! The opt-in request log (`--request-log-file`): one JSON line per routed request whose
//! response ended, so production traffic can be replayed in `epp-lab`
//! (`trace: {format: epp-request-log, path: ...}`).
//!
//! Prompts and responses are never written: a prompt is kept only as the chained block
//! hashes the prefix index uses ([`hash_prompt`], seeded with the target model) and its
//! length. Lines are written by a background thread; [`RequestLog::record`] never waits:
//! when the queue is full the line is dropped and counted.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::SystemTime;

use serde::Serialize;

use crate::usage::Usage;
use epp_core::prefix::hash_prompt;

/// Header whose value is logged as the session unless `--request-log-session-header` says.
pub const DEFAULT_SESSION_HEADER: &str = "x-session-id";
/// Block size when the config has no prefix-cache scorer (its default `hashBlockSize`).
pub const DEFAULT_BLOCK_SIZE: u32 = 64;
/// Blocks hashed per prompt (4 MiB of prompt at 64-byte blocks): bounds one line to about
/// 1.3 MB. `prompt_bytes` still counts the whole prompt.
pub const MAX_LOGGED_BLOCKS: usize = 65_536;
/// Longest session value kept, in bytes (cut at a character boundary).
const MAX_SESSION_BYTES: usize = 256;
/// Lines waiting for the writer before new ones are dropped.
const QUEUE_LINES: usize = 16_384;
/// Memory the waiting lines may hold before new ones are dropped (large prompts make
/// large lines).
const QUEUE_BYTES: usize = 64 << 20;

/// One request, as written (field order is the line's key order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestLogEntry {
    /// Wall-clock time the request headers arrived, in milliseconds since the Unix epoch.
    pub arrival_unix_ms: f64,
    pub model: String,
    pub target_model: String,
    pub block_size_bytes: u32,
    /// Chained XXH64 hashes of the prompt's full blocks (the partial tail is not hashed).
    pub prompt_block_hashes: Vec<u64>,
    /// The prompt's length in UTF-8 bytes (0 without a prompt).
    pub prompt_bytes: u64,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    pub session: Option<String>,
    /// The primary endpoint picked, `ip:port`.
    pub endpoint: String,
    /// The response's `:status`, when the gateway sent one.
    pub status: Option<u16>,
}

/// What is known when the request is routed.
#[derive(Debug, Clone, Copy)]
pub struct RoutedRequest<'a> {
    pub arrival: SystemTime,
    pub model: &'a str,
    pub target_model: &'a str,
    pub prompt: Option<&'a str>,
    pub session: Option<&'a str>,
    pub endpoint: &'a str,
}

impl RequestLogEntry {
    /// The entry of a request at decision time: the prompt is hashed here so it need not
    /// be kept until the response ends. Response fields are empty until [`Self::finish`].
    pub fn routed(request: &RoutedRequest<'_>, block_size: u32) -> Self {
        let prompt = request.prompt.unwrap_or_default();
        let mut hashes = Vec::new();
        hash_prompt(
            request.target_model,
            prompt.as_bytes(),
            block_size as usize,
            MAX_LOGGED_BLOCKS,
            &mut hashes,
        );
        RequestLogEntry {
            arrival_unix_ms: unix_ms(request.arrival),
            model: request.model.to_owned(),
            target_model: request.target_model.to_owned(),
            block_size_bytes: block_size,
            prompt_block_hashes: hashes,
            prompt_bytes: prompt.len() as u64,
            input_tokens: None,
            output_tokens: None,
            cached_tokens: None,
            session: request
                .session
                .map(|s| cut(s, MAX_SESSION_BYTES).to_owned()),
            endpoint: request.endpoint.to_owned(),
            status: None,
        }
    }

    /// Fills in the response's token counts (all `None` when it carried no `usage`).
    pub fn finish(&mut self, usage: Option<&Usage>) {
        self.input_tokens = usage.map(|u| u.prompt_tokens);
        self.output_tokens = usage.map(|u| u.completion_tokens);
        self.cached_tokens = usage.and_then(|u| u.cached_tokens);
    }

    /// Memory the entry holds while queued, roughly.
    fn footprint(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.prompt_block_hashes.len() * 8
            + self.model.len()
            + self.target_model.len()
            + self.session.as_ref().map_or(0, String::len)
            + self.endpoint.len()
    }
}

fn unix_ms(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let end = (0..=max).rev().find(|&i| text.is_char_boundary(i));
    &text[..end.unwrap_or(0)]
}

/// Settings of a request log.
#[derive(Debug, Clone)]
pub struct RequestLogSettings {
    /// Bytes per hashed prompt block (the prefix-cache scorer's `hashBlockSize`).
    pub block_size: u32,
    /// Header (any case) whose value is logged as `session`.
    pub session_header: String,
}

impl Default for RequestLogSettings {
    fn default() -> Self {
        RequestLogSettings {
            block_size: DEFAULT_BLOCK_SIZE,
            session_header: DEFAULT_SESSION_HEADER.to_owned(),
        }
    }
}

/// Lines written and dropped, shared with the writer thread.
#[derive(Debug, Default)]
struct Counts {
    written: AtomicU64,
    dropped: AtomicU64,
    /// Footprint of the entries waiting for the writer.
    queued_bytes: AtomicUsize,
}

/// The sink: a bounded queue to a writer thread that owns the output.
pub struct RequestLog {
    settings: RequestLogSettings,
    sender: SyncSender<RequestLogEntry>,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLog")
            .field("settings", &self.settings)
            .field("written", &self.written())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl RequestLog {
    /// Appends lines to `path` (created if missing).
    pub fn to_file(path: &Path, settings: RequestLogSettings) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Self::to_writer(file, settings)
    }

    /// Writes lines to `out` from a background thread, flushing after each batch.
    pub fn to_writer(
        out: impl Write + Send + 'static,
        mut settings: RequestLogSettings,
    ) -> std::io::Result<Self> {
        settings.session_header.make_ascii_lowercase();
        let (sender, receiver) = sync_channel(QUEUE_LINES);
        let counts = Arc::new(Counts::default());
        let shared = Arc::clone(&counts);
        std::thread::Builder::new()
            .name("request-log".into())
            .spawn(move || write_lines(receiver, out, &shared))?;
        Ok(RequestLog {
            settings,
            sender,
            counts,
        })
    }

    pub fn block_size(&self) -> u32 {
        self.settings.block_size
    }

    /// The session header's name, lowercase.
    pub fn session_header(&self) -> &str {
        &self.settings.session_header
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.counts.written.load(Ordering::Relaxed)
    }

    /// Lines dropped because the writer fell behind or stopped.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// Queues `entry` for writing; never waits.
    pub fn record(&self, entry: RequestLogEntry) {
        let size = entry.footprint();
        let queued = self.counts.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if queued.saturating_add(size) > QUEUE_BYTES {
            self.counts.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.count_drop();
            return;
        }
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.sender.try_send(entry)
        {
            self.counts.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.count_drop();
        }
    }

    fn count_drop(&self) {
        let dropped = self.counts.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            tracing::warn!(dropped, "request log lines dropped: the writer is behind");
        }
    }
}

/// The writer thread: writes what is queued, then flushes, so lines reach the output
/// promptly; stops on the first write error.
fn write_lines(receiver: Receiver<RequestLogEntry>, out: impl Write, counts: &Counts) {
    let mut out = std::io::BufWriter::new(out);
    while let Ok(first) = receiver.recv() {
        let mut lines = 0;
        let written = std::iter::once(first)
            .chain(receiver.try_iter())
            .try_for_each(|entry| {
                counts
                    .queued_bytes
                    .fetch_sub(entry.footprint(), Ordering::Relaxed);
                lines += 1;
                serde_json::to_writer(&mut out, &entry)?;
                out.write_all(b"\n")
            })
            .and_then(|()| out.flush());
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot write the request log; stopping");
            return;
        }
        counts.written.fetch_add(lines, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
