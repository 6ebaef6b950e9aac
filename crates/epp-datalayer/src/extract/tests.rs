//! Tests of the extraction rules (series selection, conversions, LoRA, cache geometry, KV rename) and of each preset on its engine's page.

use super::*;
use crate::metric_spec::MetricSpec;
use crate::presets::Engine;

const VLLM_PAGE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/vllm-metrics.txt"
));
const SGLANG_PAGE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/sglang-metrics.txt"
));

/// trtllm-serve's `/prometheus/metrics` (gauges written with `.0`, as prometheus_client does).
const TRTLLM_SERVE_PAGE: &str = r#"# HELP trtllm_request_success_total Count of successfully processed requests.
# TYPE trtllm_request_success_total counter
trtllm_request_success_total{engine_type="trtllm",finished_reason="stop",model_name="llama"} 311.0
# HELP trtllm_num_requests_running Number of requests currently running.
# TYPE trtllm_num_requests_running gauge
trtllm_num_requests_running{engine_type="trtllm",model_name="llama"} 9.0
# HELP trtllm_num_requests_waiting Number of requests waiting to be scheduled.
# TYPE trtllm_num_requests_waiting gauge
trtllm_num_requests_waiting{engine_type="trtllm",model_name="llama"} 4.0
# HELP trtllm_kv_cache_utilization Fraction of KV-cache blocks in use.
# TYPE trtllm_kv_cache_utilization gauge
trtllm_kv_cache_utilization{engine_type="trtllm",model_name="llama"} 0.5703125
# HELP trtllm_kv_cache_hit_rate KV-cache reuse hit rate.
# TYPE trtllm_kv_cache_hit_rate gauge
trtllm_kv_cache_hit_rate{engine_type="trtllm",model_name="llama"} 0.31
# HELP trtllm_kv_cache_tokens_per_block Tokens per KV-cache block.
# TYPE trtllm_kv_cache_tokens_per_block gauge
trtllm_kv_cache_tokens_per_block{engine_type="trtllm",model_name="llama"} 32.0
# HELP trtllm_kv_cache_max_blocks Maximum number of KV-cache blocks.
# TYPE trtllm_kv_cache_max_blocks gauge
trtllm_kv_cache_max_blocks{engine_type="trtllm",model_name="llama"} 8192.0
"#;

/// Triton's `/metrics` with the TensorRT-LLM backend (integers without a decimal point).
const TRITON_PAGE: &str = r#"# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="ensemble",version="1"} 120
nv_inference_request_success{model="tensorrt_llm",version="1"} 120
# HELP nv_trt_llm_request_metrics TRT LLM request metrics
# TYPE nv_trt_llm_request_metrics gauge
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="context",version="1"} 1
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="scheduled",version="1"} 6
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="max",version="1"} 512
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"} 8
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="waiting",version="1"} 2
# HELP nv_trt_llm_kv_cache_block_metrics TRT LLM KV cache block metrics
# TYPE nv_trt_llm_kv_cache_block_metrics gauge
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",model="tensorrt_llm",version="1"} 0.25
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="tokens_per",model="tensorrt_llm",version="1"} 64
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",model="tensorrt_llm",version="1"} 1000
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="free",model="tensorrt_llm",version="1"} 3000
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="tensorrt_llm",version="1"} 4000
"#;

fn spec(text: &str) -> Option<MetricSpec> {
    MetricSpec::parse(text).unwrap()
}

/// A mapping with every field off.
fn nothing() -> MetricMapping {
    MetricMapping {
        queued: None,
        running: None,
        kv_usage: None,
        lora: None,
        cache_info: None,
        cache_block_size_label: String::new(),
        cache_num_blocks_label: String::new(),
        cache_block_size: None,
        cache_num_blocks: None,
    }
}

fn run(mapping: MetricMapping, page: &str) -> Extracted {
    CompiledMapping::new(mapping)
        .extract(page.as_bytes())
        .unwrap_or_else(|e| panic!("{e}\npage:\n{page}"))
}

fn lora(active: &[&str], waiting: &[&str], max_active: u32) -> Option<LoraState> {
    let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
    Some(LoraState {
        active: names(active),
        waiting: names(waiting),
        max_active,
    })
}

fn missing(fields: &[MetricField]) -> FieldSet {
    fields.iter().copied().collect()
}

