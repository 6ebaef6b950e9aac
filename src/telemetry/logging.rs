//! zap/controller-runtime-compatible log output (JSON or development console) on top of `tracing`.
//!
//! # Levels
//! Upstream logs through logr with verbosity levels `V(n)` (DEFAULT=2, VERBOSE=3,
//! DEBUG=4, TRACE=5) and shows a message when `n <= --v`. This crate logs with `tracing`
//! macros: `error!`, `warn!`, `info!` for V≤2, `debug!` for V3 and V4, `trace!` for V5.
//! [`verbosity_filter`] therefore maps `--v`: ≤ -2 → ERROR, -1 → WARN, 0..=2 → INFO,
//! 3..=4 → DEBUG, ≥ 5 → TRACE. `--zap-log-level` overrides `--v`
//! when set, as upstream (resolved by `cli`). Because V0, V1 and V2 all map to `info!`, `--v 0|1` and
//! `--zap-log-level=info|debug` show the same as `--v 2` (upstream would hide V2).
//!
//! Events of other crates (h2, hyper, tonic, ...) are capped at INFO so `--v 5` does
//! not flood the output with transport internals; [`LogSettings::directives`]
//! (EnvFilter syntax, e.g. from `RUST_LOG`) replaces the whole filter when set.
//!
//! The filter is a static per-callsite filter, so a disabled `debug!`/`trace!` costs
//! one cached interest check and formats nothing.
//!
//! # Output
//! JSON (`--zap-encoder=json`), one object per line, keys in zap's order:
//! `{"level":"info","ts":"2006-01-02T15:04:05Z","logger":"extproc","msg":"...",<span fields>,<event fields>}`.
//! Console (`--zap-encoder=console`, the default with `--zap-devel`):
//! `2006-01-02T15:04:05Z\tINFO\textproc\tmsg\t{"k": "v", "n": 1}` (zap's spaced JSON).
//!
//! - `level`: `error`, `warn`, `info`, `debug`, `trace` (upper-case on the console).
//! - `ts`: per [`TimeEncoding`], always in UTC.
//! - `logger`: the event's target without the crate prefix (`epp::`), `::` → `.`.
//! - fields: those of every enclosing span (outermost first), then the event's; numbers
//!   and booleans stay JSON numbers/booleans, everything else becomes a string.
//!   Dashed names work with tracing's string-literal syntax:
//!   `tracing::info_span!("request", "x-request-id" = %id)`; in events a dashed name
//!   must not come first unless the fields are braced:
//!   `tracing::info!({ "picked-endpoint" = %addr }, "Scheduled")`.
//!   Spans only contribute fields when their own level is enabled, so open
//!   field-carrying spans at INFO (e.g. `info_span!`).
//!
//! Not reproduced from zap: the `caller` key, stack traces on errors, and zap's
//! `Level(-N)` level names for logr verbosities above 1.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;

use std::sync::{Arc, Mutex, PoisonError};

use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// Default `--v`.
pub const DEFAULT_VERBOSITY: i32 = 2;
/// logr verbosity of regular operational messages (`info!`).
pub const DEFAULT: i32 = 2;
/// logr verbosity of detailed messages (`debug!`).
pub const VERBOSE: i32 = 3;
/// logr verbosity of debugging messages (`debug!`).
pub const DEBUG: i32 = 4;
/// logr verbosity of per-request tracing messages (`trace!`).
pub const TRACE: i32 = 5;

/// Crate names whose targets are "ours": shown at the full verbosity and stripped from
/// logger names.
const OWN_CRATES: [&str; 2] = ["epp", env!("CARGO_CRATE_NAME")];

pub use crate::cli::{LogEncoder, TimeEncoding};

