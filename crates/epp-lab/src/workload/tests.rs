//! Workload generation tests: tokens and text, shared_prefix semantics, stages, multi-turn,
//! traces.

use std::path::Path;

use super::*;

fn shared_prefix(
    groups: u32,
    per: u32,
    multi: bool,
    stages: Vec<StageSpec>,
    kind: LoadType,
) -> WorkloadSpec {
    WorkloadSpec {
        builtin: None,
        inference_perf: None,
        data: Some(DataSpec {
            kind: DataType::SharedPrefix,
            shared_prefix: Some(SharedPrefixSpec {
                num_groups: groups,
                num_prompts_per_group: per,
                system_prompt_len: Length::Fixed(100),
                question_len: Length::Fixed(20),
                output_len: Length::Fixed(8),
                enable_multi_turn_chat: multi,
                ..SharedPrefixSpec::default()
            }),
            input_distribution: None,
            output_distribution: None,
            path: None,
            trace: None,
        }),
        load: Some(load(stages, kind)),
        trace: None,
    }
}

fn load(stages: Vec<StageSpec>, kind: LoadType) -> LoadSpec {
    LoadSpec {
        kind,
        stages,
        warmup_stages: 0,
        max_concurrency: None,
        interval: None,
        num_workers: None,
        worker_max_concurrency: None,
        worker_max_tcp_connections: None,
        request_timeout: None,
        circuit_breakers: None,
        sweep: None,
        trace: None,
    }
}

fn stage(rate: f64, duration: f64) -> StageSpec {
    StageSpec {
        rate,
        duration,
        concurrency_level: None,
        num_requests: None,
    }
}

fn at(r: &RequestSpec) -> f64 {
    match r.arrival {
        Arrival::At(t) => t,
        Arrival::AfterPrevious { .. } => panic!("expected At"),
    }
}

// === tokens ===

#[test]
fn render_is_four_bytes_per_token_and_prefix_preserving() {
    let tokens: Vec<u32> = (0..100).map(|i| i * 331 % VOCAB).collect();
    let text = render(&tokens);
    assert_eq!(text.len(), 4 * tokens.len());
    assert!(text.is_ascii());
    for cut in [0, 1, 17, 99] {
        assert!(text.starts_with(&render(&tokens[..cut])));
    }
    assert_ne!(render(&[1]), render(&[2]));
    assert_eq!(render(&[0, 63]), "AAAAAAA/");
    let prompt = Prompt::new(tokens.clone());
    assert_eq!(prompt.text(), text);
    assert!(std::ptr::eq(prompt.text(), prompt.text()), "rendered once");
}

#[test]
fn output_tokens_are_deterministic_and_in_vocab() {
    let a: Vec<u32> = (0..50).map(|n| output_token(7, n)).collect();
    let b: Vec<u32> = (0..50).map(|n| output_token(7, n)).collect();
    let c: Vec<u32> = (0..50).map(|n| output_token(8, n)).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().all(|&t| t < VOCAB));
}

// === shared_prefix ===

#[test]
fn shared_prefix_reuses_prompts_in_passes() {
    // 4 groups x 3 = 12 prompts; constant 10 QPS x 3.6 s = 36 requests = 3 passes.
    let spec = shared_prefix(4, 3, false, vec![stage(10.0, 3.6)], LoadType::Constant);
    let w = Workload::generate(&spec, 1, Path::new(".")).expect("generate");
    assert_eq!(w.requests.len(), 36);
    for (i, r) in w.requests.iter().enumerate() {
        let again = &w.requests[(i + 12) % 36];
        assert!(
            Arc::ptr_eq(&r.prompt, &again.prompt),
            "request {i} repeats after a pass"
        );
        assert_eq!(r.prompt.len(), 120);
        assert_eq!(r.output_tokens, 8);
        assert!((at(r) - i as f64 / 10.0).abs() < 1e-9, "constant gaps");
    }
    let first_pass: std::collections::BTreeSet<*const Prompt> = w.requests[..12]
        .iter()
        .map(|r| Arc::as_ptr(&r.prompt))
        .collect();
    assert_eq!(first_pass.len(), 12, "each prompt once per pass");
    // Shuffled: the first pass is not in group order.
    let groups: Vec<u32> = w.requests[..12]
        .iter()
        .map(|r| r.group.expect("group"))
        .collect();
    let mut sorted = groups.clone();
    sorted.sort();
    assert_ne!(groups, sorted);
}

