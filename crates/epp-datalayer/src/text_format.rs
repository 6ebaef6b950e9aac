//! A filtering parser of the Prometheus text exposition format 0.0.4: reads only the samples of wanted names.
//!
//! A model server's page is 30–60 KB, scraped 20 times a second per endpoint, and the EPP
//! needs about five of its ~500 lines. So the parser decides per line, from the line's first
//! bytes, whether it names a wanted sample, skips every other line without allocating or
//! validating it, and fully parses only the wanted lines. Work is linear in the page size;
//! there is no recursion.
//!
//! What is checked, and how errors are reported:
//! - A wanted sample line must be well-formed (name, optional `{label="value",...}` with
//!   `\\`, `\"`, `\n` escapes, a float value, an optional integer timestamp in ms), else
//!   [`ParseError::MalformedSample`] with its line and column. Lines of other names are
//!   not validated: a broken unrelated metric does not cost the EPP its signals.
//! - The first non-blank line is always checked fully (as a comment or a sample line),
//!   and every non-blank line must start with `#` or a metric-name character. A page that
//!   fails these (HTML, JSON, an error text, random binary) gives
//!   [`ParseError::NotPrometheusText`], never an empty success.
//! - An empty or blank page is valid and has no samples.
//! - A trailing `\r` is accepted as part of the line end (CRLF pages).
//! - `# HELP` and `# TYPE` lines are skipped; samples are returned whatever their type
//!   (upstream V1 reads gauges only, a quirk this project does not copy).

use std::borrow::Cow;
use std::fmt;

/// The sample names a parse keeps, compiled once per mapping (not once per scrape).
#[derive(Clone)]
pub struct WantedNames {
    names: Vec<Box<str>>,
    /// Per name: its first (up to) 8 bytes as a little-endian word and the mask of the
    /// bytes used, so each line is matched against each name with one compare.
    heads: Vec<(u64, u64)>,
}

impl WantedNames {
    /// Builds the set; duplicates are dropped, order of first appearance is kept.
    pub fn new<I, S>(names: I) -> WantedNames
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = WantedNames {
            names: Vec::new(),
            heads: Vec::new(),
        };
        for name in names {
            set.insert(name.as_ref());
        }
        set
    }

    /// Adds `name` if absent and returns its index.
    pub fn insert(&mut self, name: &str) -> usize {
        if let Some(index) = self.index_of(name) {
            return index;
        }
        let len = name.len().min(8);
        let mask = if len == 8 {
            u64::MAX
        } else {
            (1u64 << (len * 8)) - 1
        };
        self.heads.push((head_word(name.as_bytes()), mask));
        self.names.push(name.into());
        self.names.len() - 1
    }

    /// Index of `name` in this set, as [`Sample::name_index`] reports it.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| &**n == name)
    }

    /// The name at `index`.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(|n| &**n)
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when no name is wanted (a parse then only checks the page's shape).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The wanted name that `rest` (a line from its first non-blank byte) starts with,
    /// followed by a delimiter: `{`, a blank, or the end of the line.
    fn match_line(&self, rest: &[u8]) -> Option<usize> {
        let head = head_word(rest);
        for (index, &(word, mask)) in self.heads.iter().enumerate() {
            if head & mask != word {
                continue;
            }
            let name = self.names[index].as_bytes();
            if rest.starts_with(name)
                && matches!(rest.get(name.len()), None | Some(b'{' | b' ' | b'\t'))
            {
                return Some(index);
            }
        }
        None
    }
}

impl fmt::Debug for WantedNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names.iter()).finish()
    }
}

/// The first up-to-8 bytes of `bytes` as a little-endian word, zero-padded.
fn head_word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let len = bytes.len().min(8);
    word[..len].copy_from_slice(&bytes[..len]);
    u64::from_le_bytes(word)
}

