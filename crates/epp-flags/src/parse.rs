//! The one parsing loop over a flag table, in either command-line dialect.

use crate::table::{Flag, Kind, SetError};

/// The command-line dialect a table is parsed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Go's `flag` package (`epp`): `-name` or `--name`; `---name` and `-=x` are bad syntax;
    /// `-h`/`-help` ask for help unless the table defines them; parsing stops at the first
    /// argument that is not a flag, or after `--`.
    Go,
    /// The helper tools (`epp-sim`, `epp-bench`): `--name` only; exactly `-h` and `--help` ask
    /// for help; parsing stops at the first other argument, which the caller rejects.
    Long,
}

/// A command line the table does not accept (or a request for help).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// `-h`, `-help` or `--help` was given.
    #[error("flag: help requested")]
    Help,
    /// `---x`, `-=x` and the like.
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
    /// A flag that is not in the table (or not in scope).
    #[error("flag provided but not defined: -{name}")]
    Undefined {
        /// The name as written, without dashes and value.
        name: String,
        /// The whole argument.
        arg: String,
    },
    /// A non-switch flag at the end of the arguments.
    #[error("flag needs an argument: -{0}")]
    NeedsArgument(String),
    /// A setter rejected the value of a non-switch flag.
    #[error("invalid value {value:?} for flag -{flag}: {reason}")]
    InvalidValue {
        /// Flag name.
        flag: String,
        /// The rejected text.
        value: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A setter rejected the value of a switch.
    #[error("invalid boolean value {value:?} for -{flag}: {reason}")]
    InvalidBool {
        /// Flag name.
        flag: String,
        /// The rejected text.
        value: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A setter rejected the value with its own complete message.
    #[error("{message}")]
    Rejected {
        /// Flag name.
        flag: String,
        /// The complete message.
        message: String,
    },
}

/// What remains after the flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Flags set on the command line, in order (repeats included; the last one won).
    pub set: Vec<&'static str>,
    /// Arguments after the flags.
    pub positional: Vec<String>,
    /// The switch given bare (no `=value`) just before the first positional argument, if any.
    pub bare_bool_before_positional: Option<&'static str>,
    /// Whether parsing stopped at a `--` terminator.
    pub terminated: bool,
}

/// A command-line argument, classified by the dialect.
enum Token<'a> {
    Positional,
    Terminator,
    Help,
    Flag(&'a str, Option<&'a str>),
}

impl Syntax {
    fn classify(self, arg: &str) -> Result<Token<'_>, ParseError> {
        match self {
            Syntax::Go => classify_go(arg),
            Syntax::Long => Ok(classify_long(arg)),
        }
    }
}

/// Like Go's `FlagSet.parseOne`.
fn classify_go(arg: &str) -> Result<Token<'_>, ParseError> {
    if arg.len() < 2 || !arg.starts_with('-') {
        return Ok(Token::Positional);
    }
    let body = match arg.strip_prefix("--") {
        Some("") => return Ok(Token::Terminator),
        Some(body) => body,
        None => &arg[1..],
    };
    if body.starts_with('-') || body.starts_with('=') {
        return Err(ParseError::BadSyntax(arg.to_owned()));
    }
    Ok(name_and_value(body))
}

/// Anything after `--` is a flag name (`--` alone and `---x` name no flag).
fn classify_long(arg: &str) -> Token<'_> {
    if arg == "-h" || arg == "--help" {
        return Token::Help;
    }
    arg.strip_prefix("--")
        .map_or(Token::Positional, name_and_value)
}

fn name_and_value(body: &str) -> Token<'_> {
    match body.split_once('=') {
        Some((name, value)) => Token::Flag(name, Some(value)),
        None => Token::Flag(body, None),
    }
}

