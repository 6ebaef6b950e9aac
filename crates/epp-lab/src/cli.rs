//! The `epp-lab` command line.
//!
//! ```text
//! epp-lab run EXPERIMENT.yaml --out DIR [--seed N]... [--policy NAME]... [options]
//! epp-lab run --preset NAME --out DIR [--seed N]... [options]
//! epp-lab presets
//! epp-lab show-preset NAME
//! ```
//! Exit codes: 0 on success, 2 on a malformed command line, 1 on a bad experiment or a
//! failed run.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::experiment::{Experiment, presets};
use crate::runner::{RunnerOptions, run_experiment};

/// The usage text.
pub const USAGE: &str = "\
epp-lab: run the EPP's scheduler against simulated vLLM clusters in virtual time

usage:
  epp-lab run EXPERIMENT.yaml --out DIR [options]
  epp-lab run --preset NAME --out DIR [options]
  epp-lab presets                 list the built-in experiments
  epp-lab show-preset NAME        print one as an editable experiment file

run options:
  --out DIR          where summary.json, stage files, CSVs, plots and the manifest go (required)
  --seed N           run with this seed instead of the experiment's seeds (repeatable)
  --policy NAME      run only this policy (repeatable)
  --scale F          multiply every stage's duration by F (e.g. 0.1 for a quick look)
  --threads N        runs in parallel (default: the number of CPUs)
  --decisions        write each request's decision record (decisions.jsonl)
  --no-plots         skip the PNG plots
  --quiet            no progress bar
  --check            check the engine invariants after every step (slow)
";

/// A parsed `run` command.
#[derive(Debug, Default, PartialEq)]
struct RunCommand {
    experiment: Option<PathBuf>,
    preset: Option<String>,
    out: Option<PathBuf>,
    seeds: Vec<u64>,
    policies: Vec<String>,
    scale: Option<f64>,
    threads: Option<usize>,
    decisions: bool,
    no_plots: bool,
    quiet: bool,
    check: bool,
}

/// Runs the command line `args` (without the program name).
pub fn main_with(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("presets") => {
            for (name, description) in presets::list() {
                println!("{name:16} {description}");
            }
            ExitCode::SUCCESS
        }
        Some("show-preset") => match args.get(1).map(|n| (n, presets::text(n))) {
            Some((_, Some(text))) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Some((name, None)) => fail(
                1,
                &format!("unknown preset {name:?}; `epp-lab presets` lists them"),
            ),
            None => fail(2, "show-preset needs a preset name"),
        },
        Some("run") => match parse_run(&args[1..]) {
            Ok(command) => execute(command),
            Err(message) => fail(2, &message),
        },
        Some(other) => fail(2, &format!("unknown command {other:?}")),
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("epp-lab: {message}");
    if code == 2 {
        eprint!("\n{USAGE}");
    }
    ExitCode::from(code)
}

fn parse_run(args: &[String]) -> Result<RunCommand, String> {
    let mut command = RunCommand::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| format!("--{name} needs a value"))
        };
        match flag {
            "--out" => command.out = Some(PathBuf::from(value("out")?)),
            "--preset" => command.preset = Some(value("preset")?),
            "--seed" => command.seeds.push(number(&value("seed")?, "seed")?),
            "--policy" => command.policies.push(value("policy")?),
            "--scale" => {
                let scale: f64 = number(&value("scale")?, "scale")?;
                if !(scale.is_finite() && scale > 0.0) {
                    return Err(format!("--scale must be > 0, got {scale}"));
                }
                command.scale = Some(scale);
            }
            "--threads" => {
                let threads: usize = number(&value("threads")?, "threads")?;
                command.threads = Some(threads.max(1));
            }
            "--decisions" => command.decisions = true,
            "--no-plots" => command.no_plots = true,
            "--quiet" => command.quiet = true,
            "--check" => command.check = true,
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            path if command.experiment.is_none() => command.experiment = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument {extra:?}")),
        }
    }
    match (&command.experiment, &command.preset, &command.out) {
        (Some(_), Some(_), _) => Err("give an experiment file or --preset, not both".into()),
        (None, None, _) => Err("run needs an experiment file or --preset NAME".into()),
        (_, _, None) => Err("run needs --out DIR".into()),
        _ => Ok(command),
    }
}

fn number<T: std::str::FromStr>(text: &str, flag: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| format!("invalid value {text:?} for --{flag}: {e}"))
}

fn load(command: &RunCommand) -> Result<Experiment, String> {
    let mut experiment = match (&command.experiment, &command.preset) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let base = path.parent().unwrap_or(std::path::Path::new("."));
            Experiment::from_yaml(&text, base).map_err(|e| format!("{}: {e}", path.display()))?
        }
        (None, Some(name)) => Experiment::preset(name).map_err(|e| e.to_string())?,
        (None, None) => return Err("no experiment".into()),
    };
    if !command.seeds.is_empty() {
        experiment.seeds = command.seeds.clone();
    }
    if !command.policies.is_empty() {
        if let Some(unknown) = command
            .policies
            .iter()
            .find(|name| !experiment.policies.iter().any(|p| &p.name == *name))
        {
            let known: Vec<&str> = experiment
                .policies
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            return Err(format!(
                "--policy {unknown:?} is not in the experiment (it has: {})",
                known.join(", ")
            ));
        }
        experiment
            .policies
            .retain(|p| command.policies.contains(&p.name));
    }
    if let Some(scale) = command.scale {
        experiment = experiment.scaled(scale);
    }
    Ok(experiment)
}

