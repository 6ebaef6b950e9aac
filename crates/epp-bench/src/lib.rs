//! `epp-bench`: the load tool of the EPP.
//!
//! `direct` drives an ext_proc server over gRPC exactly as Envoy does (optionally next to a
//! no-op baseline, for the ratio); `proxy` sends streaming OpenAI requests through a gateway;
//! `noop` serves the no-op baseline. Exit codes: 0 after a run, 2 on a malformed command
//! line, 1 on a bad value, a failed start, or a run in which no request succeeded.
#![forbid(unsafe_code)]

mod cli;
mod connect;
mod direct;
mod flags;
mod histogram;
mod load;
mod messages;
mod noop;
mod proxy;
mod report;
mod run;
mod stats;
mod workload;

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{ArgsError, Command, NoopArgs};
use crate::report::Report;

/// The whole `epp-bench` program: parses this process's command line, runs, reports. The
/// binary (`src/bin/epp-bench.rs` of the `epp` package) only calls this.
#[tokio::main]
pub async fn main() -> ExitCode {
    let command_line: Vec<String> = std::env::args().collect();
    let command = match Command::parse(&command_line[1..]) {
        Ok(command) => command,
        Err(error) => return usage_error(&error),
    };
    match execute(command, command_line).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("epp-bench: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn usage_error(error: &ArgsError) -> ExitCode {
    match error {
        ArgsError::Help(command) => print!("{}", cli::usage(*command)),
        ArgsError::BadValue { .. } | ArgsError::Invalid(_) => eprintln!("epp-bench: {error}"),
        _ => eprint!("epp-bench: {error}\n\n{}", cli::usage(None)),
    }
    ExitCode::from(error.exit_code())
}

async fn execute(command: Command, command_line: Vec<String>) -> anyhow::Result<ExitCode> {
    let (report, json) = match command {
        Command::Noop(args) => return serve_noop(args).await.map(|()| ExitCode::SUCCESS),
        Command::Direct(args) => {
            let json = args.load.json.clone();
            (run::direct(args, command_line).await?, json)
        }
        Command::Proxy(args) => {
            let json = args.load.json.clone();
            (run::proxy(args, command_line).await?, json)
        }
    };
    print!("{}", report.text());
    if let Some(path) = json {
        report.write_json(&path)?;
    }
    Ok(outcome(&report))
}

/// 1 when some target answered no request at all: a script should not read its numbers.
fn outcome(report: &Report) -> ExitCode {
    match report.targets.iter().any(|t| t.requests_ok == 0) {
        true => {
            eprintln!("epp-bench: a target answered no request successfully");
            ExitCode::from(1)
        }
        false => ExitCode::SUCCESS,
    }
}

async fn serve_noop(args: NoopArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on --listen {}", args.listen))?;
    eprintln!(
        "epp-bench: no-op ext_proc on {} ({:?}) routing to {}",
        listener.local_addr()?,
        args.transport,
        args.endpoint
    );
    noop::serve(listener, &args.endpoint, args.transport, shutdown_signal()).await
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