/// Maps `--v N` to a `tracing` level filter (see the module docs).
pub fn verbosity_filter(verbosity: i32) -> LevelFilter {
    match verbosity {
        i32::MIN..=-2 => LevelFilter::ERROR,
        -1 => LevelFilter::WARN,
        0..=2 => LevelFilter::INFO,
        3..=4 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Logging flags, already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `--v` (default 2).
    pub verbosity: i32,
    /// Resolved `--zap-encoder` / `--zap-devel`.
    pub encoder: LogEncoder,
    /// `--zap-time-encoding` (default rfc3339).
    pub time_encoding: TimeEncoding,
    /// EnvFilter directives (e.g. the `RUST_LOG` value) that replace the computed
    /// filter entirely when set; for debugging dependencies.
    pub directives: Option<String>,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            verbosity: DEFAULT_VERBOSITY,
            encoder: LogEncoder::Console,
            time_encoding: TimeEncoding::Rfc3339,
            directives: None,
        }
    }
}

impl LogSettings {
    /// The level filter for our crate's events.
    pub fn level_filter(&self) -> LevelFilter {
        verbosity_filter(self.verbosity)
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter directives do not parse.
    #[error(
        "invalid log filter directives {directives:?} (RUST_LOG): {source}; use EnvFilter \
         syntax such as \"epp=debug,h2=info\" or unset RUST_LOG"
    )]
    InvalidDirectives {
        /// The rejected directives.
        directives: String,
        /// The parse error.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was installed before.
    #[error(
        "a global log subscriber is already installed ({0}); call telemetry::logging::init \
         exactly once, at start-up"
    )]
    AlreadyInstalled(#[source] tracing::subscriber::SetGlobalDefaultError),
}

/// Installs the global subscriber writing zap-formatted lines to stderr.
pub fn init(settings: &LogSettings) -> Result<(), LoggingError> {
    let layer = layer_for_writer(settings, std::io::stderr)?;
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::set_global_default(subscriber).map_err(LoggingError::AlreadyInstalled)
}

/// The zap-formatting layer with its level filter, writing to `writer` (e.g.
/// `std::io::stderr` or a [`CapturedLogs`] in tests).
pub fn layer_for_writer<S, W>(
    settings: &LogSettings,
    writer: W,
) -> Result<Box<dyn Layer<S> + Send + Sync + 'static>, LoggingError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let layer = ZapLayer::new(settings.encoder, settings.time_encoding, writer);
    if let Some(directives) = &settings.directives {
        let filter =
            EnvFilter::try_new(directives).map_err(|source| LoggingError::InvalidDirectives {
                directives: directives.clone(),
                source,
            })?;
        return Ok(layer.with_filter(filter).boxed());
    }
    let level = settings.level_filter();
    let mut filter = Targets::new().with_default(std::cmp::min(level, LevelFilter::INFO));
    for krate in OWN_CRATES {
        filter = filter.with_target(krate, level);
    }
    Ok(layer.with_filter(filter).boxed())
}

/// A `tracing` layer formatting events like controller-runtime's zap logger. Apply a
/// filter with `Layer::with_filter` (or use [`layer_for_writer`]).
pub struct ZapLayer<W> {
    encoder: LogEncoder,
    time_encoding: TimeEncoding,
    writer: W,
    clock: fn() -> OffsetDateTime,
}

impl<W> fmt::Debug for ZapLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZapLayer")
            .field("encoder", &self.encoder)
            .field("time_encoding", &self.time_encoding)
            .finish_non_exhaustive()
    }
}

impl<W> ZapLayer<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    /// A layer writing every event it sees (no filtering) to `writer`.
    pub fn new(encoder: LogEncoder, time_encoding: TimeEncoding, writer: W) -> Self {
        Self {
            encoder,
            time_encoding,
            writer,
            clock: OffsetDateTime::now_utc,
        }
    }

    #[cfg(test)]
    fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.clock = clock;
        self
    }
}

/// Rendered fields of a span, stored in its extensions.
struct SpanFields(Vec<(&'static str, String)>);

/// Records fields as (name, rendered JSON value) pairs; the message separately.
struct FieldVisitor<'a> {
    fields: &'a mut Vec<(&'static str, String)>,
    message: Option<&'a mut String>,
}

