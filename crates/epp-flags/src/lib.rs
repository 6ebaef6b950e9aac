//! Go-compatible command-line syntax shared by the three binaries: one flag table type
//! ([`Flag`]) and one parsing loop ([`parse()`]) in two dialects — Go's `flag` package for `epp`
//! ([`goflag`]) and `--name` flags with subcommands for `epp-sim` and `epp-bench` ([`tool`]) —
//! and Go durations ([`duration`]), which the `EndpointPickerConfig` file uses too.

pub mod duration;
pub mod goflag;
mod parse;
mod table;
pub mod tool;

pub use parse::{ParseError, Parsed, Syntax, parse};
pub use table::{EVERY_COMMAND, Flag, Getter, Kind, SetError, Setter};
