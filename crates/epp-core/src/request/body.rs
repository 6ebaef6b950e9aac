//! OpenAI request bodies: the model, the prompt text for prefix matching, and the model rewrite.
//!
//! The body is parsed once, borrowing from the buffer: only `model`, `prompt`, `messages`
//! and `input` are looked at; everything else is validated as JSON and skipped. A
//! completions `prompt` and chat `messages` are decoded in that one pass, their strings
//! borrowed when they have no escapes: a 220 KB prompt is scanned once, and copied only
//! into the chat template. `input` (the rarest source) is kept raw and decoded only when
//! it is the prompt source. Bodies serde_json refuses only for lone surrogates or invalid
//! UTF-8 get a second, lenient parse (`lenient`); valid bodies never pay for it.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use chat::Messages;
use lenient::Sanitized;

/// Why a body cannot be routed. Both map to HTTP 400, with v1.0.1's messages, which say
/// which: the body is not a JSON object, or it has no string `model`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON, or JSON that is not an object. 400 `Error unmarshaling request body`.
    #[error("Error unmarshaling request body")]
    InvalidJson { detail: String },
    /// No string `model` at the top level. 400 `model not found in request body`.
    #[error("model not found in request body")]
    MissingModel,
}

/// What the EPP needs from an OpenAI-style request body; borrows from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedBody<'a> {
    /// The `model` field as sent by the client.
    pub model: String,
    /// Byte range of the `model` value (including its quotes) in the body, for rewriting.
    pub model_span: Range<usize>,
    /// The text used for prefix matching, or `None` when the body carries no prompt
    /// (embeddings of token ids, unknown APIs): such requests are routed by load alone.
    pub prompt: Option<Cow<'a, str>>,
}

/// Visitor methods that answer `$value` for the listed JSON kinds; lists and objects are
/// read to their end, so the rest of the body is still checked.
macro_rules! visit_as {
    ($value:expr; $($kind:ident),+) => { $( visit_as!(@one $kind, $value); )+ };
    (@one seq, $value:expr) => {
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<de::IgnoredAny>()?.is_some() {}
            Ok($value)
        }
    };
    (@one map, $value:expr) => {
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
            Ok($value)
        }
    };
    (@one str, $value:expr) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
    (@one unit, $value:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
    (@one bool, $value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
    (@one i64, $value:expr) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
    (@one u64, $value:expr) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
    (@one f64, $value:expr) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// Parses `body`, which must be a JSON object with a string `model`.
///
/// The prompt is, in order of preference: the chat template of `messages` (v1.0.1:
/// `<|im_start|>{role}\n{content}<|im_end|>\n` per message; arrays of content parts
/// contribute their text parts), `prompt` (a string, or an array of strings joined),
/// then `input` (a string, strings, or Responses-style messages).
///
/// Lone surrogate escapes and invalid UTF-8 in strings are routed, as Go and vLLM do:
/// they read as U+FFFD in `model` and the prompt, and the body is forwarded unchanged.
pub fn parse_body(body: &[u8]) -> Result<ParsedBody<'_>, BodyError> {
    parse_strict(body).or_else(|error| parse_lenient(body).unwrap_or(Err(error)))
}

/// The fast path: one borrowing pass of serde_json, which accepts only valid UTF-8.
fn parse_strict(body: &[u8]) -> Result<ParsedBody<'_>, BodyError> {
    let mut fields = TopLevel::default();
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    TopLevelSeed(&mut fields)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(|e| BodyError::InvalidJson {
            detail: e.to_string(),
        })?;
    let raw_model = fields.model.ok_or(BodyError::MissingModel)?;
    let (model, model_span) = read_model(body, raw_model).ok_or(BodyError::MissingModel)?;
    Ok(ParsedBody {
        model,
        model_span,
        prompt: fields.prompt_text(),
    })
}

