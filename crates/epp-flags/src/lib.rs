//! Go-compatible command-line syntax shared by the three binaries: `epp`'s Go `flag` parser
//! ([`goflag`]), the subcommand flag tables of `epp-sim` and `epp-bench` ([`flag_table`]), and Go
//! durations ([`duration`]), which the `EndpointPickerConfig` file uses too.

pub mod duration;
pub mod flag_table;
pub mod goflag;