#[test]
fn prompts_of_a_group_share_the_system_prompt() {
    let spec = shared_prefix(3, 4, false, vec![stage(12.0, 1.0)], LoadType::Constant);
    let w = Workload::generate(&spec, 5, Path::new(".")).expect("generate");
    for a in &w.requests {
        for b in &w.requests {
            if Arc::ptr_eq(&a.prompt, &b.prompt) {
                continue;
            }
            let common = a
                .prompt
                .tokens
                .iter()
                .zip(&b.prompt.tokens)
                .take_while(|(x, y)| x == y)
                .count();
            if a.group == b.group {
                assert!(common >= 100, "same group shares 100 tokens, got {common}");
                assert!(a.prompt.text().starts_with(&b.prompt.text()[..400]));
            } else {
                assert!(common < 100, "different groups diverge");
            }
        }
    }
}

#[test]
fn same_seed_same_workload_other_seed_differs() {
    let spec = shared_prefix(5, 2, false, vec![stage(20.0, 2.0)], LoadType::Poisson);
    let a = Workload::generate(&spec, 9, Path::new(".")).expect("a");
    let b = Workload::generate(&spec, 9, Path::new(".")).expect("b");
    let c = Workload::generate(&spec, 10, Path::new(".")).expect("c");
    let key = |w: &Workload| -> Vec<(u64, Vec<u32>)> {
        w.requests
            .iter()
            .map(|r| (at(r).to_bits(), r.prompt.tokens.clone()))
            .collect()
    };
    assert_eq!(key(&a), key(&b));
    assert_ne!(key(&a), key(&c));
}

#[test]
fn poisson_stage_counts_follow_rate_times_duration() {
    let mut spec = shared_prefix(
        2,
        2,
        false,
        vec![stage(50.0, 20.0), stage(200.0, 10.0)],
        LoadType::Poisson,
    );
    if let Some(load) = spec.load.as_mut() {
        load.warmup_stages = 1;
    }
    let w = Workload::generate(&spec, 3, Path::new(".")).expect("generate");
    let count = |s: u32| w.requests.iter().filter(|r| r.stage == s).count() as f64;
    // Expected 1000 and 2000; 5 standard deviations is about 160 and 225.
    assert!((count(0) - 1000.0).abs() < 160.0, "{}", count(0));
    assert!((count(1) - 2000.0).abs() < 225.0, "{}", count(1));
    assert!(
        w.requests.windows(2).all(|p| at(&p[0]) <= at(&p[1])),
        "sorted"
    );
    assert!(
        w.requests
            .iter()
            .filter(|r| r.stage == 1)
            .all(|r| (20.0..30.0).contains(&at(r)))
    );
    assert_eq!(w.stages.len(), 2);
    assert!(w.stages[0].warmup && !w.stages[1].warmup);
    assert_eq!(w.stages[1].start_s, 20.0);
    assert_eq!(w.stages[1].rate, Some(200.0));
}

#[test]
fn infinite_rate_sends_one_pass_at_once() {
    let mut spec = shared_prefix(
        4,
        4,
        false,
        vec![stage(f64::INFINITY, 0.0)],
        LoadType::Poisson,
    );
    if let Some(load) = spec.load.as_mut() {
        load.max_concurrency = Some(3);
    }
    let w = Workload::generate(&spec, 1, Path::new(".")).expect("generate");
    assert_eq!(w.requests.len(), 16);
    assert!(w.requests.iter().all(|r| at(r) == 0.0));
    let distinct: std::collections::BTreeSet<*const Prompt> =
        w.requests.iter().map(|r| Arc::as_ptr(&r.prompt)).collect();
    assert_eq!(distinct.len(), 16, "each (group, question) pair once");
    assert_eq!(w.max_concurrency, Some(3));
    assert_eq!(w.stages[0].rate, None);
}

#[test]
fn multi_turn_context_grows_by_answer_and_question() {
    // 2 x 2 = 4 sessions; 12 requests = 3 rounds each.
    let spec = shared_prefix(2, 2, true, vec![stage(12.0, 1.0)], LoadType::Constant);
    let w = Workload::generate(&spec, 4, Path::new(".")).expect("generate");
    assert_eq!(w.requests.len(), 12);
    for (i, r) in w.requests.iter().enumerate() {
        assert_eq!(r.session, Some((i % 4) as u32));
        assert_eq!(r.round, Some((i / 4) as u32));
        if i >= 4 {
            let prev = &w.requests[i - 4];
            let p = &prev.prompt.tokens;
            let t = &r.prompt.tokens;
            assert_eq!(t.len(), p.len() + 8 + 20);
            assert_eq!(&t[..p.len()], &p[..], "starts with the previous prompt");
            let answer: Vec<u32> = (0..8).map(|n| output_token(prev.output_key, n)).collect();
            assert_eq!(
                &t[p.len()..p.len() + 8],
                &answer[..],
                "then the previous answer"
            );
            let question = &w.requests[i % 4].prompt.tokens[100..];
            assert_eq!(&t[p.len() + 8..], question, "then the question again");
        } else {
            assert_eq!(r.prompt.len(), 120);
        }
    }
}