/// After a failed strict parse: parses a copy with lone surrogates and invalid UTF-8
/// replaced by U+FFFD, and maps the model span back to `body`. `None` when the copy
/// would equal `body`, so the strict error is the answer.
fn parse_lenient(body: &[u8]) -> Option<Result<ParsedBody<'static>, BodyError>> {
    let sanitized = Sanitized::new(body)?;
    Some(
        parse_strict(sanitized.text.as_bytes()).map(|parsed| ParsedBody {
            model: parsed.model,
            model_span: sanitized.original_offset(parsed.model_span.start)
                ..sanitized.original_offset(parsed.model_span.end),
            prompt: parsed.prompt.map(|prompt| Cow::Owned(prompt.into_owned())),
        }),
    )
}

/// What could be read from the first bytes of a body whose end never arrived (Envoy's
/// BUFFERED_PARTIAL mode when the body is larger than its buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPrefix<'a> {
    /// `model` and its byte range, when its value ended before the cut.
    pub model: Option<(String, Range<usize>)>,
    /// The prompt, when its field (`messages`, `prompt` or `input`) ended before the cut.
    /// `None` when the cut falls inside it: the request is then routed by load alone.
    pub prompt: Option<Cow<'a, str>>,
}

/// Reads the top-level fields that end before `prefix` is cut off; never fails (a prefix
/// that is not JSON yields nothing). The fields are read as [`parse_body`] reads them.
pub fn parse_body_prefix(prefix: &[u8]) -> BodyPrefix<'_> {
    let mut fields = TopLevel::default();
    let mut deserializer = serde_json::Deserializer::from_slice(prefix);
    // The error is the cut itself (or bad JSON after it); what was read before it stays.
    let _ = TopLevelSeed(&mut fields).deserialize(&mut deserializer);
    BodyPrefix {
        model: fields.model.and_then(|raw| read_model(prefix, raw)),
        prompt: fields.prompt_text(),
    }
}

/// The `model` string and the byte range of its JSON value in `body`.
fn read_model(body: &[u8], raw: &RawValue) -> Option<(String, Range<usize>)> {
    let model: Cow<'_, str> = serde_json::from_str(raw.get()).ok()?;
    let start = offset_in(body, raw.get().as_bytes());
    Some((model.into_owned(), start..start + raw.get().len()))
}

/// Replaces the `model` value of `body` with `target`, leaving every other byte alone.
pub fn rewrite_model(body: &[u8], parsed: &ParsedBody<'_>, target: &str) -> Vec<u8> {
    replace_model_value(body, parsed.model_span.clone(), target)
}

/// Replaces the JSON value at `span` (the `model` value's range, as [`ParsedBody`] and
/// [`BodyPrefix`] give it) with the string `target`, leaving every other byte alone.
pub fn replace_model_value(body: &[u8], span: Range<usize>, target: &str) -> Vec<u8> {
    let quoted = serde_json::Value::String(target.to_owned()).to_string();
    let span = &span;
    let mut out = Vec::with_capacity(body.len() - span.len() + quoted.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[span.end..]);
    out
}

/// Where `inner` (a sub-slice of `outer`) starts in `outer`.
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

// === top-level fields ===

/// The fields we read; duplicates keep the last value, as Go's `json.Unmarshal` into a map.
#[derive(Default)]
struct TopLevel<'a> {
    model: Option<&'a RawValue>,
    /// Decoded at once: the completions prompt is the big field of most bodies.
    prompt: Option<TextOrParts<'a>>,
    messages: Option<Messages<'a>>,
    input: Option<&'a RawValue>,
}

impl<'a> TopLevel<'a> {
    /// The prompt by the order of preference of [`parse_body`].
    fn prompt_text(self) -> Option<Cow<'a, str>> {
        self.messages
            .and_then(Messages::into_chat_template)
            .map(Cow::Owned)
            .or_else(|| self.prompt.and_then(TextOrParts::into_text))
            .or_else(|| self.input.and_then(prompt_from_input).map(Cow::Owned))
    }
}