impl FieldVisitor<'_> {
    fn push(&mut self, field: &Field, value: String) {
        let name = field.name();
        if name.starts_with("log.") {
            return; // metadata added by the `log` bridge
        }
        if let Some(slot) = self.fields.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        } else {
            self.fields.push((name, value));
        }
    }

    fn push_string(&mut self, field: &Field, value: &str) {
        let mut json = String::with_capacity(value.len() + 2);
        push_json_str(&mut json, value);
        self.push(field, json);
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message"
            && let Some(message) = self.message.as_deref_mut()
        {
            message.push_str(value);
            return;
        }
        self.push_string(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.to_string());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.to_string());
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.push(field, value.to_string());
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.push(field, value.to_string());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let mut json = String::new();
        push_json_float(&mut json, value);
        self.push(field, json);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push_string(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message"
            && let Some(message) = self.message.as_deref_mut()
        {
            let _ = write!(message, "{value:?}");
            return;
        }
        self.push_string(field, &format!("{value:?}"));
    }
}

/// Per-thread scratch buffers reused across events.
#[derive(Default)]
struct Scratch {
    line: String,
    message: String,
    fields: Vec<(&'static str, String)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl<S, W> Layer<S> for ZapLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Vec::new();
        attrs.record(&mut FieldVisitor {
            fields: &mut fields,
            message: None,
        });
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut FieldVisitor {
                fields,
                message: None,
            });
        } else {
            let mut fields = Vec::new();
            values.record(&mut FieldVisitor {
                fields: &mut fields,
                message: None,
            });
            extensions.insert(SpanFields(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let render = |scratch: &mut Scratch| {
            scratch.line.clear();
            scratch.message.clear();
            scratch.fields.clear();
            let Scratch {
                line,
                message,
                fields,
            } = scratch;
            event.record(&mut FieldVisitor {
                fields,
                message: Some(message),
            });
            let now = (self.clock)();
            let metadata = event.metadata();
            let spans = ctx.event_scope(event);
            let mut field_writer = FieldWriter::new(self.encoder);
            let mut out = String::new();
            std::mem::swap(&mut out, line);
            match self.encoder {
                LogEncoder::Json => {
                    out.push_str("{\"level\":\"");
                    out.push_str(level_lower(metadata.level()));
                    out.push_str("\",\"ts\":");
                    encode_time(self.time_encoding, now, false, &mut out);
                    out.push_str(",\"logger\":");
                    push_json_str(&mut out, &logger_name(metadata.target()));
                    out.push_str(",\"msg\":");
                    push_json_str(&mut out, message);
                }
                LogEncoder::Console => {
                    encode_time(self.time_encoding, now, true, &mut out);
                    out.push('\t');
                    out.push_str(level_upper(metadata.level()));
                    out.push('\t');
                    out.push_str(&logger_name(metadata.target()));
                    out.push('\t');
                    out.push_str(message);
                }
            }
            if let Some(scope) = spans {
                for span in scope.from_root() {
                    let extensions = span.extensions();
                    if let Some(SpanFields(span_fields)) = extensions.get::<SpanFields>() {
                        for (name, value) in span_fields {
                            field_writer.write(&mut out, name, value);
                        }
                    }
                }
            }
            for (name, value) in fields.iter() {
                field_writer.write(&mut out, name, value);
            }
            field_writer.finish(&mut out);
            out.push('\n');
            let mut writer = self.writer.make_writer_for(metadata);
            let _ = writer.write_all(out.as_bytes());
            std::mem::swap(&mut out, line);
        };
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => render(&mut scratch),
            // Re-entrant logging (a Display impl that logs): use fresh buffers.
            Err(_) => render(&mut Scratch::default()),
        });
    }
}

