//! The `tracing` layer: span field storage and per-event rendering of zap-style lines.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;

use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::telemetry::logging::format::{
    FieldWriter, encode_time, level_lower, level_upper, logger_name, push_json_float, push_json_str,
};
use crate::telemetry::logging::{LogEncoder, TimeEncoding};

/// A `tracing` layer formatting events like controller-runtime's zap logger. Apply a
/// filter with `Layer::with_filter` (or use [`layer_for_writer`](super::layer_for_writer)).
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
    pub(super) fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
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