#[test]
fn series_selection() {
    // (what, queue spec, page, expected queue)
    let cases: [(&str, &str, &str, Option<u64>); 12] = [
        ("no labels required", "q", "q{a=\"1\"} 5", Some(5)),
        (
            "superset of the spec's labels",
            "q{a=1}",
            "q{a=\"1\",b=\"2\"} 5",
            Some(5),
        ),
        ("a required label missing", "q{a=1}", "q{b=\"2\"} 5", None),
        ("a required label different", "q{a=1}", "q{a=\"2\"} 5", None),
        (
            "all required labels",
            "q{a=1,b=2}",
            "q{a=\"1\"} 4\nq{a=\"1\",b=\"2\"} 5",
            Some(5),
        ),
        (
            "values compared literally, quotes included (as v1.0.1)",
            "q{a=\"1\"}",
            "q{a=\"1\"} 5",
            None,
        ),
        (
            "first series wins without timestamps",
            "q",
            "q{a=\"1\"} 5\nq{a=\"2\"} 6",
            Some(5),
        ),
        (
            "first matching series",
            "q{a=1}",
            "q{a=\"2\"} 5\nq{a=\"1\"} 6\nq{a=\"1\"} 7",
            Some(6),
        ),
        (
            "newest timestamp wins",
            "q",
            "q 5 100\nq 6 300\nq 7 200",
            Some(6),
        ),
        ("a timestamp beats none", "q", "q 5\nq 6 10", Some(6)),
        (
            "a timestamp tie goes to the first",
            "q",
            "q 5 10\nq 6 10\nq 7",
            Some(5),
        ),
        (
            "newest among matching only",
            "q{a=1}",
            "q{a=\"1\"} 5 1\nq{a=\"2\"} 6 9",
            Some(5),
        ),
    ];
    for (what, queue_spec, page, want) in cases {
        let got = run(
            MetricMapping {
                queued: spec(queue_spec),
                ..nothing()
            },
            page,
        );
        assert_eq!(got.update.waiting_queue_size, want, "{what}");
        assert_eq!(
            got.missing.contains(MetricField::Queue),
            want.is_none(),
            "{what}"
        );
    }
}

#[test]
fn value_conversions() {
    // (value text, queue and running count, KV usage); `None` = invalid, reported.
    let cases: [(&str, Option<u64>, Option<f64>); 12] = [
        ("3", Some(3), Some(3.0)),
        ("3.99", Some(3), Some(3.99)),
        ("0.42", Some(0), Some(0.42)),
        ("1.25", Some(1), Some(1.25)),
        ("0", Some(0), Some(0.0)),
        ("-0", Some(0), Some(0.0)),
        ("-1", None, None),
        ("NaN", None, None),
        ("+Inf", None, None),
        ("-Inf", None, None),
        ("1e20", Some(u64::from(u32::MAX)), Some(1e20)),
        (
            "4.5307858944e+010",
            Some(u64::from(u32::MAX)),
            Some(45_307_858_944.0),
        ),
    ];
    for (value, count, kv) in cases {
        let page = format!("q {value}\nr {value}\nk {value}\n");
        let got = run(
            MetricMapping {
                queued: spec("q"),
                running: spec("r"),
                kv_usage: spec("k"),
                ..nothing()
            },
            &page,
        );
        assert_eq!(got.update.waiting_queue_size, count, "{value}");
        assert_eq!(got.update.running_requests, count, "{value}");
        assert_eq!(got.update.kv_cache_usage, kv, "{value}");
        let signals = missing(&[
            MetricField::Queue,
            MetricField::Running,
            MetricField::KvUsage,
        ]);
        let want_invalid = if kv.is_none() {
            signals
        } else {
            FieldSet::EMPTY
        };
        assert_eq!(got.invalid, want_invalid, "{value}");
        assert_eq!(
            got.missing,
            FieldSet::EMPTY,
            "present, even if invalid: {value}"
        );
    }
}

