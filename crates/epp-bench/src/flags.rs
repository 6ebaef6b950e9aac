//! The flag table: every flag once, with the subcommands that take it, its help, how it
//! parses and how its effective value shows (for `--help` and the JSON report).

use std::time::Duration;

use epp_flags::Flag;
use epp_flags::duration::{format_go_duration, parse_go_duration};
use epp_flags::tool::{
    one_of, parse_bool as boolean, set_parsed as num, set_some as some, show_opt,
};

/// Subcommands a flag applies to (bit set).
pub const DIRECT: u8 = 1;
pub const PROXY: u8 = 2;
pub const NOOP: u8 = 4;
const LOAD: u8 = DIRECT | PROXY;

/// Every flag's value; `cli` turns it into a typed [`crate::cli::Command`].
#[derive(Clone, Debug)]
pub struct RawArgs {
    pub workload: String,
    pub prompt_bytes: usize,
    pub groups: usize,
    pub prompts_per_group: usize,
    pub system_prompt_len: usize,
    pub question_len: usize,
    pub distinct_prompts: usize,
    pub model: String,
    pub max_tokens: u32,
    pub concurrency: Option<usize>,
    pub rate: Option<f64>,
    pub arrival: String,
    pub max_in_flight: usize,
    pub requests: Option<u64>,
    pub duration: Option<Duration>,
    pub warmup: u64,
    pub timeout: Duration,
    pub seed: u64,
    pub json: Option<String>,
    pub quiet: bool,
    pub target: String,
    pub mode: String,
    pub chunk_bytes: usize,
    pub connections: Option<usize>,
    pub streams_per_connection: usize,
    pub tls: bool,
    pub baseline: bool,
    pub baseline_target: Option<String>,
    pub baseline_threads: Option<usize>,
    pub rounds: u32,
    pub url: Option<String>,
    pub served_by_header: String,
    pub listen: String,
    pub endpoint: String,
}

impl Default for RawArgs {
    fn default() -> Self {
        RawArgs {
            workload: "fixed".to_owned(),
            prompt_bytes: 4096,
            // inference-perf's shared_prefix as llm-d's 73%-capacity run uses it.
            groups: 150,
            prompts_per_group: 5,
            system_prompt_len: 6000,
            question_len: 1200,
            distinct_prompts: 64,
            model: "meta-llama/Llama-3.1-8B-Instruct".to_owned(),
            max_tokens: 16,
            concurrency: None,
            rate: None,
            arrival: "constant".to_owned(),
            max_in_flight: 10_000,
            requests: None,
            duration: None,
            warmup: 100,
            timeout: Duration::from_secs(30),
            seed: 1,
            json: None,
            quiet: false,
            target: "127.0.0.1:9002".to_owned(),
            mode: "full-duplex".to_owned(),
            chunk_bytes: 16 * 1024,
            connections: None,
            streams_per_connection: 100,
            tls: false,
            baseline: false,
            baseline_target: None,
            baseline_threads: None,
            rounds: 1,
            url: None,
            served_by_header: "x-sim-server".to_owned(),
            listen: "127.0.0.1:9102".to_owned(),
            endpoint: "127.0.0.1:8000".to_owned(),
        }
    }
}

/// A row of this tool's table.
type Row = Flag<RawArgs>;