/// One label of a sample; the value has its escapes decoded (borrowed when it had none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label<'a> {
    /// Label name, `[a-zA-Z_][a-zA-Z0-9_]*`.
    pub name: &'a str,
    /// Decoded label value.
    pub value: Cow<'a, str>,
}

/// One sample of a wanted name, borrowing its labels from the [`Samples`] and the page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'s, 'a> {
    /// Index of the sample's name in the [`WantedNames`] given to [`parse`].
    pub name_index: usize,
    /// Labels in page order; names are unique.
    pub labels: &'s [Label<'a>],
    /// The value (may be NaN or ±Inf).
    pub value: f64,
    /// Timestamp in milliseconds since the Unix epoch, when the line has one.
    pub timestamp_ms: Option<i64>,
    /// 1-based line number in the page.
    pub line: usize,
}

impl<'s, 'a> Sample<'s, 'a> {
    /// The decoded value of label `name`.
    pub fn label(&self, name: &str) -> Option<&'s str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_ref())
    }

    /// True when every `(name, value)` pair is among the sample's labels (a subset match;
    /// values compared literally).
    pub fn has_labels(&self, required: &[(String, String)]) -> bool {
        required
            .iter()
            .all(|(name, value)| self.label(name) == Some(value.as_str()))
    }
}

/// Storage of one sample; its labels are a range of [`Samples::labels`], so a page's
/// samples use two vectors in total instead of one per sample.
#[derive(Debug, Clone)]
struct Record {
    name_index: usize,
    labels_start: usize,
    labels_end: usize,
    value: f64,
    timestamp_ms: Option<i64>,
    line: usize,
}

/// The samples of the wanted names, in page order.
#[derive(Debug, Clone, Default)]
pub struct Samples<'a> {
    records: Vec<Record>,
    labels: Vec<Label<'a>>,
}

impl<'a> Samples<'a> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the page had no sample of a wanted name.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// All samples in page order.
    pub fn iter(&self) -> impl Iterator<Item = Sample<'_, 'a>> + '_ {
        self.records.iter().map(|r| Sample {
            name_index: r.name_index,
            labels: &self.labels[r.labels_start..r.labels_end],
            value: r.value,
            timestamp_ms: r.timestamp_ms,
            line: r.line,
        })
    }

    /// The samples of the wanted name at `name_index`, in page order.
    pub fn of(&self, name_index: usize) -> impl Iterator<Item = Sample<'_, 'a>> + '_ {
        self.iter().filter(move |s| s.name_index == name_index)
    }
}

/// Why a page could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The page is not in the text format at all: its first non-blank line is not a
    /// comment or a valid sample, or a line starts with a byte no line can start with.
    #[error("not a Prometheus text page: line {line}: {problem} (column {column})")]
    NotPrometheusText {
        /// 1-based line number.
        line: usize,
        /// 1-based byte column.
        column: usize,
        /// What is wrong.
        problem: LineProblem,
    },
    /// A line of a wanted metric is malformed, so the value cannot be trusted.
    #[error("malformed sample of {metric} at line {line}, column {column}: {problem}")]
    MalformedSample {
        /// The wanted metric name the line starts with.
        metric: String,
        /// 1-based line number.
        line: usize,
        /// 1-based byte column.
        column: usize,
        /// What is wrong.
        problem: LineProblem,
    },
}

