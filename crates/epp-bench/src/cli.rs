//! The command line: `epp-bench <direct|proxy|noop> [--flag value | --flag=value]...`,
//! parsed with the table in `flags.rs` and checked into typed settings before anything runs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::connect::Transport;
pub use epp_flags::tool::ArgsError;
use epp_flags::tool::{parse_into, usage_lines};

use crate::flags::{DIRECT, FLAGS, NOOP, PROXY, RawArgs};
use crate::load::{Arrival, Plan, Progress, Shape, StopAt};
use crate::messages::BodyMode;
use crate::workload::{WorkloadKind, WorkloadSpec};

/// What to run.
#[derive(Debug)]
pub enum Command {
    Direct(DirectArgs),
    Proxy(ProxyArgs),
    Noop(NoopArgs),
}

/// Settings every load-generating mode shares.
#[derive(Debug)]
pub struct LoadArgs {
    pub plan: Plan,
    pub warmup: u64,
    pub workload: WorkloadSpec,
    pub json: Option<PathBuf>,
    /// Every flag of the subcommand with its effective value, for the report.
    pub config: BTreeMap<&'static str, String>,
}

/// What to compare the target with.
#[derive(Debug, PartialEq)]
pub enum Baseline {
    None,
    /// Start a no-op server in this process, returning `endpoint`, on `threads` threads.
    InProcess {
        endpoint: String,
        threads: usize,
    },
    /// A no-op server already running there.
    External(String),
}

#[derive(Debug)]
pub struct DirectArgs {
    pub target: String,
    pub mode: BodyMode,
    pub chunk_bytes: usize,
    pub connections: usize,
    pub transport: Transport,
    pub baseline: Baseline,
    pub rounds: u32,
    pub load: LoadArgs,
}

#[derive(Debug)]
pub struct ProxyArgs {
    pub url: String,
    pub served_by_header: String,
    pub load: LoadArgs,
}

#[derive(Debug)]
pub struct NoopArgs {
    pub listen: String,
    pub endpoint: String,
    pub transport: Transport,
}

const COMMANDS: [(&str, u8); 3] = [("direct", DIRECT), ("proxy", PROXY), ("noop", NOOP)];

impl Command {
    /// Parses a command line without the program name.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Command, ArgsError> {
        let mut args = args.iter().map(AsRef::as_ref);
        let (name, scope) = match args.next() {
            None | Some("-h" | "--help" | "help") => return Err(ArgsError::Help(None)),
            Some(name) => COMMANDS
                .into_iter()
                .find(|(known, _)| *known == name)
                .ok_or_else(|| ArgsError::UnknownCommand {
                    name: name.to_owned(),
                    known: "direct, proxy, noop",
                })?,
        };
        let mut raw = RawArgs::default();
        parse_into(args, FLAGS, scope, Some(name), &mut raw)?;
        let config = FLAGS
            .iter()
            .filter(|f| f.scope & scope != 0)
            .map(|f| (f.name, (f.get)(&raw)))
            .collect();
        match scope {
            DIRECT => direct(&raw, load(&raw, config, false)?).map(Command::Direct),
            PROXY => proxy(&raw, load(&raw, config, true)?).map(Command::Proxy),
            _ => Ok(Command::Noop(NoopArgs {
                listen: raw.listen.clone(),
                endpoint: raw.endpoint.clone(),
                transport: transport(&raw),
            })),
        }
    }
}

fn invalid(message: impl Into<String>) -> ArgsError {
    ArgsError::Invalid(message.into())
}

fn load(
    raw: &RawArgs,
    config: BTreeMap<&'static str, String>,
    stream: bool,
) -> Result<LoadArgs, ArgsError> {
    let shape = match (raw.concurrency, raw.rate) {
        (Some(_), Some(_)) => return Err(invalid("set --concurrency or --rate, not both")),
        (_, Some(rate)) if !(rate.is_finite() && rate > 0.0) => {
            return Err(invalid(
                "--rate must be a positive number of requests per second",
            ));
        }
        (_, Some(per_second)) => Shape::Rate {
            per_second,
            arrival: match raw.arrival.as_str() {
                "poisson" => Arrival::Poisson,
                _ => Arrival::Constant,
            },
            max_in_flight: raw.max_in_flight.max(1),
        },
        (Some(0), None) => return Err(invalid("--concurrency must be at least 1")),
        (concurrency, None) => Shape::Concurrency(concurrency.unwrap_or(1)),
    };
    let stop = match (raw.requests, raw.duration) {
        (Some(_), Some(_)) => return Err(invalid("set --requests or --duration, not both")),
        (Some(0), None) => return Err(invalid("--requests must be at least 1")),
        (_, Some(d)) if d.is_zero() => return Err(invalid("--duration must be positive")),
        (_, Some(d)) => StopAt::Duration(d),
        (requests, None) => StopAt::Requests(requests.unwrap_or(1000)),
    };
    if raw.timeout.is_zero() {
        return Err(invalid("--timeout must be positive"));
    }
    Ok(LoadArgs {
        plan: Plan {
            shape,
            stop,
            timeout: raw.timeout,
            progress: if raw.quiet {
                Progress::Quiet
            } else {
                Progress::Print
            },
            seed: raw.seed,
        },
        warmup: raw.warmup,
        workload: workload(raw, stream)?,
        json: raw.json.as_ref().map(PathBuf::from),
        config,
    })
}