/// Appends `,"k":v` (JSON) or `{"k": v, ...}` (console) field lists.
struct FieldWriter {
    encoder: LogEncoder,
    count: usize,
}

impl FieldWriter {
    fn new(encoder: LogEncoder) -> Self {
        Self { encoder, count: 0 }
    }

    fn write(&mut self, out: &mut String, name: &str, value: &str) {
        let name = name.strip_prefix("r#").unwrap_or(name);
        match self.encoder {
            LogEncoder::Json => {
                out.push(',');
                push_json_str(out, name);
                out.push(':');
            }
            LogEncoder::Console => {
                out.push_str(if self.count == 0 { "\t{" } else { ", " });
                push_json_str(out, name);
                out.push_str(": ");
            }
        }
        out.push_str(value);
        self.count += 1;
    }

    fn finish(self, out: &mut String) {
        match self.encoder {
            LogEncoder::Json => out.push('}'),
            LogEncoder::Console if self.count > 0 => out.push('}'),
            LogEncoder::Console => {}
        }
    }
}

fn level_lower(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

fn level_upper(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// The logger name for a target: own crate prefix stripped, `::` → `.`.
fn logger_name(target: &str) -> String {
    for krate in OWN_CRATES {
        if let Some(rest) = target.strip_prefix(krate) {
            if let Some(rest) = rest.strip_prefix("::") {
                return rest.replace("::", ".");
            }
            if rest.is_empty() {
                return krate.to_owned();
            }
        }
    }
    target.replace("::", ".")
}

/// Appends `s` as a JSON string, escaping like zap (`"`, `\`, control characters).
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a float as zap's JSON encoder does (`strconv` 'f', shortest; NaN/Inf quoted).
fn push_json_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("\"NaN\"");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "\"+Inf\"" } else { "\"-Inf\"" });
    } else {
        let _ = write!(out, "{value}");
    }
}

/// Appends a float as Go's `fmt.Sprint` does (`%g` with shortest precision: exponent
/// form when the decimal exponent is < -4 or >= 6, e.g. `1.7e+09`), as zap's console
/// encoder prints epoch timestamps.
fn push_go_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    let sci = format!("{value:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        let _ = write!(out, "{value}");
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "{mantissa}e{sign}{:02}", exponent.unsigned_abs());
    }
}