#[rustfmt::skip]
pub const FLAGS: &[Row] = &[
    Row::new("workload", LOAD, "fixed (completions) | chat | shared-prefix (inference-perf)",
        |a, v| { a.workload = one_of(v, &["fixed", "chat", "shared-prefix"])?; Ok(()) },
        |a| a.workload.clone()),
    Row::new("prompt-bytes", LOAD, "prompt (fixed) or user message (chat) size in bytes",
        |a, v| num(&mut a.prompt_bytes, v), |a| a.prompt_bytes.to_string()),
    Row::new("groups", LOAD, "shared-prefix: groups (distinct system prompts)",
        |a, v| num(&mut a.groups, v), |a| a.groups.to_string()),
    Row::new("prompts-per-group", LOAD, "shared-prefix: questions per group",
        |a, v| num(&mut a.prompts_per_group, v), |a| a.prompts_per_group.to_string()),
    Row::new("system-prompt-len", LOAD, "shared-prefix: system prompt tokens (4 chars each)",
        |a, v| num(&mut a.system_prompt_len, v), |a| a.system_prompt_len.to_string()),
    Row::new("question-len", LOAD, "shared-prefix: question tokens (4 chars each)",
        |a, v| num(&mut a.question_len, v), |a| a.question_len.to_string()),
    Row::new("distinct-prompts", LOAD, "fixed/chat: distinct prompts, sent in a cycle",
        |a, v| num(&mut a.distinct_prompts, v), |a| a.distinct_prompts.to_string()),
    Row::new("model", LOAD, "model of every request",
        |a, v| { a.model = v.to_owned(); Ok(()) }, |a| a.model.clone()),
    Row::new("max-tokens", LOAD, "max_tokens of every request",
        |a, v| num(&mut a.max_tokens, v), |a| a.max_tokens.to_string()),
    Row::new("concurrency", LOAD, "closed loop: requests in flight (default 1 without --rate)",
        |a, v| some(&mut a.concurrency, v), |a| show_opt(&a.concurrency)),
    Row::new("rate", LOAD, "open loop: requests started per second",
        |a, v| some(&mut a.rate, v), |a| show_opt(&a.rate)),
    Row::new("arrival", LOAD, "open loop gaps: constant | poisson",
        |a, v| { a.arrival = one_of(v, &["constant", "poisson"])?; Ok(()) }, |a| a.arrival.clone()),
    Row::new("max-in-flight", LOAD, "open loop: starts beyond this many in flight count as overload",
        |a, v| num(&mut a.max_in_flight, v), |a| a.max_in_flight.to_string()),
    Row::new("requests", LOAD, "measured requests (default 1000 without --duration)",
        |a, v| some(&mut a.requests, v), |a| show_opt(&a.requests)),
    Row::new("duration", LOAD, "measure for this long (Go syntax: 30s, 2m)",
        |a, v| { a.duration = Some(duration(v)?); Ok(()) },
        |a| a.duration.map_or_else(|| "none".to_owned(), format_go_duration)),
    Row::new("warmup", LOAD, "requests sent and not measured before each target's run",
        |a, v| num(&mut a.warmup, v), |a| a.warmup.to_string()),
    Row::new("timeout", LOAD, "per request",
        |a, v| { a.timeout = duration(v)?; Ok(()) }, |a| format_go_duration(a.timeout)),
    Row::new("seed", LOAD, "seed of prompts and Poisson gaps",
        |a, v| num(&mut a.seed, v), |a| a.seed.to_string()),
    Row::new("json", LOAD, "also write the result as JSON to this file",
        |a, v| { a.json = Some(v.to_owned()); Ok(()) }, |a| show_opt(&a.json)),
    Row::new("quiet", LOAD, "no progress line on stderr",
        |a, v| { a.quiet = boolean(v)?; Ok(()) }, |a| a.quiet.to_string()).as_switch(),
    Row::new("target", DIRECT, "ext_proc server, host:port",
        |a, v| { a.target = v.to_owned(); Ok(()) }, |a| a.target.clone()),
    Row::new("mode", DIRECT, "body mode: full-duplex (FULL_DUPLEX_STREAMED) | buffered",
        |a, v| { a.mode = one_of(v, &["full-duplex", "buffered"])?; Ok(()) }, |a| a.mode.clone()),
    Row::new("chunk-bytes", DIRECT, "full-duplex body chunk size (Envoy's buffer: 16 KiB)",
        |a, v| num(&mut a.chunk_bytes, v), |a| a.chunk_bytes.to_string()),
    Row::new("connections", DIRECT, "HTTP/2 connections the streams share (default from --streams-per-connection)",
        |a, v| some(&mut a.connections, v), |a| show_opt(&a.connections)),
    Row::new("streams-per-connection", DIRECT, "concurrent streams per connection when --connections is not set",
        |a, v| num(&mut a.streams_per_connection, v), |a| a.streams_per_connection.to_string()),
    Row::new("tls", DIRECT | NOOP, "TLS (client: no certificate checks; no-op server: self-signed), for target and baseline",
        |a, v| { a.tls = boolean(v)?; Ok(()) }, |a| a.tls.to_string()).as_switch(),
    Row::new("baseline", DIRECT, "also measure an in-process no-op ext_proc server and print the ratio",
        |a, v| { a.baseline = boolean(v)?; Ok(()) }, |a| a.baseline.to_string()).as_switch(),
    Row::new("baseline-target", DIRECT, "measure this running no-op server (epp-bench noop) as the baseline",
        |a, v| { a.baseline_target = Some(v.to_owned()); Ok(()) }, |a| show_opt(&a.baseline_target)),
    Row::new("baseline-threads", DIRECT, "runtime threads of the in-process no-op (default: CPUs)",
        |a, v| some(&mut a.baseline_threads, v), |a| show_opt(&a.baseline_threads)),
    Row::new("rounds", DIRECT, "alternate target and baseline this many times (spreads drift)",
        |a, v| num(&mut a.rounds, v), |a| a.rounds.to_string()),
    Row::new("url", PROXY, "where to POST, e.g. http://127.0.0.1:8081/v1/completions",
        |a, v| { a.url = Some(v.to_owned()); Ok(()) }, |a| show_opt(&a.url)),
    Row::new("served-by-header", PROXY, "response header naming the server that answered",
        |a, v| { a.served_by_header = v.to_owned(); Ok(()) }, |a| a.served_by_header.clone()),
    Row::new("listen", NOOP, "address to serve ext_proc on",
        |a, v| { a.listen = v.to_owned(); Ok(()) }, |a| a.listen.clone()),
    Row::new("endpoint", NOOP | DIRECT, "the destination the no-op server returns",
        |a, v| { a.endpoint = v.to_owned(); Ok(()) }, |a| a.endpoint.clone()),
];

fn duration(value: &str) -> Result<Duration, String> {
    parse_go_duration(value).map_err(|e| e.to_string())
}
