use super::definitions;
use super::primitives::Histogram;
use super::*;
use crate::telemetry::go_float::write_go_float;

fn go_float(value: f64) -> String {
    let mut out = String::new();
    write_go_float(&mut out, value);
    out
}

/// The lines of `page` that start with `prefix`.
fn lines<'a>(page: &'a str, prefix: &str) -> Vec<&'a str> {
    page.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn floats_are_written_as_go_formats_them() {
    for (value, expected) in [
        (0.0, "0"),
        (1.0, "1"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (0.005, "0.005"),
        (32778.0, "32778"),
        (524288.0, "524288"),
        (1_000_000.0, "1e+06"),
        (1_048_576.0, "1.048576e+06"),
        (1_073_741_824.0, "1.073741824e+09"),
        (123456.7, "123456.7"),
        (-1.5, "-1.5"),
        (f64::INFINITY, "+Inf"),
        (f64::NAN, "NaN"),
    ] {
        assert_eq!(go_float(value), expected, "{value}");
    }
}

#[test]
fn histogram_buckets_are_upper_inclusive_and_count_matches_inf() {
    static BOUNDS: &[f64] = &[0.1, 1.0];
    let histogram = Histogram::new(BOUNDS);
    for value in [0.1, 0.5, 1.0, 7.0, f64::NAN] {
        histogram.observe(value);
    }
    let snapshot = histogram.snapshot();
    assert_eq!(snapshot.cumulative, vec![1, 3]);
    assert_eq!(snapshot.count, 4, "NaN is ignored");
    assert!((snapshot.sum - 8.6).abs() < 1e-9);
}

#[test]
fn request_metrics_render_as_upstream() {
    let metrics = EppMetrics::new(MetricsLimits::default());
    let model = metrics.model("m10", "t10");
    model.request_total();
    model.request_total();
    model.request_size(1200);
    model.request_error(ErrorCode::BadRequest);
    let page = metrics.render();
    let expected = "# HELP inference_model_request_total [ALPHA] Counter of inference model requests broken out for each model and target model.\n\
# TYPE inference_model_request_total counter\n\
inference_model_request_total{model_name=\"m10\",target_model_name=\"t10\"} 2\n";
    assert!(page.contains(expected), "{page}");
    assert!(
        page.contains(
            "inference_model_request_error_total{error_code=\"BadRequest\",model_name=\"m10\",target_model_name=\"t10\"} 1\n"
        ),
        "{page}"
    );
    // 1200 bytes: first bucket at 2048, cumulative from there on, le written as Go does.
    let sizes = lines(&page, "inference_model_request_sizes_bucket");
    assert_eq!(sizes.len(), 26, "25 bounds and +Inf");
    assert!(sizes[4].ends_with("le=\"1024\"} 0"), "{}", sizes[4]);
    assert!(sizes[5].ends_with("le=\"2048\"} 1"), "{}", sizes[5]);
    assert!(sizes[14].contains("le=\"1.048576e+06\""), "{}", sizes[14]);
    assert!(sizes[25].ends_with("le=\"+Inf\"} 1"), "{}", sizes[25]);
    assert!(page.contains(
        "inference_model_request_sizes_sum{model_name=\"m10\",target_model_name=\"t10\"} 1200\n"
    ));
    // Histograms of the pair that saw no observation are absent, as in Go.
    assert!(!page.contains("inference_model_response_sizes"), "{page}");
}

#[test]
fn families_are_sorted_and_parse_as_prometheus_text() {
    let metrics = EppMetrics::new(MetricsLimits::default());
    metrics.set_build_info("abc123", "v0.1.0");
    let model = metrics.model("a", "b");
    model.request_total();
    model.request_duration(0.3);
    model.tokens(10, 0);
    metrics.scheduler_duration(0.00015);
    metrics.plugin_duration("Scorer", "queue-scorer", "queue", 0.00001);
    metrics.prefix_match(128, 256);
    metrics.phase(Phase::Parse, 0.00002);
    let page = metrics.render();
    let names: Vec<&str> = lines(&page, "# TYPE ")
        .iter()
        .map(|l| l.split(' ').nth(2).unwrap_or_default())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert!(page.contains("inference_extension_info{build_ref=\"v0.1.0\",commit=\"abc123\"} 1\n"));
    assert!(page.contains("inference_extension_plugin_duration_seconds_count{extension_point=\"Scorer\",plugin_name=\"queue\",plugin_type=\"queue-scorer\"} 1\n"), "{page}");
    assert!(page.contains("inference_extension_prefix_indexer_hit_ratio_bucket{le=\"0.5\"} 1\n"));
    // Output tokens of 0 are not observed (upstream), so only input tokens appear.
    assert!(page.contains("inference_model_input_tokens_count{"));
    assert!(!page.contains("inference_model_output_tokens_count{"));

    let parsed = prometheus_parse::Scrape::parse(page.lines().map(|l| Ok(l.to_owned())))
        .expect("the page parses");
    let duration = parsed
        .samples
        .iter()
        .find(|s| s.metric == "inference_model_request_duration_seconds")
        .expect("the request duration histogram");
    assert!(
        matches!(&duration.value, prometheus_parse::Value::Histogram(b) if b.len() == 36),
        "{:?}",
        duration.value
    );
}

#[test]
fn model_labels_beyond_the_cap_share_other() {
    let metrics = EppMetrics::new(MetricsLimits {
        max_model_pairs: 2,
        max_plugin_series: 2,
    });
    for model in ["a", "b", "c", "d"] {
        metrics.model(model, model).request_total();
    }
    let _running = metrics.running_requests_inc("other");
    let page = metrics.render();
    let totals = lines(&page, "inference_model_request_total{");
    assert_eq!(
        totals,
        vec![
            "inference_model_request_total{model_name=\"a\",target_model_name=\"a\"} 1",
            "inference_model_request_total{model_name=\"b\",target_model_name=\"b\"} 1",
            "inference_model_request_total{model_name=\"other\",target_model_name=\"other\"} 2",
        ]
    );
    assert!(
        page.contains(
            "inference_extension_metric_label_overflow_total{label_set=\"model_pair\"} 2\n"
        )
    );
    // A client model literally named "other" shares the one `other` series.
    assert!(page.contains("inference_model_running_requests{model_name=\"other\"} 1\n"));
}

#[test]
fn guards_lower_their_gauges_when_dropped() {
    let metrics = EppMetrics::new(MetricsLimits::default());
    let running = metrics.running_requests_inc("m");
    let stream = metrics.stream_opened();
    let page = metrics.render();
    assert!(page.contains("inference_model_running_requests{model_name=\"m\"} 1\n"));
    assert!(page.contains("inference_extension_ext_proc_streams 1\n"));
    drop((running, stream));
    let page = metrics.render();
    assert!(page.contains("inference_model_running_requests{model_name=\"m\"} 0\n"));
    assert!(page.contains("inference_extension_ext_proc_streams 0\n"));
    // An empty model name records nothing (upstream).
    let _none = metrics.running_requests_inc("");
    assert!(!metrics.render().contains("model_name=\"\""));
}

#[test]
fn the_grafana_dashboard_names_only_exported_metrics_with_their_labels() {
    let dashboard: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../../manifests/grafana/epp-dashboard.json"
    ))
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut checked = 0;
    for expr in panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
    {
        for (start, _) in expr.match_indices("inference_") {
            let name: String = expr[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let def = definitions::ALL.iter().find(|d| {
                let suffix = name.strip_prefix(d.name);
                match d.kind {
                    definitions::Kind::Histogram => {
                        matches!(suffix, Some("_bucket" | "_sum" | "_count"))
                    }
                    _ => suffix == Some(""),
                }
            });
            let def = def.unwrap_or_else(|| panic!("{name} is not exported ({expr})"));
            // In a one-metric expression, `by (...)` labels must be the family's (or `le`).
            let single = expr.matches("inference_").count() == 1;
            let grouped = expr.split("by (").nth(1).and_then(|s| s.split(')').next());
            if let (true, Some(grouped)) = (single, grouped) {
                for label in grouped.split(',').map(str::trim) {
                    assert!(
                        label == "le" || def.labels.contains(&label),
                        "{label} is not a label of {}: {expr}",
                        def.name
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} metric references");
}
