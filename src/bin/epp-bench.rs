//! `epp-bench`: the load tool of the EPP (the program is the `epp-bench` crate).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    epp_bench::main()
}