/// Reads the top-level object into a [`TopLevel`] the caller owns, so the fields read
/// before an error (the cut of a partial body) survive it.
struct TopLevelSeed<'s, 'a>(&'s mut TopLevel<'a>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for TopLevelSeed<'_, 'a> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for TopLevelSeed<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let fields = self.0;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let slot = match key.as_ref() {
                "model" => &mut fields.model,
                "prompt" => {
                    fields.prompt = Some(map.next_value()?);
                    continue;
                }
                "messages" => {
                    fields.messages = Some(map.next_value()?);
                    continue;
                }
                "input" => &mut fields.input,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(())
    }
}

// === prompt extraction ===

/// Embeddings and Responses `input`: text, a list of texts, or a list of messages.
fn prompt_from_input(raw: &RawValue) -> Option<String> {
    match prompt_from_input_json(raw.get()) {
        Ok(prompt) => prompt,
        // The body parsed, so only a lone surrogate escape fails this decode.
        Err(_) => prompt_from_input_json(&Sanitized::new(raw.get().as_bytes())?.text).ok()?,
    }
}

fn prompt_from_input_json(json: &str) -> Result<Option<String>, serde_json::Error> {
    if let Some(text) = serde_json::from_str::<TextOrParts<'_>>(json)?.into_text() {
        return Ok(Some(text.into_owned()));
    }
    Ok(serde_json::from_str::<Messages<'_>>(json)?.into_chat_template())
}

/// A string, a list of strings or `{type:"text", text}` parts, or anything else.
enum TextOrParts<'a> {
    Text(Cow<'a, str>),
    List(Vec<Cow<'a, str>>),
    Other,
}

impl<'a> TextOrParts<'a> {
    /// The text, borrowed when it was one unescaped string; list parts are joined.
    fn into_text(self) -> Option<Cow<'a, str>> {
        match self {
            TextOrParts::Text(text) => Some(text),
            TextOrParts::List(parts) if !parts.is_empty() => Some(Cow::Owned(parts.concat())),
            TextOrParts::List(_) | TextOrParts::Other => None,
        }
    }

    fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            TextOrParts::Text(text) => Some(Cow::Borrowed(text.as_ref())),
            TextOrParts::List(parts) if !parts.is_empty() => Some(Cow::Owned(parts.concat())),
            TextOrParts::List(_) | TextOrParts::Other => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for TextOrParts<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextOrPartsVisitor(std::marker::PhantomData))
    }
}

struct TextOrPartsVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for TextOrPartsVisitor<'a> {
    type Value = TextOrParts<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("text or a list of text parts")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(TextOrParts::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(TextOrParts::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(TextOrParts::Text(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut parts = Vec::new();
        while let Some(part) = seq.next_element::<Part<'de>>()? {
            if let Some(text) = part.0 {
                parts.push(text);
            }
        }
        Ok(TextOrParts::List(parts))
    }

    visit_as!(TextOrParts::Other; map, unit, bool, i64, u64, f64);
}

/// One element of a content list: a string, or an object whose `text` is a string
/// (`{"type":"text","text":...}`, `{"type":"input_text","text":...}`). Images, audio and
/// token ids contribute nothing.
struct Part<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Part<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match TextOrPartObject::deserialize(deserializer)? {
            TextOrPartObject::Text(text) => Ok(Part(Some(text))),
            TextOrPartObject::Object(object) => Ok(Part(object.text)),
            TextOrPartObject::Other(_) => Ok(Part(None)),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrPartObject<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Object(#[serde(borrow)] PartObject<'a>),
    Other(IgnoredAny),
}

#[derive(Deserialize)]
struct PartObject<'a> {
    #[serde(borrow, default, deserialize_with = "text_if_string")]
    text: Option<Cow<'a, str>>,
}

fn text_if_string<'de, D: de::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    match TextOrParts::deserialize(deserializer)? {
        TextOrParts::Text(text) => Ok(Some(text)),
        TextOrParts::List(_) | TextOrParts::Other => Ok(None),
    }
}

mod chat;
mod lenient;
#[cfg(test)]
mod tests;