#[test]
fn random_data_lengths_stay_in_bounds() {
    let spec = WorkloadSpec {
        data: Some(DataSpec {
            kind: DataType::Random,
            shared_prefix: None,
            input_distribution: Some(Distribution {
                min: 50,
                max: 80,
                mean: 70.0,
                std_dev: 30.0,
                total_count: None,
            }),
            output_distribution: Some(Distribution {
                min: 5,
                max: 5,
                mean: 5.0,
                std_dev: 0.0,
                total_count: None,
            }),
            path: None,
            trace: None,
        }),
        load: Some(load(vec![stage(100.0, 1.0)], LoadType::Constant)),
        ..WorkloadSpec::default()
    };
    let w = Workload::generate(&spec, 1, Path::new(".")).expect("generate");
    assert_eq!(w.requests.len(), 100);
    assert!(
        w.requests
            .iter()
            .all(|r| (50..=80).contains(&r.prompt.len()) && r.output_tokens == 5)
    );
    assert!(
        w.requests.iter().any(|r| r.prompt.len() == 80),
        "clamped at max"
    );
}

#[test]
fn spec_must_have_exactly_one_source() {
    let none = WorkloadSpec::default();
    assert!(Workload::generate(&none, 1, Path::new(".")).is_err());
    let mut both = shared_prefix(1, 1, false, vec![stage(1.0, 1.0)], LoadType::Constant);
    both.trace = Some(TraceSpec {
        format: TraceFormat::Mooncake,
        path: "x".into(),
        block_size: None,
        speedup: 1.0,
        max_concurrency: None,
        max_requests: None,
    });
    let err = validate(&both).expect_err("both").to_string();
    assert!(err.contains("workload.trace"), "{err}");
}

// === traces ===

fn trace(
    format: TraceFormat,
    block_size: Option<u32>,
    lines: &str,
) -> (tempfile::TempDir, TraceSpec) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("t.jsonl"), lines).expect("write");
    let spec = TraceSpec {
        format,
        path: "t.jsonl".into(),
        block_size,
        speedup: 1.0,
        max_concurrency: None,
        max_requests: None,
    };
    (dir, spec)
}

fn run_trace(dir: &tempfile::TempDir, spec: TraceSpec) -> Result<Workload, WorkloadError> {
    let spec = WorkloadSpec {
        trace: Some(spec),
        ..WorkloadSpec::default()
    };
    Workload::generate(&spec, 1, dir.path())
}

