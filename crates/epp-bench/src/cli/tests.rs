use std::time::Duration;

use super::*;

fn parse(line: &str) -> Result<Command, ArgsError> {
    Command::parse(&line.split_whitespace().collect::<Vec<_>>())
}

fn direct_of(line: &str) -> DirectArgs {
    match parse(line) {
        Ok(Command::Direct(args)) => args,
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn direct_defaults() {
    let args = direct_of("direct");
    assert_eq!(args.target, "127.0.0.1:9002");
    assert_eq!(args.mode, BodyMode::FullDuplex);
    assert_eq!(args.chunk_bytes, 16_384);
    assert_eq!(args.connections, 1);
    assert_eq!(args.transport, Transport::Plaintext);
    assert_eq!(args.baseline, Baseline::None);
    assert_eq!(args.load.plan.shape, Shape::Concurrency(1));
    assert_eq!(args.load.plan.stop, StopAt::Requests(1000));
    assert_eq!(
        args.load.workload.kind,
        WorkloadKind::Fixed { prompt_bytes: 4096 }
    );
    assert!(!args.load.workload.stream);
    assert_eq!(args.load.config["mode"], "full-duplex");
    assert!(
        !args.load.config.contains_key("url"),
        "proxy flags stay out"
    );
}

#[test]
fn direct_flags() {
    let args = direct_of(
        "direct --target 10.1.1.1:9002 --mode=buffered --chunk-bytes 1000 --concurrency 150 \
         --duration 30s --tls --baseline --workload shared-prefix --groups 3 --rounds 2",
    );
    assert_eq!(args.mode, BodyMode::Buffered);
    assert_eq!(args.chunk_bytes, 1000);
    // 150 streams at 100 per connection.
    assert_eq!(args.connections, 2);
    assert_eq!(args.transport, Transport::InsecureTls);
    assert!(
        matches!(args.baseline, Baseline::InProcess { ref endpoint, .. } if endpoint == "127.0.0.1:8000")
    );
    assert_eq!(
        args.load.plan.stop,
        StopAt::Duration(Duration::from_secs(30))
    );
    assert!(matches!(
        args.load.workload.kind,
        WorkloadKind::SharedPrefix {
            groups: 3,
            prompts_per_group: 5,
            ..
        }
    ));
    assert_eq!(args.rounds, 2);
}

#[test]
fn rate_and_proxy() {
    let Ok(Command::Proxy(args)) =
        parse("proxy --url http://h:1/v1/completions --rate 50 --arrival poisson --requests 10")
    else {
        panic!("proxy parses");
    };
    assert_eq!(
        args.load.plan.shape,
        Shape::Rate {
            per_second: 50.0,
            arrival: Arrival::Poisson,
            max_in_flight: 10_000
        }
    );
    assert!(args.load.workload.stream, "proxy requests stream");
    assert_eq!(args.load.plan.stop, StopAt::Requests(10));
}

#[test]
fn noop_flags() {
    let Ok(Command::Noop(args)) = parse("noop --listen 127.0.0.1:1 --endpoint 10.0.0.1:8000")
    else {
        panic!("noop parses");
    };
    assert_eq!(
        (args.listen.as_str(), args.endpoint.as_str()),
        ("127.0.0.1:1", "10.0.0.1:8000")
    );
}

#[test]
fn errors_and_exit_codes() {
    let cases: &[(&str, u8, &str)] = &[
        ("", 0, "help requested"),
        ("direct --help", 0, "help requested"),
        ("bogus", 2, "unknown subcommand"),
        ("direct --url x", 2, "unknown flag --url for direct"),
        ("noop --concurrency 3", 2, "unknown flag"),
        ("direct --target", 2, "needs a value"),
        ("direct extra", 2, "unexpected argument"),
        (
            "direct --concurrency x",
            1,
            "invalid value \"x\" for --concurrency",
        ),
        (
            "direct --mode streamed",
            1,
            "expected one of full-duplex, buffered",
        ),
        ("direct --duration 5", 1, "missing unit"),
        ("direct --tls=maybe", 1, "expected true or false"),
        ("direct --concurrency 2 --rate 5", 1, "not both"),
        ("direct --requests 5 --duration 1s", 1, "not both"),
        ("direct --rate 0", 1, "positive"),
        ("direct --concurrency 0", 1, "at least 1"),
        ("direct --baseline --baseline-target h:1", 1, "not both"),
        (
            "direct --workload shared-prefix --groups 0",
            1,
            "at least 1",
        ),
        ("proxy", 1, "needs --url"),
    ];
    for (line, code, text) in cases {
        let error = parse(line).expect_err(line);
        assert_eq!(error.exit_code(), *code, "{line}: {error}");
        assert!(error.to_string().contains(text), "{line}: {error}");
    }
}

#[test]
fn usage_lists_each_subcommands_flags() {
    let direct = usage(Some("direct"));
    assert!(direct.contains("--chunk-bytes") && direct.contains("(default: 16384)"));
    assert!(!direct.contains("--url"));
    assert!(usage(None).contains("noop flags:"));
}
