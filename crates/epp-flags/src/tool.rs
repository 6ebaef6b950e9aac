//! The dialect of the helper tools (`epp-sim`, `epp-bench`): parsing with [`Syntax::Long`], their
//! errors and exit codes, their usage lines, and value helpers for their tables.
//!
//! Syntax: `--name value` or `--name=value`; a switch takes no value (`--tls`) or
//! `--tls=true|false`. A flag given twice keeps its last value unless its setter appends.
//! `-h`/`--help` asks for the usage.

use crate::parse::{ParseError, Syntax};
use crate::table::{Flag, SetError};

/// Why a command line was not accepted; [`ArgsError::exit_code`] is the process exit code.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArgsError {
    /// `-h`/`--help` (or no subcommand): print the usage, of this subcommand when named.
    #[error("help requested")]
    Help(Option<&'static str>),
    #[error("unknown subcommand {name:?} (known: {known})")]
    UnknownCommand { name: String, known: &'static str },
    #[error("unknown flag {flag}{}", command.map(|c| format!(" for {c}")).unwrap_or_default())]
    UnknownFlag {
        flag: String,
        command: Option<&'static str>,
    },
    #[error("flag --{0} needs a value")]
    MissingValue(String),
    #[error("unexpected argument {0:?}")]
    Positional(String),
    /// A value that does not parse or breaks a limit.
    #[error("invalid value {value:?} for --{flag}: {reason}")]
    BadValue {
        flag: String,
        value: String,
        reason: String,
    },
    /// Values that parse but do not fit together.
    #[error("{0}")]
    Invalid(String),
}

impl ArgsError {
    /// 0 for help, 2 for a malformed command line, 1 for a bad value.
    pub fn exit_code(&self) -> u8 {
        match self {
            ArgsError::Help(_) => 0,
            ArgsError::UnknownCommand { .. }
            | ArgsError::UnknownFlag { .. }
            | ArgsError::MissingValue(_)
            | ArgsError::Positional(_) => 2,
            ArgsError::BadValue { .. } | ArgsError::Invalid(_) => 1,
        }
    }

    /// The tools' wording of a parse error.
    fn from_parse(error: ParseError, command: Option<&'static str>) -> ArgsError {
        match error {
            ParseError::Help => ArgsError::Help(command),
            // The long syntax reports bad syntax (never produced) as an unknown flag too.
            ParseError::Undefined { arg: flag, .. } | ParseError::BadSyntax(flag) => {
                ArgsError::UnknownFlag { flag, command }
            }
            ParseError::NeedsArgument(flag) => ArgsError::MissingValue(flag),
            ParseError::InvalidValue {
                flag,
                value,
                reason,
            }
            | ParseError::InvalidBool {
                flag,
                value,
                reason,
            } => ArgsError::BadValue {
                flag,
                value,
                reason,
            },
            ParseError::Rejected { message, .. } => ArgsError::Invalid(message),
        }
    }
}

/// Applies `args` to `into` with the rows of `table` whose scope includes `scope`;
/// `command` names the subcommand in help requests and messages.
pub fn parse_into<'a, A>(
    args: impl IntoIterator<Item = &'a str>,
    table: &[Flag<A>],
    scope: u8,
    command: Option<&'static str>,
    into: &mut A,
) -> Result<(), ArgsError> {
    let args = args.into_iter().map(str::to_owned);
    let parsed = crate::parse::parse(table, scope, Syntax::Long, into, args)
        .map_err(|e| ArgsError::from_parse(e, command))?;
    match parsed.positional.into_iter().next() {
        Some(arg) => Err(ArgsError::Positional(arg)),
        None => Ok(()),
    }
}

/// One usage line per flag of `scope`, with its default unless that is `"none"`.
pub fn usage_lines<A>(table: &[Flag<A>], scope: u8, defaults: &A) -> String {
    let mut text = String::new();
    for f in table.iter().filter(|f| f.scope & scope != 0) {
        let default = match (f.get)(defaults) {
            none if none == "none" => String::new(),
            value => format!(" (default: {value})"),
        };
        text.push_str(&format!("  --{:<28} {}{default}\n", f.name, f.help));
    }
    text
}

// === value parsers and formatters shared by the tables ===

/// `value` parsed with `FromStr`, surrounding spaces ignored.
pub fn parse_value<T: std::str::FromStr>(value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse().map_err(|e: T::Err| e.to_string())
}