#[test]
fn counters_untyped_and_gauges_are_all_read() {
    let page = "# TYPE q_total counter\nq_total 7\nr 8\n# TYPE k gauge\nk 0.5\n# TYPE h histogram\nh_count 9\n";
    let got = run(
        MetricMapping {
            queued: spec("q_total"),
            running: spec("r"),
            kv_usage: spec("k"),
            cache_num_blocks: spec("h_count"),
            ..nothing()
        },
        page,
    );
    let want = MetricsUpdate {
        waiting_queue_size: Some(7),
        running_requests: Some(8),
        kv_cache_usage: Some(0.5),
        lora: None,
        cache: Some(CacheGeometry {
            block_size: 0,
            num_blocks: 9,
        }),
    };
    assert_eq!(got.update, want);
    assert!(got.missing.is_empty(), "{:?}", got.missing);
}

#[test]
fn lora_selection() {
    let info = |max: &str, running: &str, waiting: &str, value: &str| {
        format!(
            "vllm:lora_requests_info{{max_lora=\"{max}\",running_lora_adapters=\"{running}\",waiting_lora_adapters=\"{waiting}\"}} {value}\n"
        )
    };
    let cases: Vec<(&str, String, Option<LoraState>)> = vec![
        (
            "largest value wins, not page order",
            info("4", "old", "", "1.70e9")
                + &info("4", "new", "w", "1.75e9")
                + &info("4", "mid", "", "1.72e9"),
            lora(&["new"], &["w"], 4),
        ),
        (
            "an all-empty series is newer but does not qualify",
            info("4", "a", "", "1.70e9") + &info("4", "", "", "1.80e9"),
            lora(&["a"], &[], 4),
        ),
        (
            "waiting adapters alone qualify",
            info("2", "", "q1,q2", "5") + &info("2", "", "", "9"),
            lora(&[], &["q1", "q2"], 2),
        ),
        (
            "names trimmed, empty names dropped, deduplicated, sorted",
            info("8", " b, a ,,a ,", " c ,c", "1"),
            lora(&["a", "b"], &["c"], 8),
        ),
        (
            "a list of only commas and blanks is empty",
            info("3", " , ,", "", "9") + &info("3", "x", "", "1"),
            lora(&["x"], &[], 3),
        ),
        (
            "max_lora with blanks",
            info(" 6 ", "a", "", "1"),
            lora(&["a"], &[], 6),
        ),
        (
            "max_lora not a number",
            info("four", "a", "", "1"),
            lora(&["a"], &[], 0),
        ),
        (
            "max_lora negative",
            info("-1", "a", "", "1"),
            lora(&["a"], &[], 0),
        ),
        (
            "max_lora missing",
            "vllm:lora_requests_info{running_lora_adapters=\"a\",waiting_lora_adapters=\"\"} 1\n"
                .into(),
            lora(&["a"], &[], 0),
        ),
        (
            "escaped names decoded",
            info("1", "x\\\\y,say \\\"hi\\\"", "", "1"),
            lora(&["say \"hi\"", "x\\y"], &[], 1),
        ),
        (
            "a NaN timestamp loses to a real one",
            info("4", "nan", "", "NaN") + &info("4", "real", "", "0"),
            lora(&["real"], &[], 4),
        ),
        (
            "all series empty: no adapters, max_lora of the newest",
            info("2", "", "", "100") + &info("4", "", "", "300") + &info("3", "", "", "200"),
            lora(&[], &[], 4),
        ),
        ("family absent", "other 1\n".into(), None),
        (
            "family without LoRA labels",
            "vllm:lora_requests_info{foo=\"bar\"} 1\n".into(),
            None,
        ),
    ];
    for (what, page, want) in cases {
        let got = run(
            MetricMapping {
                lora: spec("vllm:lora_requests_info"),
                ..nothing()
            },
            &page,
        );
        assert_eq!(got.update.lora, want, "{what}");
        assert_eq!(
            got.missing.contains(MetricField::Lora),
            want.is_none(),
            "{what}"
        );
    }
}

#[test]
fn lora_spec_labels_filter_series() {
    let page =
        "l{pod=\"a\",running_lora_adapters=\"x\"} 9\nl{pod=\"b\",running_lora_adapters=\"y\"} 1\n";
    let got = run(
        MetricMapping {
            lora: spec("l{pod=b}"),
            ..nothing()
        },
        page,
    );
    assert_eq!(got.update.lora, lora(&["y"], &[], 0));
}

