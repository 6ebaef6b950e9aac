//! Tests of the filtering text-format parser: accepted syntax, errors, hostile input, and agreement with prometheus-parse.

use std::collections::HashMap;

use super::*;

const VLLM_PAGE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/vllm-metrics.txt"
));

/// A sample as plain data: name, labels, value, timestamp.
type Row = (String, Vec<(String, String)>, f64, Option<i64>);

fn rows(page: &[u8], wanted: &[&str]) -> Result<Vec<Row>, ParseError> {
    let names = WantedNames::new(wanted);
    let samples = parse(page, &names)?;
    Ok(samples
        .iter()
        .map(|s| {
            let labels = s
                .labels
                .iter()
                .map(|l| (l.name.to_owned(), l.value.to_string()))
                .collect();
            let name = names.name(s.name_index).unwrap_or_default().to_owned();
            (name, labels, s.value, s.timestamp_ms)
        })
        .collect())
}

fn row(name: &str, labels: &[(&str, &str)], value: f64, ts: Option<i64>) -> Row {
    let labels = labels
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    (name.to_owned(), labels, value, ts)
}

/// Rows equal, with NaN equal to NaN.
fn same(a: &[Row], b: &[Row]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.0 == y.0 && x.1 == y.1 && x.3 == y.3 && (x.2 == y.2 || (x.2.is_nan() && y.2.is_nan()))
        })
}