/// What is wrong with a line. Quoted text is cut to a few dozen characters, so an error
/// about a huge garbage line stays small.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    /// The line is not UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A line starts with a byte that starts no comment and no metric name.
    #[error("unexpected {} at the start of a line", describe_byte(*.0))]
    UnexpectedStart(u8),
    /// The metric name has a character outside `[a-zA-Z0-9_:]`.
    #[error("invalid metric name")]
    InvalidMetricName,
    /// A label name is missing or starts with a character outside `[a-zA-Z_]`.
    #[error("expected a label name")]
    ExpectedLabelName,
    /// A label name is not followed by `=`.
    #[error("expected '=' after label name")]
    ExpectedEquals,
    /// A label value does not start with `"`.
    #[error("expected '\"' to open the label value")]
    ExpectedQuote,
    /// The line ends inside a label value.
    #[error("unterminated label value")]
    UnterminatedLabelValue,
    /// A backslash in a label value is followed by something other than `\`, `"` or `n`.
    #[error("invalid escape sequence in label value")]
    InvalidEscape,
    /// A label is followed by something other than `,` or `}`.
    #[error("expected ',' or '}}' after a label")]
    ExpectedCommaOrBrace,
    /// The same label name twice in one sample.
    #[error("duplicate label {0:?}")]
    DuplicateLabel(String),
    /// Nothing after the name and labels.
    #[error("missing value")]
    MissingValue,
    /// The value is not a float (`1`, `-2.5e3`, `NaN`, `+Inf`, `-Inf`).
    #[error("invalid value {0:?}")]
    InvalidValue(String),
    /// The timestamp is not an integer number of milliseconds.
    #[error("invalid timestamp {0:?}")]
    InvalidTimestamp(String),
    /// Text after the timestamp.
    #[error("unexpected text after the timestamp: {0:?}")]
    TrailingText(String),
}

/// Shows a byte as a character when printable ASCII, else in hex.
fn describe_byte(byte: u8) -> String {
    if byte.is_ascii_graphic() {
        format!("character {:?}", char::from(byte))
    } else {
        format!("byte 0x{byte:02x}")
    }
}

/// At most 40 characters of `text`, for error messages.
fn snippet(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Parses `page`, keeping the samples whose name is in `wanted`.
///
/// See the module documentation for what is validated. Time is linear in the page
/// length; memory is proportional to the wanted samples only.
pub fn parse<'a>(page: &'a [u8], wanted: &WantedNames) -> Result<Samples<'a>, ParseError> {
    let mut samples = Samples::default();
    let mut seen_content = false;
    let mut line_no = 0usize;
    let mut pos = 0usize;
    while pos < page.len() {
        line_no += 1;
        let rest = &page[pos..];
        let len = find_newline(rest).unwrap_or(rest.len());
        let mut line = &rest[..len];
        pos += len + 1;
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        let indent = line
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(line.len());
        let Some(&first) = line.get(indent) else {
            continue; // blank line
        };
        let first_content = !seen_content;
        seen_content = true;
        let not_text = |column: usize, problem: LineProblem| ParseError::NotPrometheusText {
            line: line_no,
            column,
            problem,
        };
        if first == b'#' {
            // Comments are skipped, but a first line that is not even text means the
            // body is not a metrics page.
            if first_content && let Err(e) = std::str::from_utf8(line) {
                return Err(not_text(e.valid_up_to() + 1, LineProblem::InvalidUtf8));
            }
            continue;
        }
        if !is_name_start(first) {
            return Err(not_text(indent + 1, LineProblem::UnexpectedStart(first)));
        }
        let name_index = wanted.match_line(&line[indent..]);
        if name_index.is_none() && !first_content {
            continue; // the common case: a line nobody asked for
        }
        let text = std::str::from_utf8(line).map_err(|e| {
            let (column, problem) = (e.valid_up_to() + 1, LineProblem::InvalidUtf8);
            match name_index {
                Some(index) => malformed(wanted, index, line_no, column, problem),
                None => not_text(column, problem),
            }
        })?;
        let labels_start = samples.labels.len();
        let parsed = parse_sample(text, indent, &mut samples.labels);
        match (parsed, name_index) {
            (Ok((value, timestamp_ms)), Some(name_index)) => samples.records.push(Record {
                name_index,
                labels_start,
                labels_end: samples.labels.len(),
                value,
                timestamp_ms,
                line: line_no,
            }),
            // The first line of an unwanted name was only checked.
            (Ok(_), None) => samples.labels.truncate(labels_start),
            (Err((at, problem)), Some(index)) => {
                return Err(malformed(wanted, index, line_no, at + 1, problem));
            }
            (Err((at, problem)), None) => return Err(not_text(at + 1, problem)),
        }
    }
    Ok(samples)
}

