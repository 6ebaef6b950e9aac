//! Text that serde_json refuses but model servers accept: invalid UTF-8 and lone surrogates.
//!
//! serde_json decodes strings only to valid UTF-8, so a lone surrogate escape (`"\ud83d"`,
//! a JavaScript client cutting an emoji in half) or a raw invalid byte inside a decoded
//! field fails the whole body. Go's `encoding/json` turns both into U+FFFD and Python's
//! `json` keeps the surrogate, so both route such text. This module makes a copy of the
//! body in which both become U+FFFD, for a second, strict parse. It runs only after the
//! strict parse failed: valid bodies never reach it.

/// A body with every invalid UTF-8 sequence replaced by U+FFFD and every lone surrogate
/// escape by `\ufffd`, plus the map from offsets in the copy back to the original.
pub(super) struct Sanitized {
    pub(super) text: String,
    /// `(end in text, end in the original)` of each replaced invalid UTF-8 sequence, in
    /// order. Surrogate escapes keep their length (`\ud83d` → `\ufffd`) and need no entry.
    shifts: Vec<(usize, usize)>,
}

impl Sanitized {
    /// The sanitized copy, or `None` when `body` has nothing to replace (the strict
    /// parser's error then stands). Invalid UTF-8 becomes one U+FFFD per maximal invalid
    /// sequence, as `String::from_utf8_lossy` does; the result is the same for the same
    /// bytes, so prefix hashing stays deterministic.
    pub(super) fn new(body: &[u8]) -> Option<Self> {
        let mut text = String::with_capacity(body.len());
        let mut shifts = Vec::new();
        let mut original_end = 0;
        for chunk in body.utf8_chunks() {
            text.push_str(chunk.valid());
            original_end += chunk.valid().len();
            if !chunk.invalid().is_empty() {
                text.push(char::REPLACEMENT_CHARACTER);
                original_end += chunk.invalid().len();
                shifts.push((text.len(), original_end));
            }
        }
        let mut bytes = text.into_bytes();
        let replaced_surrogates = replace_lone_surrogates(&mut bytes);
        if shifts.is_empty() && !replaced_surrogates {
            return None;
        }
        // Only ASCII bytes were overwritten with ASCII, so this cannot fail.
        let text = String::from_utf8(bytes).ok()?;
        Some(Sanitized { text, shifts })
    }

    /// The offset in the original body of `offset` in `text`, for an offset that is not
    /// inside a replacement (the quotes around a JSON string never are).
    pub(super) fn original_offset(&self, offset: usize) -> usize {
        let before = self.shifts.partition_point(|&(end, _)| end <= offset);
        match before.checked_sub(1).and_then(|last| self.shifts.get(last)) {
            Some(&(end, original_end)) => offset - end + original_end,
            None => offset,
        }
    }
}

/// Overwrites each `\uD800`–`\uDFFF` escape that is not half of a high-low pair with
/// `\ufffd`, inside JSON strings only. Returns whether any was replaced.
fn replace_lone_surrogates(json: &mut [u8]) -> bool {
    const REPLACEMENT: &[u8; 6] = br"\ufffd";
    let mut replaced = false;
    let mut in_string = false;
    let mut at = 0;
    while let Some(&byte) = json.get(at) {
        match byte {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                let step = match escaped_unit(json, at) {
                    Some(0xD800..=0xDBFF)
                        if matches!(escaped_unit(json, at + 6), Some(0xDC00..=0xDFFF)) =>
                    {
                        12
                    }
                    Some(0xD800..=0xDFFF) => {
                        if let Some(escape) = json.get_mut(at..at + 6) {
                            escape.copy_from_slice(REPLACEMENT);
                            replaced = true;
                        }
                        6
                    }
                    // Any other escape: skip the backslash and the escaped byte, so `\"`
                    // does not end the string and `\\u` is not an escape.
                    _ => 2,
                };
                at += step;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    replaced
}

/// The UTF-16 unit of the `\uXXXX` escape starting at `at`, if there is one.
fn escaped_unit(json: &[u8], at: usize) -> Option<u16> {
    let hex = json.get(at..at + 6)?.strip_prefix(br"\u")?;
    let hex = std::str::from_utf8(hex).ok()?;
    u16::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sanitized(body: &[u8]) -> Option<String> {
        Sanitized::new(body).map(|s| s.text)
    }

    #[test]
    fn lone_surrogates_become_replacement_escapes() {
        let cases: [(&[u8], Option<&str>); 9] = [
            (br#"{"a":"\ud83d"}"#, Some(r#"{"a":"\ufffd"}"#)),
            (br#"{"a":"x\uDE00y"}"#, Some(r#"{"a":"x\ufffdy"}"#)),
            // A high surrogate followed by another high one: only the first is lone.
            (
                br#"{"a":"\ud83d\ud83d\ude00"}"#,
                Some(r#"{"a":"\ufffd\ud83d\ude00"}"#),
            ),
            (br#"{"a":"\ud83d\n"}"#, Some(r#"{"a":"\ufffd\n"}"#)),
            // A valid pair, other escapes, an escaped backslash before `ud83d`: untouched.
            (br#"{"a":"\ud83d\ude00"}"#, None),
            (br#"{"a":"\u00e9\"\\"}"#, None),
            (br#"{"a":"\\ud83d"}"#, None),
            // Not JSON at all: nothing to replace, the strict error stands.
            (b"no healthy upstream", None),
            // A truncated escape is left for the strict parser to reject.
            (br#"{"a":"\ud8"}"#, None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                sanitized(body).as_deref(),
                expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let cases: [(&[u8], &str); 3] = [
            (b"{\"a\":\"\xff\"}", "{\"a\":\"\u{FFFD}\"}"),
            (b"{\"a\":\"x\xe2\x82y\"}", "{\"a\":\"x\u{FFFD}y\"}"),
            (b"{\"a\":\"\xc0\xc1\"}", "{\"a\":\"\u{FFFD}\u{FFFD}\"}"),
        ];
        for (body, expected) in cases {
            assert_eq!(sanitized(body).as_deref(), Some(expected));
        }
    }

    #[test]
    fn offsets_map_back_across_replacements() {
        // `\xff` (1 byte) and `\xe2\x82` (2 bytes) each become 3 bytes.
        let body = b"{\"p\":\"\xff\",\"q\":\"\xe2\x82\",\"model\":\"m\"}";
        let sanitized = Sanitized::new(body).expect("has invalid bytes");
        let in_text = sanitized.text.find("\"m\"").expect("model value");
        let start = sanitized.original_offset(in_text);
        let end = sanitized.original_offset(in_text + 3);
        assert_eq!(&body[start..end], b"\"m\"");
        assert_eq!(sanitized.original_offset(0), 0);
    }
}