#[test]
fn mooncake_hash_ids_expand_to_shared_blocks() {
    let lines = "\
{\"timestamp\": 1000, \"input_length\": 10, \"output_length\": 3, \"hash_ids\": [1, 2, 3]}
{\"timestamp\": 0, \"input_length\": 7, \"output_length\": 4, \"hash_ids\": [1, 5]}

{\"timestamp\": 2500, \"input_length\": 6, \"output_length\": 2, \"hash_ids\": [1], \"session_id\": \"s\"}
{\"delay\": 500, \"input_length\": 9, \"output_length\": 2, \"hash_ids\": [1, 2], \"session_id\": \"s\"}
";
    let (dir, spec) = trace(TraceFormat::Mooncake, Some(4), lines);
    let w = run_trace(&dir, spec).expect("mooncake");
    assert_eq!(w.requests.len(), 4);
    let (first, second) = (&w.requests[0], &w.requests[1]);
    assert_eq!(at(first), 0.0, "sorted by timestamp");
    assert_eq!(at(second), 1.0, "milliseconds");
    assert_eq!(first.prompt.len(), 7);
    assert_eq!(second.prompt.len(), 10, "last block truncated");
    assert_eq!(
        first.prompt.tokens[..4],
        second.prompt.tokens[..4],
        "hash 1 is the same block"
    );
    assert_ne!(first.prompt.tokens[4..7], second.prompt.tokens[4..7]);
    assert_eq!(second.output_tokens, 3);
    let follow = &w.requests[3];
    assert_eq!(follow.arrival, Arrival::AfterPrevious { think_s: 0.5 });
    assert_eq!((follow.session, follow.round), (Some(0), Some(1)));
    assert_eq!(w.requests[2].round, Some(0));
}

#[test]
fn trace_errors_name_line_and_field() {
    let table = [
        (
            "{\"timestamp\": 0, \"output_length\": 3}\n",
            "line 1",
            "input_length",
        ),
        (
            "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1}\n{\"timestamp\": 0, \"input_length\": \"x\", \"output_length\": 1}\n",
            "line 2",
            "input_length",
        ),
        (
            "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [1, -2]}\n",
            "line 1",
            "hash_ids[1]",
        ),
        ("not json\n", "line 1", "(line)"),
    ];
    for (lines, line, field) in table {
        let (dir, spec) = trace(TraceFormat::Mooncake, None, lines);
        let err = run_trace(&dir, spec).expect_err(field).to_string();
        assert!(err.contains(line) && err.contains(field), "{err}");
    }
}

#[test]
fn request_log_expands_block_hashes() {
    let lines = "\
{\"arrival_unix_ms\": 1700000000500.0, \"model\": \"m\", \"block_size_bytes\": 16, \"prompt_block_hashes\": [11, 12], \"prompt_bytes\": 40, \"input_tokens\": null, \"output_tokens\": null, \"session\": null}
{\"arrival_unix_ms\": 1700000001000.0, \"model\": \"m\", \"block_size_bytes\": 16, \"prompt_block_hashes\": [11, 13, 14], \"prompt_bytes\": 48, \"input_tokens\": 6, \"output_tokens\": 9, \"session\": \"abc\"}
";
    let (dir, spec) = trace(TraceFormat::EppRequestLog, None, lines);
    let w = run_trace(&dir, spec).expect("log");
    let (a, b) = (&w.requests[0], &w.requests[1]);
    assert_eq!(at(a), 0.0);
    assert!((at(b) - 0.5).abs() < 1e-9);
    assert_eq!(
        a.prompt.len(),
        10,
        "prompt_bytes / 4, padded past the hashed blocks"
    );
    assert_eq!(b.prompt.len(), 6, "input_tokens, truncated");
    assert_eq!(
        a.prompt.tokens[..4],
        b.prompt.tokens[..4],
        "block 11 shared"
    );
    assert_ne!(a.prompt.tokens[4..6], b.prompt.tokens[4..6]);
    assert_eq!(a.output_tokens, 128);
    assert_eq!(b.output_tokens, 9);
    assert_eq!((a.session, b.session), (None, Some(0)));
    assert_eq!(w.stages.len(), 1);
    assert!((w.stages[0].duration_s - 0.5).abs() < 1e-9);
}

#[test]
fn request_log_reads_lines_as_epp_writes_them() {
    // The exact shape of `epp --request-log-file` (see README): 64-bit hashes beyond f64's
    // exact range, and fields the lab does not use.
    let lines = "\
{\"arrival_unix_ms\":1700000000123.0,\"model\":\"food-review\",\"target_model\":\"food-review-v2\",\"block_size_bytes\":64,\"prompt_block_hashes\":[13865128797338874357,13105841756802698806],\"prompt_bytes\":140,\"input_tokens\":30,\"output_tokens\":12,\"cached_tokens\":16,\"session\":\"chat-9\",\"endpoint\":\"10.0.0.1:8000\",\"status\":200}
{\"arrival_unix_ms\":1700000000623.0,\"model\":\"food-review\",\"target_model\":\"food-review-v2\",\"block_size_bytes\":64,\"prompt_block_hashes\":[13865128797338874357],\"prompt_bytes\":70,\"input_tokens\":null,\"output_tokens\":null,\"cached_tokens\":null,\"session\":null,\"endpoint\":\"10.0.0.2:8000\",\"status\":null}
";
    let (dir, spec) = trace(TraceFormat::EppRequestLog, None, lines);
    let w = run_trace(&dir, spec).expect("an epp request log");
    assert_eq!(w.requests.len(), 2);
    let (a, b) = (&w.requests[0], &w.requests[1]);
    assert_eq!((a.prompt.len(), a.output_tokens), (30, 12));
    assert_eq!(b.prompt.len(), 17, "prompt_bytes / 4 without token counts");
    assert_eq!(
        a.prompt.tokens[..16],
        b.prompt.tokens[..16],
        "the shared first block"
    );
    assert!((at(b) - 0.5).abs() < 1e-9);
}

#[test]
fn absurd_loads_are_refused_before_generating() {
    let spec = shared_prefix(2, 2, false, vec![stage(1e9, 1000.0)], LoadType::Poisson);
    let error = validate(&spec).expect_err("too many requests");
    assert!(error.to_string().contains("load.stages"), "{error}");
}

#[test]
fn trace_limits_are_refused_by_line() {
    let huge = "{\"timestamp\": 0, \"input_length\": 99999999999, \"output_length\": 1, \"hash_ids\": [1]}\n";
    let (dir, spec) = trace(TraceFormat::Mooncake, None, huge);
    let error = run_trace(&dir, spec)
        .expect_err("absurd input length")
        .to_string();
    assert!(
        error.contains("line 1") && error.contains("input_length"),
        "{error}"
    );
    let long = format!(
        "{{\"timestamp\": 0, \"pad\": \"{}\"}}\n",
        "x".repeat(5 << 20)
    );
    let (dir, spec) = trace(TraceFormat::Mooncake, None, &long);
    let error = run_trace(&dir, spec).expect_err("a 5 MB line").to_string();
    assert!(
        error.contains("line 1") && error.contains("bytes"),
        "{error}"
    );
}