fn malformed(
    wanted: &WantedNames,
    index: usize,
    line: usize,
    column: usize,
    problem: LineProblem,
) -> ParseError {
    ParseError::MalformedSample {
        metric: wanted.name(index).unwrap_or_default().to_owned(),
        line,
        column,
        problem,
    }
}

/// Offset of the first `\n` in `hay`, eight bytes at a time (the page scan is the parser's
/// main cost, since every line must be found even when skipped).
fn find_newline(hay: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let (words, tail) = hay.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let x = u64::from_le_bytes(*word) ^ NEWLINES;
        // Classic "has zero byte": the lowest set high bit marks the first zero byte
        // (higher ones may be false positives, hence trailing_zeros).
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(i * 8 + (zeros.trailing_zeros() / 8) as usize);
        }
    }
    tail.iter()
        .position(|&b| b == b'\n')
        .map(|p| words.len() * 8 + p)
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A position in a line and what is wrong there (0-based byte offset).
type LineError = (usize, LineProblem);

/// Parses the sample line `line` whose metric name starts at `start`; pushes its labels
/// and returns the value and timestamp.
fn parse_sample<'a>(
    line: &'a str,
    start: usize,
    labels: &mut Vec<Label<'a>>,
) -> Result<(f64, Option<i64>), LineError> {
    let bytes = line.as_bytes();
    let mut pos = start;
    while pos < bytes.len() && is_name_byte(bytes[pos]) {
        pos += 1;
    }
    if pos < bytes.len() && !is_blank(bytes[pos]) && bytes[pos] != b'{' {
        return Err((pos, LineProblem::InvalidMetricName));
    }
    pos = skip_blanks(bytes, pos);
    if bytes.get(pos) == Some(&b'{') {
        let first_label = labels.len();
        pos = parse_labels(line, pos + 1, labels)?;
        check_unique(&labels[first_label..])?;
        pos = skip_blanks(bytes, pos);
    }
    let (value_text, value_at) = token(line, pos);
    if value_text.is_empty() {
        return Err((pos, LineProblem::MissingValue));
    }
    let value = parse_value(value_text)
        .ok_or_else(|| (value_at, LineProblem::InvalidValue(snippet(value_text))))?;
    pos = skip_blanks(bytes, value_at + value_text.len());
    let (ts_text, ts_at) = token(line, pos);
    if ts_text.is_empty() {
        return Ok((value, None));
    }
    let timestamp = ts_text
        .parse::<i64>()
        .map_err(|_| (ts_at, LineProblem::InvalidTimestamp(snippet(ts_text))))?;
    pos = skip_blanks(bytes, ts_at + ts_text.len());
    if pos < bytes.len() {
        return Err((pos, LineProblem::TrailingText(snippet(&line[pos..]))));
    }
    Ok((value, Some(timestamp)))
}

fn skip_blanks(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && is_blank(bytes[pos]) {
        pos += 1;
    }
    pos
}

/// The run of non-blank text at `pos` and where it starts.
fn token(line: &str, pos: usize) -> (&str, usize) {
    let rest = &line[pos..];
    let end = rest.find([' ', '\t']).unwrap_or(rest.len());
    (&rest[..end], pos)
}