/// Appends the timestamp per `encoding`; `console` selects Go `fmt` number formatting
/// and unquoted strings.
fn encode_time(encoding: TimeEncoding, t: OffsetDateTime, console: bool, out: &mut String) {
    let nanos = t.unix_timestamp_nanos();
    let quote = !console;
    match encoding {
        TimeEncoding::Epoch | TimeEncoding::Millis => {
            let divisor = if encoding == TimeEncoding::Epoch {
                1e9
            } else {
                1e6
            };
            #[allow(clippy::cast_precision_loss)]
            let value = nanos as f64 / divisor;
            if console {
                push_go_float(out, value);
            } else {
                push_json_float(out, value);
            }
        }
        TimeEncoding::Nanos => {
            let _ = write!(out, "{nanos}");
        }
        TimeEncoding::Iso8601 | TimeEncoding::Rfc3339 | TimeEncoding::Rfc3339Nano => {
            if quote {
                out.push('"');
            }
            let _ = write!(
                out,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            let nanosecond = t.nanosecond();
            match encoding {
                TimeEncoding::Iso8601 => {
                    let _ = write!(out, ".{:03}", nanosecond / 1_000_000);
                }
                TimeEncoding::Rfc3339Nano if nanosecond > 0 => {
                    let frac = format!("{nanosecond:09}");
                    out.push('.');
                    out.push_str(frac.trim_end_matches('0'));
                }
                _ => {}
            }
            out.push('Z');
            if quote {
                out.push('"');
            }
        }
    }
}

/// An in-memory log sink for tests: a cloneable [`MakeWriter`] over a shared buffer.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// A new empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far.
    pub fn contents(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Everything written so far, one entry per line.
    pub fn lines(&self) -> Vec<String> {
        self.contents().lines().map(str::to_owned).collect()
    }

    /// Empties the buffer.
    pub fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Writer handed out by [`CapturedLogs`].
#[derive(Debug)]
pub struct CapturedWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CapturedWriter(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::Registry;

    fn fixed_clock() -> OffsetDateTime {
        // 2024-03-05T06:07:08.120300000Z
        OffsetDateTime::from_unix_timestamp_nanos(1_709_618_828_120_300_000)
            .expect("valid timestamp")
    }

    fn settings(encoder: LogEncoder, time_encoding: TimeEncoding, verbosity: i32) -> LogSettings {
        LogSettings {
            verbosity,
            encoder,
            time_encoding,
            ..LogSettings::default()
        }
    }

    /// Runs `f` with a subscriber formatting into a buffer at a fixed time.
    fn capture(settings: &LogSettings, f: impl FnOnce()) -> Vec<String> {
        let logs = CapturedLogs::new();
        let level = settings.level_filter();
        let filter = Targets::new()
            .with_default(std::cmp::min(level, LevelFilter::INFO))
            .with_target("epp", level)
            .with_target(env!("CARGO_CRATE_NAME"), level);
        let layer = ZapLayer::new(settings.encoder, settings.time_encoding, logs.clone())
            .with_clock(fixed_clock)
            .with_filter(filter);
        let subscriber = Registry::default().with(layer);
        tracing::subscriber::with_default(subscriber, f);
        logs.lines()
    }

    #[test]
    fn json_key_order_and_values() {
        let lines = capture(
            &settings(LogEncoder::Json, TimeEncoding::Rfc3339, 2),
            || {
                tracing::info!(
                    target: "epp::extproc::server",
                    pod = "vllm-0",
                    count = 3,
                    negative = -4,
                    ratio = 0.5,
                    ok = true,
                    addr = %"10.0.0.1:8000",
                    dbg = ?vec![1, 2],
                    "Request handled"
                );
            },
        );
        assert_eq!(
            lines,
            vec![
                r#"{"level":"info","ts":"2024-03-05T06:07:08Z","logger":"extproc.server","msg":"Request handled","pod":"vllm-0","count":3,"negative":-4,"ratio":0.5,"ok":true,"addr":"10.0.0.1:8000","dbg":"[1, 2]"}"#
            ]
        );
    }

    #[test]
    fn json_levels_and_escaping() {
        let lines = capture(&settings(LogEncoder::Json, TimeEncoding::Nanos, 5), || {
            tracing::error!(target: "epp::director", error = "boom \"x\"\n", "failed\tbadly");
            tracing::warn!(target: "epp::director", "w");
            tracing::debug!(target: "epp::director", "d");
            tracing::trace!(target: "epp::director", "t");
            tracing::info!(target: "epp", ctl = "\u{1}", "root");
        });
        let ns = "1709618828120300000";
        assert_eq!(
            lines,
            vec![
                format!(
                    r#"{{"level":"error","ts":{ns},"logger":"director","msg":"failed\tbadly","error":"boom \"x\"\n"}}"#
                ),
                format!(r#"{{"level":"warn","ts":{ns},"logger":"director","msg":"w"}}"#),
                format!(r#"{{"level":"debug","ts":{ns},"logger":"director","msg":"d"}}"#),
                format!(r#"{{"level":"trace","ts":{ns},"logger":"director","msg":"t"}}"#),
                format!(
                    r#"{{"level":"info","ts":{ns},"logger":"epp","msg":"root","ctl":"\u0001"}}"#
                ),
            ]
        );
    }

    #[test]
    fn json_is_valid_and_error_values_are_strings() {
        let err = std::io::Error::other("disk on fire");
        let lines = capture(
            &settings(LogEncoder::Json, TimeEncoding::Rfc3339, 2),
            || {
                tracing::error!(target: "epp::x", error = &err as &(dyn std::error::Error + 'static), "oops");
            },
        );
        let value: serde_json::Value = serde_json::from_str(&lines[0]).expect("valid JSON");
        assert_eq!(value["error"], "disk on fire");
        assert_eq!(value["msg"], "oops");
    }

    #[test]
    fn span_fields_are_inherited_with_dashed_names() {
        let lines = capture(
            &settings(LogEncoder::Json, TimeEncoding::Rfc3339, 2),
            || {
                let id = "abc-123";
                let outer = tracing::info_span!("request", "x-request-id" = %id, model = tracing::field::Empty);
                let _outer = outer.enter();
                outer.record("model", "llama");
                let inner = tracing::info_span!("schedule", attempt = 1);
                let _inner = inner.enter();
                tracing::info!(target: "epp::scheduling", { "picked-endpoint" = "10.0.0.7", n = 2 }, "Scheduled");
            },
        );
        assert_eq!(
            lines,
            vec![
                r#"{"level":"info","ts":"2024-03-05T06:07:08Z","logger":"scheduling","msg":"Scheduled","x-request-id":"abc-123","model":"llama","attempt":1,"picked-endpoint":"10.0.0.7","n":2}"#
            ]
        );
    }

    #[test]
    fn console_format() {
        let lines = capture(
            &settings(LogEncoder::Console, TimeEncoding::Rfc3339, 2),
            || {
                tracing::info_span!("request", "x-request-id" = "r1").in_scope(|| {
                    tracing::info!(target: "epp::extproc", n = 2, "Got request");
                });
                tracing::warn!(target: "epp::extproc", "No fields");
            },
        );
        assert_eq!(
            lines,
            vec![
                "2024-03-05T06:07:08Z\tINFO\textproc\tGot request\t{\"x-request-id\": \"r1\", \"n\": 2}",
                "2024-03-05T06:07:08Z\tWARN\textproc\tNo fields",
            ]
        );
    }

    #[test]
    fn time_encodings() {
        let cases = [
            (
                TimeEncoding::Epoch,
                "1709618828.1203",
                "1.7096188281203e+09",
            ),
            (
                TimeEncoding::Millis,
                "1709618828120.3",
                "1.7096188281203e+12",
            ),
            (
                TimeEncoding::Nanos,
                "1709618828120300000",
                "1709618828120300000",
            ),
            (
                TimeEncoding::Iso8601,
                "\"2024-03-05T06:07:08.120Z\"",
                "2024-03-05T06:07:08.120Z",
            ),
            (
                TimeEncoding::Rfc3339,
                "\"2024-03-05T06:07:08Z\"",
                "2024-03-05T06:07:08Z",
            ),
            (
                TimeEncoding::Rfc3339Nano,
                "\"2024-03-05T06:07:08.1203Z\"",
                "2024-03-05T06:07:08.1203Z",
            ),
        ];
        for (encoding, json_ts, console_ts) in cases {
            let json = capture(&settings(LogEncoder::Json, encoding, 2), || {
                tracing::info!(target: "epp::t", "m");
            });
            assert_eq!(
                json,
                vec![format!(
                    r#"{{"level":"info","ts":{json_ts},"logger":"t","msg":"m"}}"#
                )],
                "{encoding:?}"
            );
            let console = capture(&settings(LogEncoder::Console, encoding, 2), || {
                tracing::info!(target: "epp::t", "m");
            });
            assert_eq!(
                console,
                vec![format!("{console_ts}\tINFO\tt\tm")],
                "{encoding:?}"
            );
        }
    }

    #[test]
    fn rfc3339nano_without_fraction_and_real_clock_shape() {
        let mut out = String::new();
        let t = OffsetDateTime::from_unix_timestamp(1_709_618_828).expect("valid");
        encode_time(TimeEncoding::Rfc3339Nano, t, true, &mut out);
        assert_eq!(out, "2024-03-05T06:07:08Z");

        // The real clock through layer_for_writer: shape only.
        let logs = CapturedLogs::new();
        let s = settings(LogEncoder::Json, TimeEncoding::Iso8601, 2);
        let subscriber =
            Registry::default().with(layer_for_writer(&s, logs.clone()).expect("layer"));
        tracing::subscriber::with_default(subscriber, || tracing::info!("now"));
        let value: serde_json::Value =
            serde_json::from_str(logs.lines()[0].as_str()).expect("valid JSON");
        let ts = value["ts"].as_str().expect("string ts");
        assert_eq!(ts.len(), "2024-03-05T06:07:08.120Z".len(), "{ts}");
        assert_eq!(&ts[4..5], "-");
        assert_eq!(&ts[10..11], "T");
        assert_eq!(&ts[19..20], ".");
        assert!(ts.ends_with('Z'));
        assert_eq!(value["logger"], "telemetry.logging.tests");
    }

    #[test]
    fn go_float_formatting() {
        let cases = [
            (1.0, "1"),
            (123_456.0, "123456"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e300, "1.5e+300"),
            (-2.5e7, "-2.5e+07"),
        ];
        for (value, expected) in cases {
            let mut out = String::new();
            push_go_float(&mut out, value);
            assert_eq!(out, expected);
        }
        let mut out = String::new();
        push_json_float(&mut out, f64::NAN);
        assert_eq!(out, "\"NaN\"");
    }

    #[test]
    fn verbosity_filtering() {
        let emit = || {
            tracing::info!(target: "epp::v", "info");
            tracing::debug!(target: "epp::v", "debug");
            tracing::trace!(target: "epp::v", "trace");
            tracing::debug!(target: "h2::proto", "dependency debug");
        };
        let msgs = |v: i32| -> Vec<String> {
            capture(
                &settings(LogEncoder::Console, TimeEncoding::Rfc3339, v),
                emit,
            )
            .into_iter()
            .map(|l| l.rsplit('\t').next().unwrap_or_default().to_owned())
            .collect()
        };
        assert_eq!(msgs(2), vec!["info"]);
        assert_eq!(msgs(3), vec!["info", "debug"]);
        assert_eq!(msgs(4), vec!["info", "debug"]);
        assert_eq!(msgs(5), vec!["info", "debug", "trace"]);
        assert_eq!(msgs(0), vec!["info"]);
        assert!(msgs(-1).is_empty());
    }

    #[test]
    fn level_mapping() {
        assert_eq!(verbosity_filter(-3), LevelFilter::ERROR);
        assert_eq!(verbosity_filter(-1), LevelFilter::WARN);
        assert_eq!(verbosity_filter(2), LevelFilter::INFO);
        assert_eq!(verbosity_filter(4), LevelFilter::DEBUG);
        assert_eq!(verbosity_filter(9), LevelFilter::TRACE);
        let s = LogSettings {
            verbosity: 5,
            ..LogSettings::default()
        };
        assert_eq!(s.level_filter(), LevelFilter::TRACE);
    }

    #[test]
    fn directives_replace_the_filter() {
        let logs = CapturedLogs::new();
        let s = LogSettings {
            directives: Some("h2=debug,epp=warn".to_owned()),
            encoder: LogEncoder::Console,
            ..LogSettings::default()
        };
        let subscriber =
            Registry::default().with(layer_for_writer(&s, logs.clone()).expect("layer"));
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "h2::codec", "h2 debug");
            tracing::info!(target: "epp::x", "hidden");
        });
        let lines = logs.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].ends_with("\tDEBUG\th2.codec\th2 debug"),
            "{lines:?}"
        );

        let bad = LogSettings {
            directives: Some("epp=loud".to_owned()),
            ..LogSettings::default()
        };
        let err = layer_for_writer::<Registry, _>(&bad, CapturedLogs::new())
            .err()
            .expect("invalid directives");
        assert!(err.to_string().contains("RUST_LOG"), "{err}");
    }
}
