//! Runs a parsed command: builds the workload, connects, warms up, measures (alternating
//! target and baseline by rounds), and assembles the report.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::cli::{Baseline, DirectArgs, LoadArgs, ProxyArgs};
use crate::connect::channels;
use crate::direct::DirectExchange;
use crate::load::{self, Exchange, Plan, Progress, Stats, StopAt};
use crate::noop::InProcessNoop;
use crate::proxy::ProxyExchange;
use crate::report::{Machine, Ratio, Report, TargetReport, WorkloadInfo};
use crate::workload::Workload;

pub async fn direct(args: DirectArgs, command_line: Vec<String>) -> anyhow::Result<Report> {
    let workload = build_workload(&args.load);
    let connect = |target: String, transport| {
        let workload = Arc::clone(&workload);
        async move {
            let channels = channels(&target, transport, args.connections).await?;
            anyhow::Ok(Arc::new(DirectExchange::new(
                channels,
                workload,
                args.mode,
                args.chunk_bytes,
            )))
        }
    };
    let epp = connect(args.target.clone(), args.transport).await?;
    // Kept alive for the whole run; dropping it stops the in-process server.
    let mut _in_process = None;
    let baseline = match &args.baseline {
        Baseline::None => None,
        Baseline::External(address) => Some(address.clone()),
        Baseline::InProcess { endpoint, threads } => {
            let noop = InProcessNoop::start(endpoint, args.transport, *threads)?;
            let address = noop.address.to_string();
            _in_process = Some(noop);
            Some(address)
        }
    };
    // The baseline speaks what the target speaks, so the comparison is like for like.
    let noop = match &baseline {
        Some(address) => Some(connect(address.clone(), args.transport).await?),
        None => None,
    };
    let mut targets = vec![(epp, "epp", args.target.clone())];
    targets.extend(
        noop.zip(baseline)
            .map(|(exchange, address)| (exchange, "noop", address)),
    );
    let stats = measure(&targets, &args.load, args.rounds).await;
    let reports = targets
        .iter()
        .zip(&stats)
        .map(|((_, name, address), stats)| TargetReport::new(name, address, stats))
        .collect();
    Ok(report(
        "direct",
        &args.load,
        command_line,
        &workload,
        reports,
    ))
}

pub async fn proxy(args: ProxyArgs, command_line: Vec<String>) -> anyhow::Result<Report> {
    let workload = build_workload(&args.load);
    let exchange = Arc::new(ProxyExchange::new(
        &args.url,
        Arc::clone(&workload),
        &args.served_by_header,
    )?);
    let stats = measure(&[(exchange, "proxy", args.url.clone())], &args.load, 1).await;
    let reports = vec![TargetReport::new("proxy", &args.url, &stats[0])];
    Ok(report(
        "proxy",
        &args.load,
        command_line,
        &workload,
        reports,
    ))
}

fn build_workload(load: &LoadArgs) -> Arc<Workload> {
    let started = Instant::now();
    let workload = Workload::build(&load.workload);
    let (min, max) = workload.body_bytes();
    eprintln!(
        "epp-bench: {} distinct requests, bodies {min}–{max} bytes, built in {:.0?}",
        workload.len(),
        started.elapsed()
    );
    Arc::new(workload)
}

/// Warms every target up, then runs `rounds` rounds, each target once per round on the same
/// request indices; returns one merged [`Stats`] per target.
async fn measure<E: Exchange>(
    targets: &[(Arc<E>, &str, String)],
    load: &LoadArgs,
    rounds: u32,
) -> Vec<Stats> {
    if load.warmup > 0 {
        let warmup = Plan {
            stop: StopAt::Requests(load.warmup),
            progress: Progress::Quiet,
            ..load.plan.clone()
        };
        for (exchange, name, _) in targets {
            let stats = load::run(Arc::clone(exchange), &warmup, name, 0).await;
            eprintln!(
                "epp-bench: {name} warm-up: {} ok, {} errors",
                stats.ok,
                stats.error_count()
            );
        }
    }
    let mut merged: Vec<Stats> = targets
        .iter()
        .map(|(e, _, _)| Stats::new(e.metrics()))
        .collect();
    for round in 0..rounds {
        let (plan, first_index) = round_plan(&load.plan, round, rounds);
        for ((exchange, name, _), total) in targets.iter().zip(&mut merged) {
            total.merge(&load::run(Arc::clone(exchange), &plan, name, first_index).await);
        }
    }
    merged
}

/// Round `round` of `rounds`: its share of the requests (or time), and its first index.
fn round_plan(plan: &Plan, round: u32, rounds: u32) -> (Plan, u64) {
    let rounds_u64 = u64::from(rounds);
    let round_u64 = u64::from(round);
    let (stop, first_index) = match plan.stop {
        StopAt::Requests(total) => {
            let share = total / rounds_u64;
            let count = if round + 1 == rounds {
                total - share * round_u64
            } else {
                share
            };
            (StopAt::Requests(count), share * round_u64)
        }
        StopAt::Duration(total) => (StopAt::Duration(total / rounds), 0),
    };
    (
        Plan {
            stop,
            ..plan.clone()
        },
        first_index,
    )
}

fn report(
    mode: &'static str,
    load: &LoadArgs,
    command_line: Vec<String>,
    workload: &Workload,
    targets: Vec<TargetReport>,
) -> Report {
    let ratio = match targets.as_slice() {
        [target, baseline] => Ratio::of(target, baseline),
        _ => None,
    };
    Report {
        tool: "epp-bench",
        version: env!("CARGO_PKG_VERSION"),
        command_line,
        mode,
        config: load.config.clone(),
        machine: Machine::detect(),
        started_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        workload: WorkloadInfo::of(workload),
        targets,
        ratio,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::Shape;

    fn plan(stop: StopAt) -> Plan {
        Plan {
            shape: Shape::Concurrency(1),
            stop,
            timeout: Duration::from_secs(1),
            progress: Progress::Quiet,
            seed: 0,
        }
    }

    #[test]
    fn rounds_split_the_requests_and_share_indices() {
        let shares: Vec<_> = (0..3)
            .map(|r| {
                let (p, first) = round_plan(&plan(StopAt::Requests(10)), r, 3);
                (p.stop, first)
            })
            .collect();
        assert_eq!(
            shares,
            [
                (StopAt::Requests(3), 0),
                (StopAt::Requests(3), 3),
                (StopAt::Requests(4), 6)
            ]
        );
        let (p, _) = round_plan(&plan(StopAt::Duration(Duration::from_secs(9))), 1, 3);
        assert_eq!(p.stop, StopAt::Duration(Duration::from_secs(3)));
    }
}