/// Go's `ParseFloat` spellings that matter here: decimals, exponents, `NaN`, `Inf`,
/// `+Inf`, `-Inf` (any case, as Rust's parser also accepts).
fn parse_value(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

/// Parses `name="value", ...}` from `pos` (just after `{`); returns the position after `}`.
/// A trailing comma before `}` is allowed, as in Prometheus' own parser.
fn parse_labels<'a>(
    line: &'a str,
    mut pos: usize,
    labels: &mut Vec<Label<'a>>,
) -> Result<usize, LineError> {
    let bytes = line.as_bytes();
    loop {
        pos = skip_blanks(bytes, pos);
        match bytes.get(pos) {
            Some(b'}') => return Ok(pos + 1),
            Some(&b) if b.is_ascii_alphabetic() || b == b'_' => {}
            _ => return Err((pos, LineProblem::ExpectedLabelName)),
        }
        let name_start = pos;
        while pos < bytes.len() && (bytes[pos].is_ascii_alphanumeric() || bytes[pos] == b'_') {
            pos += 1;
        }
        let name = &line[name_start..pos];
        pos = skip_blanks(bytes, pos);
        if bytes.get(pos) != Some(&b'=') {
            return Err((pos, LineProblem::ExpectedEquals));
        }
        pos = skip_blanks(bytes, pos + 1);
        if bytes.get(pos) != Some(&b'"') {
            return Err((pos, LineProblem::ExpectedQuote));
        }
        let (value, after) = parse_label_value(line, pos + 1)?;
        labels.push(Label { name, value });
        pos = skip_blanks(bytes, after);
        match bytes.get(pos) {
            Some(b',') => pos += 1,
            Some(b'}') => return Ok(pos + 1),
            _ => return Err((pos, LineProblem::ExpectedCommaOrBrace)),
        }
    }
}

/// Reads a label value from `start` (just after the opening quote) to the closing quote;
/// returns the decoded value and the position after the quote. Borrows when there is no
/// escape, so the common case allocates nothing.
fn parse_label_value(line: &str, start: usize) -> Result<(Cow<'_, str>, usize), LineError> {
    let bytes = line.as_bytes();
    let special = bytes[start..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|p| start + p)
        .ok_or((line.len(), LineProblem::UnterminatedLabelValue))?;
    if bytes[special] == b'"' {
        return Ok((Cow::Borrowed(&line[start..special]), special + 1));
    }
    let mut decoded = String::with_capacity(special - start + 16);
    decoded.push_str(&line[start..special]);
    let mut pos = special;
    let mut chunk_start = pos;
    while pos < bytes.len() {
        match bytes[pos] {
            b'"' => {
                decoded.push_str(&line[chunk_start..pos]);
                return Ok((Cow::Owned(decoded), pos + 1));
            }
            b'\\' => {
                decoded.push_str(&line[chunk_start..pos]);
                let unescaped = match bytes.get(pos + 1) {
                    Some(b'\\') => '\\',
                    Some(b'"') => '"',
                    Some(b'n') => '\n',
                    Some(_) => return Err((pos, LineProblem::InvalidEscape)),
                    None => return Err((line.len(), LineProblem::UnterminatedLabelValue)),
                };
                decoded.push(unescaped);
                pos += 2;
                chunk_start = pos;
            }
            _ => pos += 1,
        }
    }
    Err((line.len(), LineProblem::UnterminatedLabelValue))
}

/// Rejects a repeated label name: pairwise for the usual handful of labels, by sorting
/// beyond that so a crafted line with thousands of labels stays O(n log n).
fn check_unique(labels: &[Label<'_>]) -> Result<(), LineError> {
    let duplicate = if labels.len() <= 16 {
        labels
            .iter()
            .enumerate()
            .find(|(i, l)| labels[..*i].iter().any(|o| o.name == l.name))
            .map(|(_, l)| l.name)
    } else {
        let mut names: Vec<&str> = labels.iter().map(|l| l.name).collect();
        names.sort_unstable();
        names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
    };
    match duplicate {
        // The column of a label is not kept; point at the line start.
        Some(name) => Err((0, LineProblem::DuplicateLabel(snippet(name)))),
        None => Ok(()),
    }
}

#[cfg(test)]
#[path = "text_format/tests.rs"]
mod tests;