/// Sets `slot` to the parsed `value`.
pub fn set_parsed<T: std::str::FromStr>(slot: &mut T, value: &str) -> Result<(), SetError>
where
    T::Err: std::fmt::Display,
{
    *slot = parse_value(value)?;
    Ok(())
}

/// Sets `slot` to `Some` parsed `value`.
pub fn set_some<T: std::str::FromStr>(slot: &mut Option<T>, value: &str) -> Result<(), SetError>
where
    T::Err: std::fmt::Display,
{
    *slot = Some(parse_value(value)?);
    Ok(())
}

/// `true` or `false` (stricter than Go's [`crate::goflag::parse_bool`], as the tools always were).
pub fn parse_bool(value: &str) -> Result<bool, String> {
    value
        .trim()
        .parse()
        .map_err(|_| "expected true or false".to_owned())
}

/// `value` if it is one of `allowed`.
pub fn one_of(value: &str, allowed: &[&str]) -> Result<String, String> {
    match allowed.contains(&value) {
        true => Ok(value.to_owned()),
        false => Err(format!("expected one of {}", allowed.join(", "))),
    }
}

/// An option's value, or `"none"`.
pub fn show_opt<T: ToString>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map_or_else(|| "none".to_owned(), T::to_string)
}

/// A list joined with commas, or `"none"`.
pub fn show_list(items: &[String]) -> String {
    match items.is_empty() {
        true => "none".to_owned(),
        false => items.join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EVERY_COMMAND;

    #[derive(Default, Debug, PartialEq)]
    struct Args {
        count: u32,
        name: Option<String>,
        verbose: bool,
    }

    const ONE: u8 = 1;
    const TWO: u8 = 2;

    type Row = Flag<Args>;

    #[rustfmt::skip]
    const TABLE: &[Row] = &[
        Row::new("count", ONE | TWO, "how many",
            |a, v| set_parsed(&mut a.count, v), |a| a.count.to_string()),
        Row::new("name", ONE, "a name",
            |a, v| set_some(&mut a.name, v), |a| show_opt(&a.name)),
        Row::new("verbose", TWO, "say more",
            |a, v| { a.verbose = parse_bool(v)?; Ok(()) }, |a| a.verbose.to_string()).as_switch(),
    ];

    fn parse(line: &str, scope: u8) -> Result<Args, ArgsError> {
        let mut args = Args::default();
        parse_into(
            line.split_whitespace(),
            TABLE,
            scope,
            Some("cmd"),
            &mut args,
        )?;
        Ok(args)
    }

    #[test]
    fn values_separate_inline_repeated_and_switches() {
        let args = parse("--count 3 --name=x --count=4", ONE).expect("parses");
        assert_eq!((args.count, args.name.as_deref()), (4, Some("x")));
        assert!(parse("--verbose", TWO).expect("switch").verbose);
        assert!(!parse("--verbose=false", TWO).expect("switch").verbose);
    }

    #[test]
    fn errors_name_the_flag_and_map_to_exit_codes() {
        let cases = [
            ("--help", 0, "help requested"),
            ("--name x", 2, "unknown flag --name for cmd"),
            ("--count", 2, "flag --count needs a value"),
            ("stray", 2, "unexpected argument \"stray\""),
            ("--count many", 1, "invalid value \"many\" for --count"),
            ("--verbose=maybe", 1, "expected true or false"),
        ];
        for (line, code, text) in cases {
            let error = parse(line, TWO).expect_err(line);
            assert_eq!(error.exit_code(), code, "{line}: {error}");
            assert!(error.to_string().contains(text), "{line}: {error}");
        }
        let mut args = Args::default();
        let error =
            parse_into(["--bogus"], TABLE, EVERY_COMMAND, None, &mut args).expect_err("unknown");
        assert_eq!(error.to_string(), "unknown flag --bogus");
    }

    #[test]
    fn usage_shows_the_scope_and_defaults_but_not_none() {
        let text = usage_lines(TABLE, ONE, &Args::default());
        assert!(
            text.contains("--count") && text.contains("(default: 0)"),
            "{text}"
        );
        assert!(text.contains("--name") && !text.contains("none"), "{text}");
        assert!(!text.contains("--verbose"), "{text}");
    }
}
