//! Logging options: `-v` and `-zap-*` as given, their value types and the effective settings.

use epp_flags::goflag::{Show, spelled_enum};

pub use epp_core::telemetry::logging::{LogEncoder, TimeEncoding};

/// Logging flags (`-v`, `-zap-*`) as given, plus the effective settings derived from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// `-v`: verbosity, >= 0 (default 2).
    pub v: i32,
    /// `-zap-devel`: development defaults (console encoder, stacktraces from warn).
    pub development: bool,
    /// `-zap-encoder` as given.
    pub encoder_flag: Option<LogEncoder>,
    /// `-zap-log-level` as given; overrides `-v` when set.
    pub level_flag: Option<ZapLevel>,
    /// `-zap-stacktrace-level` as given.
    pub stacktrace_flag: Option<StacktraceLevel>,
    /// `-zap-time-encoding` as given.
    pub time_encoding_flag: Option<TimeEncoding>,
    /// Effective verbosity: `V(n)` logs are emitted iff `n <= verbosity`; 0 = info, -2 = errors only.
    pub verbosity: i32,
    /// Effective encoder: the flag, else console in development mode and json otherwise.
    pub encoder: LogEncoder,
    /// Effective stacktrace level: the flag, else warn in development mode and error otherwise.
    pub stacktrace_level: StacktraceLevel,
    /// Effective time encoding: the flag, else RFC 3339.
    pub time_encoding: TimeEncoding,
}

impl LogOptions {
    /// Recomputes the effective fields from the flag fields.
    pub fn resolve(&mut self) {
        self.verbosity = self.level_flag.map_or(self.v, ZapLevel::verbosity);
        let (encoder, stacktrace) = if self.development {
            (LogEncoder::Console, StacktraceLevel::Warn)
        } else {
            (LogEncoder::Json, StacktraceLevel::Error)
        };
        self.encoder = self.encoder_flag.unwrap_or(encoder);
        self.stacktrace_level = self.stacktrace_flag.unwrap_or(stacktrace);
        self.time_encoding = self.time_encoding_flag.unwrap_or(TimeEncoding::Rfc3339);
    }
}

impl Default for LogOptions {
    fn default() -> Self {
        let mut log = LogOptions {
            v: 2,
            development: true,
            encoder_flag: None,
            level_flag: None,
            stacktrace_flag: None,
            time_encoding_flag: None,
            verbosity: 0,
            encoder: LogEncoder::Console,
            stacktrace_level: StacktraceLevel::Warn,
            time_encoding: TimeEncoding::Rfc3339,
        };
        log.resolve();
        log
    }
}

spelled_enum!(
    /// Minimum level that gets a stacktrace (`-zap-stacktrace-level`; `warn` is only a default).
    StacktraceLevel { Info = "info", Warn = "warn", Error = "error", Panic = "panic", }
);
/// A `-zap-log-level` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZapLevel {
    /// `debug`: verbosity 1.
    Debug,
    /// `info`: verbosity 0.
    Info,
    /// `error`: errors only (verbosity -2).
    Error,
    /// `panic`: nearly silent (verbosity -4).
    Panic,
    /// An integer 1..=127: custom debug level N, i.e. verbosity N.
    Verbosity(u8),
}

impl ZapLevel {
    /// The equivalent `-v` verbosity: the negated zap level.
    pub fn verbosity(self) -> i32 {
        match self {
            ZapLevel::Debug => 1,
            ZapLevel::Info => 0,
            ZapLevel::Error => -2,
            ZapLevel::Panic => -4,
            ZapLevel::Verbosity(n) => i32::from(n),
        }
    }
}

impl Show for ZapLevel {
    fn show(&self) -> String {
        match self {
            ZapLevel::Debug => "debug".to_owned(),
            ZapLevel::Info => "info".to_owned(),
            ZapLevel::Error => "error".to_owned(),
            ZapLevel::Panic => "panic".to_owned(),
            ZapLevel::Verbosity(n) => n.to_string(),
        }
    }
}
