//! `epp-lab`: the EPP's scheduler against simulated vLLM clusters in virtual time (the
//! program is the `epp-lab` crate; `epp-lab --help` for usage).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    epp_lab::cli::main_with(&args)
}