fn workload(raw: &RawArgs, stream: bool) -> Result<WorkloadSpec, ArgsError> {
    let kind = match raw.workload.as_str() {
        "chat" => WorkloadKind::Chat {
            prompt_bytes: raw.prompt_bytes,
        },
        "shared-prefix" => {
            if raw.groups == 0 || raw.prompts_per_group == 0 {
                return Err(invalid(
                    "--groups and --prompts-per-group must be at least 1",
                ));
            }
            WorkloadKind::SharedPrefix {
                groups: raw.groups,
                prompts_per_group: raw.prompts_per_group,
                system_prompt_len: raw.system_prompt_len,
                question_len: raw.question_len,
            }
        }
        _ => WorkloadKind::Fixed {
            prompt_bytes: raw.prompt_bytes,
        },
    };
    Ok(WorkloadSpec {
        kind,
        model: raw.model.clone(),
        max_tokens: raw.max_tokens,
        distinct_prompts: raw.distinct_prompts.max(1),
        stream,
        seed: raw.seed,
    })
}

fn direct(raw: &RawArgs, load: LoadArgs) -> Result<DirectArgs, ArgsError> {
    if raw.chunk_bytes == 0 || raw.streams_per_connection == 0 || raw.rounds == 0 {
        return Err(invalid(
            "--chunk-bytes, --streams-per-connection and --rounds must be at least 1",
        ));
    }
    let streams = match load.plan.shape {
        Shape::Concurrency(n) => n,
        // Open loop: about rate × a typical latency; one connection per 100 req/s is plenty.
        Shape::Rate { per_second, .. } => (per_second / 100.0).ceil() as usize,
    };
    let connections = match raw.connections {
        Some(0) => return Err(invalid("--connections must be at least 1")),
        Some(n) => n,
        None => streams.div_ceil(raw.streams_per_connection).max(1),
    };
    let baseline = match (&raw.baseline_target, raw.baseline) {
        (Some(_), true) => return Err(invalid("set --baseline or --baseline-target, not both")),
        (Some(target), false) => Baseline::External(target.clone()),
        (None, true) => Baseline::InProcess {
            endpoint: raw.endpoint.clone(),
            threads: raw
                .baseline_threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
        },
        (None, false) => Baseline::None,
    };
    Ok(DirectArgs {
        target: raw.target.clone(),
        mode: match raw.mode.as_str() {
            "buffered" => BodyMode::Buffered,
            _ => BodyMode::FullDuplex,
        },
        chunk_bytes: raw.chunk_bytes,
        connections,
        transport: if raw.tls {
            Transport::InsecureTls
        } else {
            Transport::Plaintext
        },
        baseline,
        rounds: raw.rounds,
        load,
    })
}

fn transport(raw: &RawArgs) -> Transport {
    match raw.tls {
        true => Transport::InsecureTls,
        false => Transport::Plaintext,
    }
}

fn proxy(raw: &RawArgs, load: LoadArgs) -> Result<ProxyArgs, ArgsError> {
    let url = raw
        .url
        .clone()
        .ok_or_else(|| invalid("proxy needs --url"))?;
    Ok(ProxyArgs {
        url,
        served_by_header: raw.served_by_header.clone(),
        load,
    })
}

/// The usage text: of one subcommand, or an overview.
pub fn usage(command: Option<&str>) -> String {
    let mut text = String::from(
        "usage: epp-bench <direct|proxy|noop> [--flag value | --flag=value]...\n\n\
         direct  drive an ext_proc server (the EPP) over gRPC as Envoy does\n\
         proxy   send streaming OpenAI requests over HTTP through a gateway\n\
         noop    serve a no-op ext_proc server (the baseline)\n",
    );
    let defaults = RawArgs::default();
    for (name, scope) in COMMANDS {
        if command.is_some_and(|c| c != name) {
            continue;
        }
        text.push_str(&format!("\n{name} flags:\n"));
        text.push_str(&usage_lines(FLAGS, scope, &defaults));
    }
    text
}

#[cfg(test)]
mod tests;