fn execute(command: RunCommand) -> ExitCode {
    let experiment = match load(&command) {
        Ok(experiment) => experiment,
        Err(message) => return fail(1, &message),
    };
    let defaults = RunnerOptions::default();
    let options = RunnerOptions {
        threads: command.threads.unwrap_or(defaults.threads),
        decisions: command.decisions,
        plots: !command.no_plots,
        progress: !command.quiet,
        check_invariants: command.check,
    };
    let Some(out) = &command.out else {
        return fail(2, "run needs --out DIR");
    };
    match run_experiment(&experiment, out, &options) {
        Ok(summary) => {
            print_table(&summary);
            println!("epp-lab: wrote {}", out.display());
            ExitCode::SUCCESS
        }
        Err(error) => fail(1, &format!("{error:#}")),
    }
}

/// One line per policy: the overall numbers researchers look at first.
fn print_table(summary: &serde_json::Value) {
    let Some(policies) = summary["policies"].as_object() else {
        return;
    };
    println!(
        "{:16} {:>9} {:>11} {:>11} {:>11} {:>10}",
        "policy", "requests", "ttft p50 ms", "ttft p90 ms", "out tok/s", "hit rate"
    );
    let show = |v: &serde_json::Value| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.1}"));
    for (name, policy) in policies {
        let overall = &policy["overall"];
        println!(
            "{:16} {:>9} {:>11} {:>11} {:>11} {:>10}",
            name,
            show(&overall["requests"]),
            show(&overall["ttft_ms"]["p50"]),
            show(&overall["ttft_ms"]["p90"]),
            show(&overall["output_tokens_per_s"]),
            overall["prefix_hit_rate"]
                .as_f64()
                .map_or("-".to_owned(), |x| format!("{x:.3}")),
        );
    }
    print_classes(policies);
}

/// Multi-class runs: one line per (policy, class) with what flow control changes.
fn print_classes(policies: &serde_json::Map<String, serde_json::Value>) {
    if !policies.values().any(|p| p["classes"].is_array()) {
        return;
    }
    println!(
        "\n{:24} {:12} {:>4} {:>8} {:>8} {:>11} {:>11} {:>11} {:>10} {:>10} {:>5}",
        "policy",
        "class",
        "prio",
        "done",
        "failed",
        "ttft p50 ms",
        "ttft p99 ms",
        "wait p99 ms",
        "out tok/s",
        "jain flows",
        "flows",
    );
    let show = |v: &serde_json::Value, digits: usize| {
        v.as_f64()
            .map_or("-".to_owned(), |x| format!("{x:.digits$}"))
    };
    for (name, policy) in policies {
        for class in policy["classes"].as_array().into_iter().flatten() {
            let failed: f64 = class["failed"].as_object().map_or(0.0, |m| {
                m.values()
                    .filter_map(|v| v.as_f64())
                    .fold(0.0, |a, b| a + b)
            });
            println!(
                "{:24} {:12} {:>4} {:>8} {:>8} {:>11} {:>11} {:>11} {:>10} {:>10} {:>5}",
                name,
                class["name"].as_str().unwrap_or("-"),
                class["priority"],
                show(&class["completed"], 0),
                format!("{failed:.0}"),
                show(&class["ttft_ms"]["p50"], 1),
                show(&class["ttft_ms"]["p99"], 1),
                show(&class["epp_wait_ms"]["p99"], 1),
                show(&class["output_tokens_per_s"], 0),
                show(&class["jain_flows"], 3),
                class["flows"].as_array().map_or(0, Vec::len),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn run_takes_a_file_or_a_preset_and_needs_out() {
        let parsed =
            parse_run(&args(&["x.yaml", "--out", "d", "--seed", "3", "--seed=4"])).expect("parses");
        assert_eq!(parsed.experiment, Some(PathBuf::from("x.yaml")));
        assert_eq!(parsed.seeds, vec![3, 4]);
        assert!(parse_run(&args(&["--preset", "quick"])).is_err());
        assert!(parse_run(&args(&["x.yaml", "--preset", "quick", "--out", "d"])).is_err());
        let error = parse_run(&args(&["--preset", "quick", "--out", "d", "--seed", "x"]))
            .expect_err("bad seed");
        assert!(error.contains("--seed"), "{error}");
        assert!(parse_run(&args(&["--preset", "q", "--out", "d", "--bogus"])).is_err());
    }

    #[test]
    fn an_unknown_policy_is_named() {
        let command = parse_run(&args(&[
            "--preset", "quick", "--out", "d", "--policy", "nope",
        ]))
        .expect("parses");
        let error = load(&command).expect_err("unknown policy");
        assert!(
            error.contains("nope") && error.contains("random"),
            "{error}"
        );
    }
}