#[test]
fn reads_wanted_samples() {
    // (what, page, wanted names, expected rows)
    type Case<'a> = (&'a str, &'a [u8], &'a [&'a str], Vec<Row>);
    let cases: Vec<Case> = vec![
        ("plain", b"m 1\n", &["m"], vec![row("m", &[], 1.0, None)]),
        (
            "labels and timestamp",
            b"m{a=\"x\",b=\"y\"} 2.5 1700000000000\n",
            &["m"],
            vec![row("m", &[("a", "x"), ("b", "y")], 2.5, Some(1_700_000_000_000))],
        ),
        (
            "escapes decoded",
            r#"m{a="x\\y",b="say \"hi\"",c="two\nlines",d="é,=}{"} 3"#.as_bytes(),
            &["m"],
            vec![row(
                "m",
                &[("a", "x\\y"), ("b", "say \"hi\""), ("c", "two\nlines"), ("d", "é,=}{")],
                3.0,
                None,
            )],
        ),
        (
            "blanks, trailing comma, empty braces, CRLF, no final newline",
            b"  m { a = \"1\" , }\t4 -5\r\nm{} 5\r\n\n\t\nm{a=\"\"}6",
            &["m"],
            vec![
                row("m", &[("a", "1")], 4.0, Some(-5)),
                row("m", &[], 5.0, None),
                row("m", &[("a", "")], 6.0, None),
            ],
        ),
        (
            "special values",
            b"m{k=\"a\"} NaN\nm{k=\"b\"} +Inf\nm{k=\"c\"} -Inf\nm{k=\"d\"} Inf\nm{k=\"e\"} -2.5E-2\nm{k=\"f\"} 1e+010\nm{k=\"g\"} .5\n",
            &["m"],
            vec![
                row("m", &[("k", "a")], f64::NAN, None),
                row("m", &[("k", "b")], f64::INFINITY, None),
                row("m", &[("k", "c")], f64::NEG_INFINITY, None),
                row("m", &[("k", "d")], f64::INFINITY, None),
                row("m", &[("k", "e")], -0.025, None),
                row("m", &[("k", "f")], 1e10, None),
                row("m", &[("k", "g")], 0.5, None),
            ],
        ),
        (
            "only exact names: prefixes and comments do not match",
            b"# HELP m help\n# TYPE m gauge\nm_total 1\nmm 2\nm 3\nm: 4\n",
            &["m"],
            vec![row("m", &[], 3.0, None)],
        ),
        (
            "gauge, counter, untyped and histogram samples alike",
            b"# TYPE g gauge\ng 1\n# TYPE c_total counter\nc_total 2\nu 3\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 4\nh_count 4\n",
            &["g", "c_total", "u", "h_bucket"],
            vec![
                row("g", &[], 1.0, None),
                row("c_total", &[], 2.0, None),
                row("u", &[], 3.0, None),
                row("h_bucket", &[("le", "+Inf")], 4.0, None),
            ],
        ),
        (
            "names sharing a prefix, shorter and longer than 8 bytes",
            b"ab 1\nabc 2\nabd 3\nvllm:num_requests_waiting 4\nvllm:num_requests_waiting_x 5\nvllm:num_requests_running 6\n",
            &["abc", "ab", "vllm:num_requests_running", "vllm:num_requests_waiting"],
            vec![
                row("ab", &[], 1.0, None),
                row("abc", &[], 2.0, None),
                row("vllm:num_requests_waiting", &[], 4.0, None),
                row("vllm:num_requests_running", &[], 6.0, None),
            ],
        ),
        (
            "broken and non-UTF-8 unwanted lines after the first are ignored",
            b"ok 1\nother{a=\"1\" oops\nother \xff\xfe 2\nwanted 7\n",
            &["wanted"],
            vec![row("wanted", &[], 7.0, None)],
        ),
        ("empty page", b"", &["m"], vec![]),
        ("blank page", b"\n \n\t\n", &["m"], vec![]),
        ("comments only", b"# just a comment\n# EOF\n", &["m"], vec![]),
        ("nothing wanted", b"m 1\n", &[], vec![]),
    ];
    for (what, page, wanted, want) in cases {
        let got = rows(page, wanted).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(same(&got, &want), "{what}:\n got {got:?}\nwant {want:?}");
    }
}

#[test]
fn labels_borrow_unless_escaped() {
    let names = WantedNames::new(["m"]);
    let samples = parse(br#"m{a="plain",b="esc\"aped"} 1"#, &names).unwrap();
    let sample = samples.iter().next().unwrap();
    assert!(matches!(sample.labels[0].value, Cow::Borrowed("plain")));
    assert!(matches!(&sample.labels[1].value, Cow::Owned(v) if v == "esc\"aped"));
    assert_eq!(sample.label("b"), Some("esc\"aped"));
    assert_eq!(sample.label("c"), None);
    assert_eq!(sample.line, 1);
}

#[test]
fn malformed_wanted_lines_are_errors() {
    use LineProblem as P;
    let cases: Vec<(&[u8], usize, usize, LineProblem)> = vec![
        (b"m{a=\"1\" 2", 1, 9, P::ExpectedCommaOrBrace),
        (b"m{a=1} 2", 1, 5, P::ExpectedQuote),
        (b"m{a=\"1} 2", 1, 10, P::UnterminatedLabelValue),
        (b"m{a=\"1\\", 1, 8, P::UnterminatedLabelValue),
        (b"m{a=\"\\x\"} 2", 1, 6, P::InvalidEscape),
        (b"m{1a=\"x\"} 2", 1, 3, P::ExpectedLabelName),
        (b"m{,} 2", 1, 3, P::ExpectedLabelName),
        (b"m{a \"x\"} 2", 1, 5, P::ExpectedEquals),
        (b"m{a=\"1\",a=\"2\"} 2", 1, 1, P::DuplicateLabel("a".into())),
        (b"m", 1, 2, P::MissingValue),
        (b"m{a=\"1\"}", 1, 9, P::MissingValue),
        (b"m abc", 1, 3, P::InvalidValue("abc".into())),
        (b"m 0x10", 1, 3, P::InvalidValue("0x10".into())),
        (b"m 1 12.5", 1, 5, P::InvalidTimestamp("12.5".into())),
        (b"m 1 2 3", 1, 7, P::TrailingText("3".into())),
        (b"m 1 \xff", 1, 5, P::InvalidUtf8),
        (
            b"# HELP m x\nok 1\n\nm{a=\"1\"} one\n",
            4,
            10,
            P::InvalidValue("one".into()),
        ),
    ];
    for (page, line, column, problem) in cases {
        let got = rows(page, &["m"]);
        let want = ParseError::MalformedSample {
            metric: "m".into(),
            line,
            column,
            problem,
        };
        assert_eq!(got, Err(want), "page {:?}", String::from_utf8_lossy(page));
    }
}

#[test]
fn error_messages_are_specific_and_bounded() {
    let err = rows(
        b"ok 1\nvllm:num_requests_waiting{model=\"x\" 3\n",
        &["vllm:num_requests_waiting"],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "malformed sample of vllm:num_requests_waiting at line 2, column 37: expected ',' or '}' after a label"
    );
    let long = format!("m {}", "9".repeat(100_000) + "x");
    let err = rows(long.as_bytes(), &["m"]).unwrap_err().to_string();
    assert!(err.len() < 200, "{err}");
}

#[test]
fn pages_that_are_not_metrics_are_errors() {
    let cases: Vec<(&str, &[u8], &str)> = vec![
        (
            "html",
            b"<!DOCTYPE html>\n<html><body>Not Found</body></html>\n",
            "not a Prometheus text page: line 1: unexpected character '<' at the start of a line (column 1)",
        ),
        (
            "json",
            b"{\"error\":\"not found\"}",
            "not a Prometheus text page: line 1: unexpected character '{' at the start of a line (column 1)",
        ),
        (
            "go 404 text",
            b"404 page not found\n",
            "not a Prometheus text page: line 1: unexpected character '4' at the start of a line (column 1)",
        ),
        (
            "plain error text",
            b"Internal Server Error\n",
            "not a Prometheus text page: line 1: invalid value \"Server\" (column 10)",
        ),
        (
            "gzip body",
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
            "not a Prometheus text page: line 1: unexpected byte 0x1f at the start of a line (column 1)",
        ),
        (
            "binary first comment",
            b"#\xff\xfe\n",
            "not a Prometheus text page: line 1: invalid UTF-8 (column 2)",
        ),
        (
            "html after blank lines and metrics",
            b"\n\nm 1\n<div>\n",
            "not a Prometheus text page: line 4: unexpected character '<' at the start of a line (column 1)",
        ),
    ];
    for (what, page, want) in cases {
        let got = rows(page, &["m"]).map_err(|e| e.to_string());
        assert_eq!(got, Err(want.to_owned()), "{what}");
    }
}

/// xorshift64*: deterministic noise without a dependency.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn random_bytes_are_errors() {
    let wanted = WantedNames::new(["vllm:num_requests_waiting"]);
    for seed in 0..500 {
        let page = noise(seed, 4096);
        let result = parse(&page, &wanted);
        assert!(
            matches!(result, Err(ParseError::NotPrometheusText { .. })),
            "seed {seed}: {result:?}"
        );
    }
}

#[test]
fn corrupted_pages_never_panic() {
    // Flip bytes of the real page: any outcome but a panic is fine.
    let wanted = WantedNames::new([
        "vllm:num_requests_waiting",
        "vllm:lora_requests_info",
        "vllm:cache_config_info",
        "vllm:e2e_request_latency_seconds_bucket",
    ]);
    let mut outcomes = [0usize; 2];
    for seed in 0..300u64 {
        let mut page = VLLM_PAGE.to_vec();
        for (i, b) in noise(seed, 64).chunks(4).enumerate() {
            let at = (usize::from(b[0]) << 8 | usize::from(b[1])) * 7 % page.len();
            page[at] = if i % 3 == 0 {
                b[2]
            } else {
                b"{}\"\\=, \n"[usize::from(b[3]) % 8]
            };
        }
        outcomes[usize::from(parse(&page, &wanted).is_ok())] += 1;
    }
    assert!(outcomes[0] > 0, "no corruption was detected: {outcomes:?}");
}

#[test]
fn linear_on_hostile_input() {
    // 200k labels on one wanted line: the duplicate check must not be quadratic.
    let mut line = String::from("m{");
    for i in 0..200_000 {
        line.push_str(&format!("l{i}=\"v\","));
    }
    line.push_str("} 1\n");
    let got = rows(line.as_bytes(), &["m"]).unwrap();
    assert_eq!(got[0].1.len(), 200_000);
    line.push_str("m{a=\"1\",");
    line.push_str(&"b=\"2\",".repeat(20));
    line.push_str("} 1\n");
    assert!(matches!(
        rows(line.as_bytes(), &["m"]),
        Err(ParseError::MalformedSample { line: 2, .. })
    ));
    // 20 MB of unwanted lines, and one wanted line at the end.
    let mut page = b"other{a=\"1\"} 1\n".repeat(1_300_000);
    page.extend_from_slice(b"m 42\n");
    assert_eq!(
        rows(&page, &["m"]).unwrap(),
        vec![row("m", &[], 42.0, None)]
    );
}

#[test]
fn find_newline_matches_naive_search() {
    let mut hay = vec![b'x'; 40];
    assert_eq!(find_newline(&hay), None);
    for at in 0..hay.len() {
        hay[at] = b'\n';
        for start in 0..=at {
            assert_eq!(
                find_newline(&hay[start..]),
                Some(at - start),
                "at {at} start {start}"
            );
        }
        hay[at] = 0x8a; // a high byte must not be taken for '\n' (0x0a)
    }
    assert_eq!(find_newline(&hay), None);
}

#[test]
fn wanted_names_dedupe_and_index() {
    let mut names = WantedNames::new(["a", "b", "a"]);
    assert_eq!(names.len(), 2);
    assert_eq!(names.index_of("b"), Some(1));
    assert_eq!(names.insert("c"), 2);
    assert_eq!(names.insert("a"), 0);
    assert_eq!(names.name(2), Some("c"));
    assert_eq!(names.name(3), None);
    assert!(!names.is_empty());
    assert_eq!(format!("{names:?}"), r#"["a", "b", "c"]"#);
}

#[test]
fn fixture_is_a_realistic_vllm_page() {
    assert!(
        (30_000..=60_000).contains(&VLLM_PAGE.len()),
        "{}",
        VLLM_PAGE.len()
    );
    // Every line parses: wanting every sample name checks the whole page strictly.
    let text = std::str::from_utf8(VLLM_PAGE).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| &l[..l.find(['{', ' ']).unwrap()])
        .collect();
    let all = rows(VLLM_PAGE, &names).unwrap();
    assert_eq!(all.len(), names.len());
}

/// Our parse and prometheus-parse's agree on a dozen families of the vLLM page.
///
/// prometheus-parse's name pattern is `\w+`, so it ignores every `vllm:` line; it reads
/// them only after `vllm:` is renamed to `vllm_`, which this test does for it.
#[test]
fn agrees_with_prometheus_parse_on_the_vllm_page() {
    use prometheus_parse::{Scrape, Value};

    let text = std::str::from_utf8(VLLM_PAGE).unwrap();
    let scrape_of = |text: &str| Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let original = scrape_of(text);
    assert!(
        !original
            .samples
            .iter()
            .any(|s| s.metric.starts_with("vllm"))
    );
    let theirs = scrape_of(&text.replace("vllm:", "vllm_"));

    let scalar_families = [
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:gpu_cache_usage_perc",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:num_preemptions_total",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:request_success_total",
        "vllm:e2e_request_latency_seconds_sum",
        "vllm:time_to_first_token_seconds_count",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "python_gc_objects_collected_total",
        "http_requests_total",
    ];
    let histogram_families = [
        "vllm:e2e_request_latency_seconds",
        "vllm:time_to_first_token_seconds",
        "vllm:request_prompt_tokens",
    ];
    let mut wanted: Vec<String> = scalar_families.iter().map(|s| (*s).to_owned()).collect();
    wanted.extend(histogram_families.iter().map(|h| format!("{h}_bucket")));
    let wanted_refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let ours = rows(VLLM_PAGE, &wanted_refs).unwrap();

    let as_map = |labels: &[(String, String)]| -> HashMap<String, String> {
        labels.iter().cloned().collect()
    };
    let mut compared = 0;
    for family in scalar_families {
        let mine: Vec<&Row> = ours.iter().filter(|r| r.0 == family).collect();
        assert!(!mine.is_empty(), "{family} missing from our parse");
        for (_, labels, value, _) in mine {
            let their_name = family.replace("vllm:", "vllm_");
            let theirs_value = theirs
                .samples
                .iter()
                .find(|s| s.metric == their_name && *s.labels == as_map(labels))
                .map(|s| match s.value {
                    Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                    _ => f64::NAN,
                });
            assert_eq!(theirs_value, Some(*value), "{family} {labels:?}");
            compared += 1;
        }
    }
    for family in histogram_families {
        let their_name = family.replace("vllm:", "vllm_");
        let Some(Value::Histogram(buckets)) = theirs
            .samples
            .iter()
            .find(|s| s.metric == their_name)
            .map(|s| &s.value)
        else {
            panic!("{family}: no histogram in prometheus-parse's result");
        };
        let bucket_name = format!("{family}_bucket");
        let mine: Vec<(f64, f64)> = ours
            .iter()
            .filter(|r| r.0 == bucket_name)
            .map(|r| {
                let le = r.1.iter().find(|(n, _)| n == "le").unwrap();
                (le.1.parse::<f64>().unwrap(), r.2)
            })
            .collect();
        let theirs: Vec<(f64, f64)> = buckets.iter().map(|b| (b.less_than, b.count)).collect();
        assert_eq!(mine, theirs, "{family}");
        compared += mine.len();
    }
    assert!(compared > 60, "{compared}");
}