#[test]
fn cache_geometry() {
    let labels = |info: &str, size: &str, blocks: &str| MetricMapping {
        cache_info: spec(info),
        cache_block_size_label: size.into(),
        cache_num_blocks_label: blocks.into(),
        ..nothing()
    };
    let values = |size: &str, blocks: &str| MetricMapping {
        cache_block_size: spec(size),
        cache_num_blocks: spec(blocks),
        ..nothing()
    };
    let vllm = || labels("vllm:cache_config_info", "block_size", "num_gpu_blocks");
    let geometry = |block_size, num_blocks| {
        Some(CacheGeometry {
            block_size,
            num_blocks,
        })
    };
    use MetricField as F;
    let cases: Vec<(&str, MetricMapping, &str, Option<CacheGeometry>, FieldSet)> = vec![
        (
            "vLLM labels",
            vllm(),
            "vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\",num_gpu_blocks=\"27000\"} 1.0\n",
            geometry(16, 27000),
            missing(&[]),
        ),
        (
            "SGLang labels",
            labels("sglang:cache_config_info", "page_size", "num_pages"),
            "sglang:cache_config_info{num_pages=\"227968\",page_size=\"1\"} 1\n",
            geometry(1, 227_968),
            missing(&[]),
        ),
        (
            "an unreadable label is 0",
            vllm(),
            "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"None\"} 1\n",
            geometry(16, 0),
            missing(&[]),
        ),
        (
            "no readable label",
            vllm(),
            "vllm:cache_config_info{block_size=\"x\"} 1\n",
            None,
            missing(&[F::CacheInfo]),
        ),
        (
            "family absent",
            vllm(),
            "other 1\n",
            None,
            missing(&[F::CacheInfo]),
        ),
        (
            "gauge values",
            values("tpb", "max"),
            "tpb 32.0\nmax 8192.0\n",
            geometry(32, 8192),
            missing(&[]),
        ),
        (
            "gauge values rounded down",
            values("tpb", "max"),
            "tpb 32.7\nmax 8192.9\n",
            geometry(32, 8192),
            missing(&[]),
        ),
        (
            "one gauge missing, one unusable",
            values("tpb", "max"),
            "max NaN\n",
            None,
            missing(&[F::CacheBlockSize, F::CacheNumBlocks]),
        ),
        (
            "a negative gauge is unusable",
            values("tpb", "max"),
            "tpb -1\nmax 10\n",
            geometry(0, 10),
            missing(&[F::CacheBlockSize]),
        ),
        (
            "gauges fill what labels lack",
            MetricMapping {
                cache_num_blocks: spec("max"),
                cache_block_size: spec("tpb"),
                ..vllm()
            },
            "vllm:cache_config_info{block_size=\"16\"} 1\nmax 100\ntpb 64\n",
            geometry(16, 100),
            missing(&[]),
        ),
    ];
    for (what, mapping, page, want, want_reported) in cases {
        let got = run(mapping, page);
        assert_eq!(got.update.cache, want, "{what}");
        assert_eq!(got.missing.union(got.invalid), want_reported, "{what}");
    }
    // Unusable gauge values are reported as invalid, not missing.
    let got = run(values("tpb", "max"), "tpb -1\nmax NaN\n");
    assert_eq!(
        (got.missing, got.invalid),
        (
            FieldSet::EMPTY,
            missing(&[F::CacheBlockSize, F::CacheNumBlocks])
        )
    );
}

#[test]
fn kv_rename_fallback() {
    let old = "vllm:gpu_cache_usage_perc{engine=\"0\"} 0.25\n";
    let new = "vllm:kv_cache_usage_perc{engine=\"0\"} 0.75\n";
    let both = format!("{old}{new}");
    // (what, KV spec, page, KV usage, fallback name)
    type Case<'a> = (&'a str, &'a str, &'a str, Option<f64>, Option<&'a str>);
    let cases: [Case; 8] = [
        (
            "old name configured and present",
            VLLM_KV_OLD,
            old,
            Some(0.25),
            None,
        ),
        (
            "old name configured, new on the page",
            VLLM_KV_OLD,
            new,
            Some(0.75),
            Some(VLLM_KV_NEW),
        ),
        (
            "new name configured, old on the page",
            VLLM_KV_NEW,
            old,
            Some(0.25),
            Some(VLLM_KV_OLD),
        ),
        (
            "both present: configured wins",
            VLLM_KV_OLD,
            &both,
            Some(0.25),
            None,
        ),
        (
            "both present, new configured",
            VLLM_KV_NEW,
            &both,
            Some(0.75),
            None,
        ),
        ("neither present", VLLM_KV_OLD, "other 1\n", None, None),
        (
            "a spec with labels is read as written",
            "vllm:gpu_cache_usage_perc{engine=0}",
            new,
            None,
            None,
        ),
        ("another name has no fallback", "my_kv", new, None, None),
    ];
    for (what, kv_spec, page, want, fallback) in cases {
        let got = run(
            MetricMapping {
                kv_usage: spec(kv_spec),
                ..nothing()
            },
            page,
        );
        assert_eq!(got.update.kv_cache_usage, want, "{what}");
        assert_eq!(got.used_kv_fallback, fallback, "{what}");
        assert_eq!(
            got.missing.contains(MetricField::KvUsage),
            want.is_none(),
            "{what}"
        );
    }
}

