//! zap's JSON and console encodings: field lists, levels, logger names, numbers and time.

use std::fmt::Write as _;

use time::OffsetDateTime;
use tracing::Level;

use crate::telemetry::go_float::write_go_float;
use crate::telemetry::logging::OWN_CRATES;
use crate::telemetry::logging::{LogEncoder, TimeEncoding};

/// Appends `,"k":v` (JSON) or `{"k": v, ...}` (console) field lists.
pub(super) struct FieldWriter {
    encoder: LogEncoder,
    count: usize,
}

impl FieldWriter {
    pub(super) fn new(encoder: LogEncoder) -> Self {
        Self { encoder, count: 0 }
    }

    pub(super) fn write(&mut self, out: &mut String, name: &str, value: &str) {
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

    pub(super) fn finish(self, out: &mut String) {
        match self.encoder {
            LogEncoder::Json => out.push('}'),
            LogEncoder::Console if self.count > 0 => out.push('}'),
            LogEncoder::Console => {}
        }
    }
}

pub(super) fn level_lower(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

pub(super) fn level_upper(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// The logger name for a target: an own crate replaced by its old module (see
/// [`OWN_CRATES`]), `::` → `.`; the root of a crate without one is `epp`.
pub(super) fn logger_name(target: &str) -> String {
    for (krate, module) in OWN_CRATES {
        let Some(rest) = target.strip_prefix(krate) else {
            continue;
        };
        let path = match (module, rest.strip_prefix("::")) {
            ("", Some(path)) => path.to_owned(),
            (module, Some(path)) => format!("{module}::{path}"),
            ("", None) if rest.is_empty() => "epp".to_owned(),
            (module, None) if rest.is_empty() => module.to_owned(),
            _ => continue,
        };
        return path.replace("::", ".");
    }

    target.replace("::", ".")
}

/// Appends `s` as a JSON string, escaping like zap (`"`, `\`, control characters).
pub(super) fn push_json_str(out: &mut String, s: &str) {
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
pub(super) fn push_json_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("\"NaN\"");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "\"+Inf\"" } else { "\"-Inf\"" });
    } else {
        let _ = write!(out, "{value}");
    }
}

/// Appends the timestamp per `encoding`; `console` selects Go `fmt` number formatting
/// and unquoted strings.
pub(super) fn encode_time(
    encoding: TimeEncoding,
    t: OffsetDateTime,
    console: bool,
    out: &mut String,
) {
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
                write_go_float(out, value);
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
