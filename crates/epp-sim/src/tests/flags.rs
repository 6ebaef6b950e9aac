//! The flag table: syntax, values, exit codes.

use std::time::Duration;

use super::*;

fn parse(args: &[&str]) -> Result<SimArgs, ArgsError> {
    SimArgs::parse(args)
}

#[test]
fn defaults_hold_without_flags() {
    let args = parse(&[]).unwrap();
    assert_eq!(args, SimArgs::default());
    assert_eq!(args.base_port, 8000);
    assert_eq!(args.config.effective_max_model_len(), 32_768);
}

#[test]
fn flags_take_separate_or_inline_values() {
    let args = parse(&[
        "--model",
        "m",
        "--max-num-seqs=2",
        "--servers",
        "3",
        "--base-port=9000",
        "--host",
        "0.0.0.0",
        "--time-scale",
        "0.1",
        "--step-base-ms",
        "5",
        "--decode-ms-per-context-token",
        "0.0001",
        "--output-length",
        "random",
        "--seed",
        "9",
        "--gpu-cache-usage-metric",
        "false",
        "--num-gpu-blocks",
        "100",
        "--block-size",
        "64",
    ])
    .unwrap();
    let c = &args.config;
    assert_eq!(
        (
            c.model.as_str(),
            c.max_num_seqs,
            args.servers,
            args.base_port
        ),
        ("m", 2, 3, 9000)
    );
    assert_eq!(args.host.to_string(), "0.0.0.0");
    assert_eq!(
        (c.time_scale, c.seed, c.output_length),
        (0.1, 9, OutputLength::Random)
    );
    assert_eq!(c.step_time.base, Duration::from_millis(5));
    assert_eq!(c.step_time.per_context_token, Duration::from_nanos(100));
    assert_eq!(c.kv_usage_metric, KvUsageMetric::KvCacheOnly);
    assert_eq!(
        c.effective_max_model_len(),
        6400,
        "capped by the KV capacity"
    );
}

