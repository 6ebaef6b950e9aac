//! Judging pages under the vLLM preset, and logging usability once per change.

use tracing_subscriber::Registry;
use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::extract::CompiledMapping;
use crate::presets::{Engine, MetricMapping};
use epp_core::telemetry::logging::{CapturedLogs, LogSettings, layer_for_writer};
use epp_core::telemetry::logging::{LogEncoder, TimeEncoding};

fn fields(list: &[MetricField]) -> FieldSet {
    list.iter().copied().collect()
}

#[test]
fn judge_table() {
    use MetricField as F;
    use UnusableReason as R;
    let mapping = CompiledMapping::new(MetricMapping::preset(Engine::Vllm));
    let all = fields(&[F::Queue, F::Running, F::KvUsage]);
    let full =
        "vllm:num_requests_waiting 1\nvllm:num_requests_running 2\nvllm:kv_cache_usage_perc 0.5\n";
    let cases: [(&str, String, Option<Unusable>); 8] = [
        ("load metrics without LoRA or cache info", full.into(), None),
        (
            "empty page",
            String::new(),
            Some(Unusable {
                reason: R::NoConfiguredMetrics,
                fields: all,
            }),
        ),
        (
            "an SGLang page",
            "sglang:num_queue_reqs 0\nsglang:num_running_reqs 0\nsglang:token_usage 0\n".into(),
            Some(Unusable {
                reason: R::NoConfiguredMetrics,
                fields: all,
            }),
        ),
        (
            "KV usage absent",
            "vllm:num_requests_waiting 1\nvllm:num_requests_running 2\n".into(),
            Some(Unusable {
                reason: R::MissingMetric,
                fields: fields(&[F::KvUsage]),
            }),
        ),
        (
            "only cache info",
            "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"8\"} 1\n".into(),
            Some(Unusable {
                reason: R::MissingMetric,
                fields: all,
            }),
        ),
        (
            "a NaN queue",
            full.replace("waiting 1", "waiting NaN"),
            Some(Unusable {
                reason: R::InvalidValue,
                fields: fields(&[F::Queue]),
            }),
        ),
        (
            "invalid wins over missing",
            "vllm:num_requests_waiting -3\n".into(),
            Some(Unusable {
                reason: R::InvalidValue,
                fields: all,
            }),
        ),
        (
            "missing LoRA and an unreadable cache info label do not matter",
            format!("{full}vllm:cache_config_info{{block_size=\"x\"}} 1\n"),
            None,
        ),
    ];
    for (what, page, want) in cases {
        let extracted = mapping.extract(page.as_bytes()).expect("parses");
        assert_eq!(judge(&extracted, mapping.configured()), want, "{what}");
    }
    // A mapping that reads no load metric has nothing to judge.
    let none = CompiledMapping::new(MetricMapping {
        queued: None,
        running: None,
        kv_usage: None,
        ..MetricMapping::preset(Engine::Vllm)
    });
    let extracted = none.extract(b"").expect("parses");
    assert_eq!(judge(&extracted, none.configured()), None);
}

#[test]
fn changes_are_logged_once() {
    let logs = CapturedLogs::new();
    let settings = LogSettings {
        verbosity: 2,
        encoder: LogEncoder::Json,
        time_encoding: TimeEncoding::Rfc3339,
        directives: None,
    };
    let subscriber =
        Registry::default().with(layer_for_writer(&settings, logs.clone()).expect("layer"));
    let empty = Some(Unusable {
        reason: UnusableReason::NoConfiguredMetrics,
        fields: fields(&[
            MetricField::Queue,
            MetricField::Running,
            MetricField::KvUsage,
        ]),
    });
    let nan = Some(Unusable {
        reason: UnusableReason::InvalidValue,
        fields: fields(&[MetricField::KvUsage]),
    });
    tracing::subscriber::with_default(subscriber, || {
        let mut log = UsabilityLog::default();
        for judged in [None, None, empty, empty, empty, nan, nan, None, None, empty] {
            log.report("10.0.0.1:8000", judged);
        }
    });
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let summary: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["level"].as_str().unwrap_or_default(),
                l["reason"].as_str().unwrap_or_default(),
                l["fields"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "warn",
                "no_configured_metrics",
                r#"{"queue", "running", "kv_usage"}"#
            ),
            ("warn", "invalid_value", r#"{"kv_usage"}"#),
            ("info", "", ""),
            (
                "warn",
                "no_configured_metrics",
                r#"{"queue", "running", "kv_usage"}"#
            ),
        ],
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l["endpoint"] == "10.0.0.1:8000"));
}
