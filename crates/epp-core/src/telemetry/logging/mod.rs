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

mod format;
mod layer;

use std::sync::{Arc, Mutex, PoisonError};

use epp_flags::spelled_enum;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;

pub use crate::telemetry::logging::layer::ZapLayer;

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

/// The workspace's crates: their targets are shown at the full verbosity and their names
/// are stripped from logger names (see `format::logger_name`).
const OWN_CRATES: [&str; 12] = [
    "epp",
    "epp_core",
    "epp_net",
    "epp_datalayer",
    "epp_discovery",
    "epp_extproc",
    "epp_sim",
    "epp_bench",
    "epp_flags",
    "epp_engine",
    "epp_lab",
    "epp_kvevents",
];

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
mod tests;

spelled_enum!(
    /// Log line format (`-zap-encoder`).
    LogEncoder { Json = "json", Console = "console", }
);
spelled_enum!(
    /// Timestamp format (`-zap-time-encoding`).
    TimeEncoding {
        /// Seconds since the epoch, as a float.
        Epoch = "epoch",
        /// Milliseconds since the epoch.
        Millis = "millis",
        /// Nanoseconds since the epoch.
        Nanos = "nano",
        /// ISO 8601 with millisecond precision.
        Iso8601 = "iso8601",
        /// RFC 3339 with second precision.
        Rfc3339 = "rfc3339",
        /// RFC 3339 with nanosecond precision.
        Rfc3339Nano = "rfc3339nano",
    }
);
