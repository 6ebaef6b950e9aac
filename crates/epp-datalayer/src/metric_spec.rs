//! Metric-spec flag values (`name` or `name{label=value,...}`), parsed like upstream `stringToMetricSpec`.

use std::fmt;

/// A Prometheus series selector: metric family name plus labels that must all match (a subset match).
///
/// Label values are compared literally: `name{a="x"}` requires the value `"x"` with the quotes,
/// exactly as upstream does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    /// Metric family name, matching `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    pub name: String,
    /// Required `(label, value)` pairs in the order written; label names are unique.
    pub labels: Vec<(String, String)>,
}

/// Why a metric spec string was rejected. Every message quotes the whole spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricSpecError {
    /// Unpaired or misordered braces, or an empty `{}`.
    #[error(
        "invalid metric spec {spec:?}: missing or malformed label block (expected name or name{{label=value,...}})"
    )]
    MalformedLabels {
        /// The trimmed spec.
        spec: String,
    },
    /// Text after the closing `}`.
    #[error("invalid metric spec {spec:?}: characters after the label block; '}}' must come last")]
    TrailingCharacters {
        /// The trimmed spec.
        spec: String,
    },
    /// A comma-separated item that is not exactly `label=value`.
    #[error("invalid label pair {pair:?} in metric spec {spec:?}: expected label=value")]
    InvalidPair {
        /// The offending item.
        pair: String,
        /// The trimmed spec.
        spec: String,
    },
    /// `=value` or `label=`.
    #[error("empty label name or value in pair {pair:?} in metric spec {spec:?}")]
    EmptyLabelPart {
        /// The offending item.
        pair: String,
        /// The trimmed spec.
        spec: String,
    },
    /// Nothing before `{`.
    #[error("empty metric name in spec {spec:?}")]
    EmptyName {
        /// The trimmed spec.
        spec: String,
    },
    /// A name that no Prometheus exporter can produce.
    #[error(
        "invalid metric name {name:?} in spec {spec:?}: it must match [a-zA-Z_:][a-zA-Z0-9_:]*"
    )]
    InvalidName {
        /// The metric name.
        name: String,
        /// The trimmed spec.
        spec: String,
    },
    /// A label name that no Prometheus exporter can produce.
    #[error("invalid label name {label:?} in spec {spec:?}: it must match [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidLabelName {
        /// The label name.
        label: String,
        /// The trimmed spec.
        spec: String,
    },
    /// The same label twice (upstream silently kept the last one).
    #[error("duplicate label {label:?} in metric spec {spec:?}: each label may appear once")]
    DuplicateLabel {
        /// The label name.
        label: String,
        /// The trimmed spec.
        spec: String,
    },
}

impl MetricSpec {
    /// Parses `name` or `name{l1=v1,l2=v2}`; blank text gives `None` (the metric is not scraped).
    pub fn parse(text: &str) -> Result<Option<MetricSpec>, MetricSpecError> {
        let spec = text.trim();
        if spec.is_empty() {
            return Ok(None);
        }
        // Like upstream, only the first '{' and the first '}' are considered.
        let (name, labels) = match (spec.find('{'), spec.find('}')) {
            (None, None) => (spec, Vec::new()),
            (Some(start), Some(end)) if end > start + 1 => {
                let labels = parse_labels(&spec[start + 1..end], spec)?;
                if end != spec.len() - 1 {
                    return Err(MetricSpecError::TrailingCharacters { spec: spec.into() });
                }
                (spec[..start].trim(), labels)
            }
            _ => return Err(MetricSpecError::MalformedLabels { spec: spec.into() }),
        };
        if name.is_empty() {
            return Err(MetricSpecError::EmptyName { spec: spec.into() });
        }
        if !is_valid_metric_name(name) {
            return Err(MetricSpecError::InvalidName {
                name: name.into(),
                spec: spec.into(),
            });
        }
        Ok(Some(MetricSpec {
            name: name.into(),
            labels,
        }))
    }
}

/// Parses the text between the braces: `l1=v1, l2=v2`.
fn parse_labels(block: &str, spec: &str) -> Result<Vec<(String, String)>, MetricSpecError> {
    let mut labels: Vec<(String, String)> = Vec::new();
    for pair in block.split(',').map(str::trim) {
        let pair_error = || MetricSpecError::InvalidPair {
            pair: pair.into(),
            spec: spec.into(),
        };
        let (label, value) = pair.split_once('=').ok_or_else(pair_error)?;
        if value.contains('=') {
            return Err(pair_error());
        }
        let (label, value) = (label.trim(), value.trim());
        if label.is_empty() || value.is_empty() {
            return Err(MetricSpecError::EmptyLabelPart {
                pair: pair.into(),
                spec: spec.into(),
            });
        }
        if !is_valid_label_name(label) {
            return Err(MetricSpecError::InvalidLabelName {
                label: label.into(),
                spec: spec.into(),
            });
        }
        if labels.iter().any(|(existing, _)| existing == label) {
            return Err(MetricSpecError::DuplicateLabel {
                label: label.into(),
                spec: spec.into(),
            });
        }
        labels.push((label.into(), value.into()));
    }
    Ok(labels)
}