#[test]
fn presets_read_their_engines_pages() {
    let vllm_update = MetricsUpdate {
        waiting_queue_size: Some(3),
        running_requests: Some(12),
        kv_cache_usage: Some(0.421_130_952_380_952_33),
        lora: lora(&["sql-lora", "tweet-summary"], &["sql-lora-v2"], 4),
        cache: Some(CacheGeometry {
            block_size: 16,
            num_blocks: 27000,
        }),
    };
    let cases: [(Engine, &str, MetricsUpdate); 4] = [
        (Engine::Vllm, VLLM_PAGE, vllm_update),
        (
            Engine::Sglang,
            SGLANG_PAGE,
            MetricsUpdate {
                waiting_queue_size: Some(2),
                running_requests: Some(7),
                kv_cache_usage: Some(0.23),
                lora: None,
                cache: Some(CacheGeometry {
                    block_size: 1,
                    num_blocks: 227_968,
                }),
            },
        ),
        (
            Engine::TrtllmServe,
            TRTLLM_SERVE_PAGE,
            MetricsUpdate {
                waiting_queue_size: Some(4),
                running_requests: Some(9),
                kv_cache_usage: Some(0.5703125),
                lora: None,
                cache: Some(CacheGeometry {
                    block_size: 32,
                    num_blocks: 8192,
                }),
            },
        ),
        (
            Engine::TritonTensorrtLlm,
            TRITON_PAGE,
            MetricsUpdate {
                waiting_queue_size: Some(2),
                running_requests: Some(6),
                kv_cache_usage: Some(0.25),
                lora: None,
                cache: Some(CacheGeometry {
                    block_size: 64,
                    num_blocks: 4000,
                }),
            },
        ),
    ];
    for (engine, page, want) in cases {
        let got = run(MetricMapping::preset(engine), page);
        assert_eq!(got.update, want, "{engine}");
        assert!(got.missing.is_empty(), "{engine}: {:?}", got.missing);
        assert_eq!(got.used_kv_fallback, None, "{engine}");
    }
}

#[test]
fn newer_vllm_page_uses_the_renamed_kv_metric() {
    let page: String = VLLM_PAGE
        .lines()
        .filter(|l| !l.contains("vllm:gpu_cache_usage_perc"))
        .map(|l| format!("{l}\n"))
        .collect();
    let got = run(MetricMapping::preset(Engine::Vllm), &page);
    assert_eq!(got.update.kv_cache_usage, Some(0.421_130_952_380_952_33));
    assert_eq!(got.used_kv_fallback, Some(VLLM_KV_NEW));
    assert!(got.missing.is_empty());
}

