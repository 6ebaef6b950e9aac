//! `epp-sim`: N simulated vLLM servers in one process, until SIGTERM or SIGINT.
//!
//! Flags: `epp-sim --help` (the table lives in `epp_sim::args`). Exit codes: 0 after a
//! signal or `--help`, 2 on a malformed command line, 1 on a bad value or a failed bind.

use std::process::ExitCode;

use epp_sim::{ArgsError, SimArgs, start_many, usage};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match SimArgs::parse(&args) {
        Ok(parsed) => parsed,
        Err(error) => return report(&error),
    };
    match run(parsed).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("epp-sim: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn report(error: &ArgsError) -> ExitCode {
    match error {
        ArgsError::Help(_) => print!("{}", usage()),
        ArgsError::BadValue { .. } | ArgsError::Invalid(_) => eprintln!("epp-sim: {error}"),
        _ => eprint!("epp-sim: {error}\n\n{}", usage()),
    }
    ExitCode::from(error.exit_code())
}

async fn run(args: SimArgs) -> anyhow::Result<()> {
    let model = args.config.model.clone();
    let sims = start_many(args.config, args.host, args.base_port, args.servers).await?;
    for sim in &sims {
        println!("epp-sim: serving {model} on {}", sim.url());
    }
    wait_for_signal().await?;
    eprintln!("epp-sim: shutting down");
    for sim in sims {
        sim.shutdown().await;
    }
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await?;
    Ok(())
}