#[test]
fn lora_modules_accept_lists_vllm_pairs_and_json() {
    let cases: [(&[&str], &[&str]); 4] = [
        (&["--lora-modules", "a,b"], &["a", "b"]),
        (&["--lora-modules", "a=/path/a, b=/path/b"], &["a", "b"]),
        (
            &["--lora-modules", r#"{"name": "food-review-1"}"#],
            &["food-review-1"],
        ),
        (
            &["--lora-modules", r#"[{"name": "x"}]"#, "--lora-modules=y"],
            &["x", "y"],
        ),
    ];
    for (args, want) in cases {
        assert_eq!(parse(args).unwrap().config.lora_modules, want, "{args:?}");
    }
}

#[test]
fn fake_metrics_parse_from_the_flag() {
    let args = parse(&[
        "--fake-metrics",
        r#"{"running-requests":3,"loras":[{"running":"a","waiting":"","timestamp":5}]}"#,
    ])
    .unwrap();
    let fake = args.config.fake_metrics.unwrap();
    assert_eq!(fake.running_requests, Some(3));
    assert_eq!(fake.loras.unwrap()[0].running, "a");
}

#[test]
fn errors_map_to_exit_codes() {
    let cases: [(&[&str], u8); 11] = [
        (&["--help"], 0),
        (&["--bogus", "1"], 2),
        (&["--max-num-seqs"], 2),
        (&["stray"], 2),
        (&["--max-num-seqs", "many"], 1),
        (&["--max-num-seqs", "0"], 1),
        (&["--time-scale", "0"], 1),
        (&["--output-length", "sometimes"], 1),
        (&["--fake-metrics", "{"], 1),
        (&["--max-model-len", "999999"], 1),
        (&["--servers", "2", "--base-port", "65535"], 1),
    ];
    for (args, code) in cases {
        let error = parse(args).unwrap_err();
        assert_eq!(error.exit_code(), code, "{args:?}: {error}");
    }
    let message = parse(&["--max-num-seqs", "many"]).unwrap_err().to_string();
    assert!(
        message.contains("--max-num-seqs") && message.contains("many"),
        "{message}"
    );
}

#[test]
fn usage_lists_every_flag_with_its_default() {
    let text = usage();
    for flag in [
        "--model",
        "--servers",
        "--base-port",
        "--time-scale",
        "--fake-metrics",
    ] {
        assert!(text.contains(flag), "{flag}");
    }
    assert!(text.contains("(default: 1024)"));
}

#[test]
fn kv_event_flags_fill_the_kv_events_config() {
    let args = parse(&[
        "--kv-events-port",
        "5557",
        "--kv-events-replay-port=5600",
        "--kv-events-topic",
        "kv",
        "--kv-events-hash-bytes",
        "--kv-events-buffer-steps",
        "50",
        "--kv-events-drop-ratio",
        "0.25",
        "--kv-events-delay",
        "150ms",
        "--kv-events-reorder-ratio=1",
    ])
    .unwrap();
    let expected = KvEventsConfig {
        port: Some(5557),
        replay_port: Some(5600),
        topic: "kv".to_owned(),
        hash_form: HashForm::Bytes32,
        buffer_steps: 50,
        drop_ratio: 0.25,
        delay: Duration::from_millis(150),
        reorder_ratio: 1.0,
    };
    assert_eq!(args.config.kv_events, expected);
    assert!(args.config.engine_config().emit_cache_events);
    // Port 0 is off, as is the default; the engine then records no events.
    let off = parse(&["--kv-events-port", "0"]).unwrap();
    assert_eq!(off.config.kv_events, KvEventsConfig::default());
    assert!(!off.config.engine_config().emit_cache_events);
    let usage = usage();
    assert!(usage.contains("--kv-events-port") && usage.contains("--kv-events-delay"));
}

#[test]
fn bad_kv_event_values_name_their_flag() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--kv-events-port", "1", "--kv-events-drop-ratio", "1.5"],
            "--kv-events-drop-ratio must be in [0, 1], got 1.5",
        ),
        (
            &["--kv-events-port", "1", "--kv-events-reorder-ratio", "-0.1"],
            "--kv-events-reorder-ratio must be in [0, 1]",
        ),
        (
            &["--kv-events-drop-ratio", "NaN"],
            "--kv-events-drop-ratio must be in [0, 1]",
        ),
        (
            &["--kv-events-drop-ratio", "half"],
            "--kv-events-drop-ratio",
        ),
        (&["--kv-events-delay", "5"], "--kv-events-delay"),
        (&["--kv-events-port", "70000"], "--kv-events-port"),
        (
            &["--kv-events-buffer-steps", "0"],
            "--kv-events-buffer-steps must be in 1..=1000000",
        ),
        (
            &["--kv-events-replay-port", "5600"],
            "--kv-events-replay-port needs --kv-events-port",
        ),
        (
            &["--kv-events-port", "65535", "--servers", "2"],
            "--kv-events-port 65535 + --servers 2 runs past port 65535",
        ),
    ];
    for (args, wanted) in cases {
        let error = parse(args).unwrap_err();
        assert_eq!(error.exit_code(), 1, "{args:?}: {error}");
        let message = error.to_string();
        assert!(message.contains(wanted), "{args:?}: {message}");
    }
}

#[test]
fn embedding_dim_is_set_and_bounded() {
    assert_eq!(parse(&[]).unwrap().config.embedding_dim, 1024);
    let args = parse(&["--embedding-dim", "8192"]).unwrap();
    assert_eq!(args.config.embedding_dim, 8192);
    for (value, message) in [
        ("0", "--embedding-dim must be at least 1"),
        ("8193", "--embedding-dim must be at most 8192, got 8193"),
    ] {
        let error = parse(&["--embedding-dim", value]).unwrap_err();
        assert_eq!(error.exit_code(), 1, "{value}");
        assert!(error.to_string().contains(message), "{error}");
    }
}