#[test]
fn missing_metrics_are_reported() {
    use MetricField as F;
    let cases: [(Engine, &str, FieldSet); 6] = [
        (
            Engine::Vllm,
            "",
            missing(&[F::Queue, F::Running, F::KvUsage, F::Lora, F::CacheInfo]),
        ),
        (
            Engine::Sglang,
            "\n\n",
            missing(&[F::Queue, F::Running, F::KvUsage, F::CacheInfo]),
        ),
        (
            Engine::TrtllmServe,
            "# nothing here\n",
            missing(&[
                F::Queue,
                F::Running,
                F::KvUsage,
                F::CacheBlockSize,
                F::CacheNumBlocks,
            ]),
        ),
        (
            Engine::TritonTensorrtLlm,
            "nv_trt_llm_request_metrics{request_type=\"waiting\"} 1\n",
            missing(&[F::Running, F::KvUsage, F::CacheBlockSize, F::CacheNumBlocks]),
        ),
        (
            Engine::Vllm,
            "vllm:num_requests_waiting 1\nvllm:num_requests_running 2\n",
            missing(&[F::KvUsage, F::Lora, F::CacheInfo]),
        ),
        (Engine::Vllm, VLLM_PAGE, missing(&[])),
    ];
    for (engine, page, want) in cases {
        let got = run(MetricMapping::preset(engine), page);
        assert_eq!(got.missing, want, "{engine} {page:?}");
        for field in MetricField::ALL {
            let present = match field {
                F::Queue => got.update.waiting_queue_size.is_some(),
                F::Running => got.update.running_requests.is_some(),
                F::KvUsage => got.update.kv_cache_usage.is_some(),
                F::Lora => got.update.lora.is_some(),
                F::CacheInfo | F::CacheBlockSize | F::CacheNumBlocks => got.update.cache.is_some(),
            };
            if want.contains(field) && field != F::CacheBlockSize && field != F::CacheNumBlocks {
                assert!(!present, "{engine}: {field} reported missing but set");
            }
        }
    }
    let empty = run(MetricMapping::preset(Engine::Vllm), "");
    assert_eq!(empty.update, MetricsUpdate::default());
    // A disabled field is neither read nor reported.
    let got = run(nothing(), VLLM_PAGE);
    assert_eq!(
        (got.update, got.missing),
        (MetricsUpdate::default(), FieldSet::EMPTY)
    );
}

#[test]
fn parse_errors_fail_the_extraction() {
    let mapping = CompiledMapping::new(MetricMapping::default());
    let cases: [(&str, &[u8], &str); 4] = [
        ("html", b"<html><body>502 Bad Gateway</body></html>", "not a Prometheus text page: line 1"),
        ("binary", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "not a Prometheus text page: line 1"),
        (
            "malformed wanted line",
            b"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} three\n",
            "malformed sample of vllm:num_requests_waiting at line 2, column 43: invalid value \"three\"",
        ),
        (
            "truncated wanted line",
            b"vllm:num_requests_running 1\nvllm:lora_requests_info{max_lora=\"4\",running_lora",
            "malformed sample of vllm:lora_requests_info at line 2",
        ),
    ];
    for (what, page, want) in cases {
        let err = mapping.extract(page).unwrap_err().to_string();
        assert!(err.starts_with(want), "{what}: {err}");
        assert_eq!(
            extract(page, &mapping).map_err(|e| e.to_string()),
            Err(err),
            "{what}"
        );
    }
    // A broken line of a metric nobody reads does not matter.
    let page = b"vllm:num_requests_waiting 5\nvllm:spec_decode{ broken\n";
    let got = mapping.extract(page).unwrap();
    assert_eq!(got.update.waiting_queue_size, Some(5));
}

#[test]
fn compiled_mapping_wants_each_name_once() {
    let compiled = CompiledMapping::new(MetricMapping::preset(Engine::TritonTensorrtLlm));
    assert_eq!(compiled.wanted().len(), 2, "{:?}", compiled.wanted());
    let compiled = CompiledMapping::from(MetricMapping::default());
    // Five specs plus the other KV name of the rename.
    assert_eq!(compiled.wanted().len(), 6);
    assert_eq!(compiled.wanted().index_of(VLLM_KV_NEW), Some(5));
    assert_eq!(compiled.mapping(), &MetricMapping::default());
}

#[test]
fn field_set() {
    let mut set = FieldSet::EMPTY;
    assert!(set.is_empty());
    set.insert(MetricField::Lora);
    set.insert(MetricField::Queue);
    set.insert(MetricField::Lora);
    assert_eq!(set.len(), 2);
    assert!(set.contains(MetricField::Queue) && !set.contains(MetricField::Running));
    assert_eq!(
        set.iter().collect::<Vec<_>>(),
        [MetricField::Queue, MetricField::Lora]
    );
    assert_eq!(format!("{set:?}"), r#"{"queue", "lora"}"#);
    let all: FieldSet = MetricField::ALL.into_iter().collect();
    assert_eq!(all.len(), MetricField::ALL.len());
}