/// Whether `name` matches the Prometheus metric name syntax `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` matches the Prometheus label name syntax `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Display for MetricSpec {
    /// Prints `name` or `name{a=b,c=d}`, which parses back to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.labels.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, (label, value)) in self.labels.iter().enumerate() {
            let separator = if i == 0 { "" } else { "," };
            write!(f, "{separator}{label}={value}")?;
        }
        f.write_str("}")
    }
}

/// How `epp --help` prints a default.
impl epp_flags::goflag::Show for MetricSpec {
    fn show(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, labels: &[(&str, &str)]) -> Option<MetricSpec> {
        Some(MetricSpec {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(l, v)| ((*l).into(), (*v).into()))
                .collect(),
        })
    }

    #[test]
    fn accepted_specs() {
        let cases = [
            ("", None),
            ("   ", None),
            (
                "vllm:num_requests_waiting",
                spec("vllm:num_requests_waiting", &[]),
            ),
            (
                "  metric_name{label1=value1}  ",
                spec("metric_name", &[("label1", "value1")]),
            ),
            (
                "metric{ label1 = value1 , label2=value2 }",
                spec("metric", &[("label1", "value1"), ("label2", "value2")]),
            ),
            ("metric {a=b}", spec("metric", &[("a", "b")])),
            // Quotes are kept literally, as upstream does.
            ("m{a=\"x\"}", spec("m", &[("a", "\"x\"")])),
            ("m{a=b c}", spec("m", &[("a", "b c")])),
            ("_m:x9{_l=1}", spec("_m:x9", &[("_l", "1")])),
        ];
        for (input, want) in cases {
            assert_eq!(MetricSpec::parse(input), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn rejected_specs() {
        use MetricSpecError as E;
        let malformed = |s: &str| E::MalformedLabels { spec: s.into() };
        let pair = |p: &str, s: &str| E::InvalidPair {
            pair: p.into(),
            spec: s.into(),
        };
        let empty_part = |p: &str, s: &str| E::EmptyLabelPart {
            pair: p.into(),
            spec: s.into(),
        };
        let cases = [
            ("metric{}", malformed("metric{}")),
            ("metric{label1}", pair("label1", "metric{label1}")),
            ("metric{label1=value1", malformed("metric{label1=value1")),
            ("metric}{", malformed("metric}{")),
            ("metriclabel1=value1}", malformed("metriclabel1=value1}")),
            (
                "metric{label1=value1}extra",
                E::TrailingCharacters {
                    spec: "metric{label1=value1}extra".into(),
                },
            ),
            (
                "metric{a=b}}",
                E::TrailingCharacters {
                    spec: "metric{a=b}}".into(),
                },
            ),
            ("metric{=value}", empty_part("=value", "metric{=value}")),
            ("metric{label=}", empty_part("label=", "metric{label=}")),
            ("metric{a=b,}", pair("", "metric{a=b,}")),
            ("metric{a=b=c}", pair("a=b=c", "metric{a=b=c}")),
            (
                "{a=b}",
                E::EmptyName {
                    spec: "{a=b}".into(),
                },
            ),
            (
                " {a=b}",
                E::EmptyName {
                    spec: "{a=b}".into(),
                },
            ),
            (
                "9metric",
                E::InvalidName {
                    name: "9metric".into(),
                    spec: "9metric".into(),
                },
            ),
            (
                "my-metric{a=b}",
                E::InvalidName {
                    name: "my-metric".into(),
                    spec: "my-metric{a=b}".into(),
                },
            ),
            (
                "m{a:b=c}",
                E::InvalidLabelName {
                    label: "a:b".into(),
                    spec: "m{a:b=c}".into(),
                },
            ),
            (
                "m{a=1,b=2,a=3}",
                E::DuplicateLabel {
                    label: "a".into(),
                    spec: "m{a=1,b=2,a=3}".into(),
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(MetricSpec::parse(input), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["vllm:lora_requests_info", "m{a=b}", "m{a=b,c=\"d\"}"] {
            let parsed = MetricSpec::parse(text).unwrap().unwrap();
            assert_eq!(parsed.to_string(), text);
            assert_eq!(
                MetricSpec::parse(&parsed.to_string()).unwrap(),
                Some(parsed)
            );
        }
    }

    #[test]
    fn error_messages_quote_the_spec() {
        let err = MetricSpec::parse("metric{label1}").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid label pair \"label1\" in metric spec \"metric{label1}\": expected label=value"
        );
        let err = MetricSpec::parse("metric{}").unwrap_err().to_string();
        assert!(
            err.contains("\"metric{}\"") && err.contains("name{label=value,...}"),
            "{err}"
        );
    }
}
