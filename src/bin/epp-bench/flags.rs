//! The flag table: every flag once, with the subcommands that take it, its help, how it
//! parses and how its effective value shows (for `--help` and the JSON report).

use std::time::Duration;

use epp::cli::duration::{format_go_duration, parse_go_duration};

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

type Setter = fn(&mut RawArgs, &str) -> Result<(), String>;
type Shower = fn(&RawArgs) -> String;

/// One row of the table. A switch takes no value (`--tls`), or `--tls=true|false`.
pub struct Flag {
    pub name: &'static str,
    pub scope: u8,
    pub switch: bool,
    pub help: &'static str,
    pub set: Setter,
    pub show: Shower,
}

const fn flag(
    name: &'static str,
    scope: u8,
    help: &'static str,
    set: Setter,
    show: Shower,
) -> Flag {
    Flag {
        name,
        scope,
        switch: false,
        help,
        set,
        show,
    }
}

const fn switch(
    name: &'static str,
    scope: u8,
    help: &'static str,
    set: Setter,
    show: Shower,
) -> Flag {
    Flag {
        name,
        scope,
        switch: true,
        help,
        set,
        show,
    }
}

#[rustfmt::skip]
pub const FLAGS: &[Flag] = &[
    flag("workload", LOAD, "fixed (completions) | chat | shared-prefix (inference-perf)",
        |a, v| { a.workload = one_of(v, &["fixed", "chat", "shared-prefix"])?; Ok(()) },
        |a| a.workload.clone()),
    flag("prompt-bytes", LOAD, "prompt (fixed) or user message (chat) size in bytes",
        |a, v| num(&mut a.prompt_bytes, v), |a| a.prompt_bytes.to_string()),
    flag("groups", LOAD, "shared-prefix: groups (distinct system prompts)",
        |a, v| num(&mut a.groups, v), |a| a.groups.to_string()),
    flag("prompts-per-group", LOAD, "shared-prefix: questions per group",
        |a, v| num(&mut a.prompts_per_group, v), |a| a.prompts_per_group.to_string()),
    flag("system-prompt-len", LOAD, "shared-prefix: system prompt tokens (4 chars each)",
        |a, v| num(&mut a.system_prompt_len, v), |a| a.system_prompt_len.to_string()),
    flag("question-len", LOAD, "shared-prefix: question tokens (4 chars each)",
        |a, v| num(&mut a.question_len, v), |a| a.question_len.to_string()),
    flag("distinct-prompts", LOAD, "fixed/chat: distinct prompts, sent in a cycle",
        |a, v| num(&mut a.distinct_prompts, v), |a| a.distinct_prompts.to_string()),
    flag("model", LOAD, "model of every request",
        |a, v| { a.model = v.to_owned(); Ok(()) }, |a| a.model.clone()),
    flag("max-tokens", LOAD, "max_tokens of every request",
        |a, v| num(&mut a.max_tokens, v), |a| a.max_tokens.to_string()),
    flag("concurrency", LOAD, "closed loop: requests in flight (default 1 without --rate)",
        |a, v| some(&mut a.concurrency, v), |a| show_opt(&a.concurrency)),
    flag("rate", LOAD, "open loop: requests started per second",
        |a, v| some(&mut a.rate, v), |a| show_opt(&a.rate)),
    flag("arrival", LOAD, "open loop gaps: constant | poisson",
        |a, v| { a.arrival = one_of(v, &["constant", "poisson"])?; Ok(()) }, |a| a.arrival.clone()),
    flag("max-in-flight", LOAD, "open loop: starts beyond this many in flight count as overload",
        |a, v| num(&mut a.max_in_flight, v), |a| a.max_in_flight.to_string()),
    flag("requests", LOAD, "measured requests (default 1000 without --duration)",
        |a, v| some(&mut a.requests, v), |a| show_opt(&a.requests)),
    flag("duration", LOAD, "measure for this long (Go syntax: 30s, 2m)",
        |a, v| { a.duration = Some(duration(v)?); Ok(()) },
        |a| a.duration.map_or_else(|| "none".to_owned(), format_go_duration)),
    flag("warmup", LOAD, "requests sent and not measured before each target's run",
        |a, v| num(&mut a.warmup, v), |a| a.warmup.to_string()),
    flag("timeout", LOAD, "per request",
        |a, v| { a.timeout = duration(v)?; Ok(()) }, |a| format_go_duration(a.timeout)),
    flag("seed", LOAD, "seed of prompts and Poisson gaps",
        |a, v| num(&mut a.seed, v), |a| a.seed.to_string()),
    flag("json", LOAD, "also write the result as JSON to this file",
        |a, v| { a.json = Some(v.to_owned()); Ok(()) }, |a| show_opt(&a.json)),
    switch("quiet", LOAD, "no progress line on stderr",
        |a, v| { a.quiet = boolean(v)?; Ok(()) }, |a| a.quiet.to_string()),
    flag("target", DIRECT, "ext_proc server, host:port",
        |a, v| { a.target = v.to_owned(); Ok(()) }, |a| a.target.clone()),
    flag("mode", DIRECT, "body mode: full-duplex (FULL_DUPLEX_STREAMED) | buffered",
        |a, v| { a.mode = one_of(v, &["full-duplex", "buffered"])?; Ok(()) }, |a| a.mode.clone()),
    flag("chunk-bytes", DIRECT, "full-duplex body chunk size (Envoy's buffer: 16 KiB)",
        |a, v| num(&mut a.chunk_bytes, v), |a| a.chunk_bytes.to_string()),
    flag("connections", DIRECT, "HTTP/2 connections the streams share (default from --streams-per-connection)",
        |a, v| some(&mut a.connections, v), |a| show_opt(&a.connections)),
    flag("streams-per-connection", DIRECT, "concurrent streams per connection when --connections is not set",
        |a, v| num(&mut a.streams_per_connection, v), |a| a.streams_per_connection.to_string()),
    switch("tls", DIRECT | NOOP, "TLS (client: no certificate checks; no-op server: self-signed), for target and baseline",
        |a, v| { a.tls = boolean(v)?; Ok(()) }, |a| a.tls.to_string()),
    switch("baseline", DIRECT, "also measure an in-process no-op ext_proc server and print the ratio",
        |a, v| { a.baseline = boolean(v)?; Ok(()) }, |a| a.baseline.to_string()),
    flag("baseline-target", DIRECT, "measure this running no-op server (epp-bench noop) as the baseline",
        |a, v| { a.baseline_target = Some(v.to_owned()); Ok(()) }, |a| show_opt(&a.baseline_target)),
    flag("baseline-threads", DIRECT, "runtime threads of the in-process no-op (default: CPUs)",
        |a, v| some(&mut a.baseline_threads, v), |a| show_opt(&a.baseline_threads)),
    flag("rounds", DIRECT, "alternate target and baseline this many times (spreads drift)",
        |a, v| num(&mut a.rounds, v), |a| a.rounds.to_string()),
    flag("url", PROXY, "where to POST, e.g. http://127.0.0.1:8081/v1/completions",
        |a, v| { a.url = Some(v.to_owned()); Ok(()) }, |a| show_opt(&a.url)),
    flag("served-by-header", PROXY, "response header naming the server that answered",
        |a, v| { a.served_by_header = v.to_owned(); Ok(()) }, |a| a.served_by_header.clone()),
    flag("listen", NOOP, "address to serve ext_proc on",
        |a, v| { a.listen = v.to_owned(); Ok(()) }, |a| a.listen.clone()),
    flag("endpoint", NOOP | DIRECT, "the destination the no-op server returns",
        |a, v| { a.endpoint = v.to_owned(); Ok(()) }, |a| a.endpoint.clone()),
];

fn num<T: std::str::FromStr>(slot: &mut T, value: &str) -> Result<(), String>
where
    T::Err: std::fmt::Display,
{
    *slot = value.trim().parse().map_err(|e: T::Err| e.to_string())?;
    Ok(())
}

fn some<T: std::str::FromStr>(slot: &mut Option<T>, value: &str) -> Result<(), String>
where
    T::Err: std::fmt::Display,
{
    *slot = Some(value.trim().parse().map_err(|e: T::Err| e.to_string())?);
    Ok(())
}

fn duration(value: &str) -> Result<Duration, String> {
    parse_go_duration(value).map_err(|e| e.to_string())
}

fn boolean(value: &str) -> Result<bool, String> {
    value
        .parse()
        .map_err(|_| "expected true or false".to_owned())
}

fn one_of(value: &str, allowed: &[&str]) -> Result<String, String> {
    match allowed.contains(&value) {
        true => Ok(value.to_owned()),
        false => Err(format!("expected one of {}", allowed.join(", "))),
    }
}

fn show_opt<T: ToString>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map_or_else(|| "none".to_owned(), T::to_string)
}