/// Applies `args` (without the program name) to `target` with the rows of `table` whose
/// scope includes `scope`, like Go's `FlagSet.Parse`.
pub fn parse<T, I>(
    table: &[Flag<T>],
    scope: u8,
    syntax: Syntax,
    target: &mut T,
    args: I,
) -> Result<Parsed, ParseError>
where
    I: IntoIterator<Item = String>,
{
    let mut args = args.into_iter();
    let mut parsed = Parsed::default();
    let mut last_bare_bool = None;
    while let Some(arg) = args.next() {
        let (name, inline) = match syntax.classify(&arg)? {
            Token::Positional => {
                parsed.bare_bool_before_positional = last_bare_bool;
                parsed.positional.push(arg);
                break;
            }
            Token::Terminator => {
                parsed.terminated = true;
                break;
            }
            Token::Help => return Err(ParseError::Help),
            Token::Flag(name, inline) => (name, inline),
        };
        let Some(flag) = table
            .iter()
            .find(|f| f.name == name && f.scope & scope != 0)
        else {
            if syntax == Syntax::Go && (name == "help" || name == "h") {
                return Err(ParseError::Help);
            }
            return Err(ParseError::Undefined {
                name: name.to_owned(),
                arg: arg.clone(),
            });
        };
        let value = match (flag.kind, inline) {
            (Kind::Bool, None) => "true".to_owned(),
            (_, Some(value)) => value.to_owned(),
            (_, None) => args
                .next()
                .ok_or_else(|| ParseError::NeedsArgument(name.to_owned()))?,
        };
        (flag.set)(target, &value).map_err(|e| set_error(flag, value, e))?;
        last_bare_bool = (flag.kind == Kind::Bool && inline.is_none()).then_some(flag.name);
        parsed.set.push(flag.name);
    }
    parsed.positional.extend(args);
    Ok(parsed)
}

fn set_error<T>(flag: &Flag<T>, value: String, error: SetError) -> ParseError {
    let name = flag.name.to_owned();
    match (error, flag.kind) {
        (SetError::Message(message), _) => ParseError::Rejected {
            flag: name,
            message,
        },
        (SetError::Invalid(reason), Kind::Bool) => ParseError::InvalidBool {
            flag: name,
            value,
            reason,
        },
        (SetError::Invalid(reason), _) => ParseError::InvalidValue {
            flag: name,
            value,
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EVERY_COMMAND;

    #[derive(Default)]
    struct Args {
        name: String,
        on: bool,
    }

    type Row = Flag<Args>;

    #[rustfmt::skip]
    const TABLE: &[Row] = &[
        Row::new("name", 1, "a name", |a, v| { a.name = v.to_owned(); Ok(()) }, |a| a.name.clone()),
        Row::new("on", 2, "a switch", |a, v| { a.on = v == "true"; Ok(()) }, |a| a.on.to_string())
            .as_switch(),
    ];

    fn run(syntax: Syntax, scope: u8, line: &str) -> Result<Parsed, ParseError> {
        let args = line.split_whitespace().map(str::to_owned);
        parse(TABLE, scope, syntax, &mut Args::default(), args)
    }

    fn undefined(arg: &str) -> ParseError {
        let name = arg
            .trim_start_matches('-')
            .split('=')
            .next()
            .unwrap_or_default();
        ParseError::Undefined {
            name: name.to_owned(),
            arg: arg.to_owned(),
        }
    }

    #[test]
    fn the_dialects_differ_only_in_how_arguments_read() {
        let go = |line| run(Syntax::Go, EVERY_COMMAND, line);
        let long = |line| run(Syntax::Long, EVERY_COMMAND, line);
        assert_eq!(go("-name x").map(|p| p.set), Ok(vec!["name"]));
        assert_eq!(
            long("-name x").map(|p| p.positional),
            Ok(vec!["-name".into(), "x".into()])
        );
        assert_eq!(go("-help"), Err(ParseError::Help));
        assert_eq!(
            long("-help").map(|p| p.positional),
            Ok(vec!["-help".into()])
        );
        assert_eq!(go("--h"), Err(ParseError::Help));
        assert_eq!(long("--h"), Err(undefined("--h")));
        assert_eq!(
            go("-- x").map(|p| (p.terminated, p.positional)),
            Ok((true, vec!["x".into()]))
        );
        assert_eq!(long("--"), Err(undefined("--")));
        assert_eq!(go("---on"), Err(ParseError::BadSyntax("---on".into())));
        assert_eq!(
            long("---on"),
            Err(ParseError::Undefined {
                name: "-on".into(),
                arg: "---on".into()
            })
        );
        for parse in [go, long] {
            assert_eq!(
                parse("--on x").map(|p| p.bare_bool_before_positional),
                Ok(Some("on"))
            );
            assert_eq!(
                parse("--name"),
                Err(ParseError::NeedsArgument("name".into()))
            );
        }
    }

    #[test]
    fn rows_outside_the_scope_are_unknown() {
        assert_eq!(run(Syntax::Long, 1, "--on"), Err(undefined("--on")));
        assert_eq!(run(Syntax::Long, 2, "--name=x"), Err(undefined("--name=x")));
        assert!(run(Syntax::Long, 2, "--on").is_ok());
    }
}
