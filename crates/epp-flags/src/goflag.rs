//! Go's `flag` package dialect (`epp`): parsing with [`Syntax::Go`], usage text in Go's format,
//! Go's value syntaxes, and the [`flag!`] row builder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::duration::format_go_duration;
use crate::parse::{ParseError, Parsed, Syntax};
use crate::table::{EVERY_COMMAND, Flag, Kind};

/// Parses `args` (without the program name) into `target` using `table`, like `FlagSet.Parse`.
pub fn parse<T, I>(table: &[Flag<T>], target: &mut T, args: I) -> Result<Parsed, ParseError>
where
    I: IntoIterator<Item = String>,
{
    crate::parse::parse(table, EVERY_COMMAND, Syntax::Go, target, args)
}

/// The word Go's `flag.UnquoteUsage` prints after the flag name.
fn type_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "",
        Kind::Int => "int",
        Kind::Float => "float",
        Kind::String => "string",
        Kind::Duration => "duration",
        Kind::Value => "value",
    }
}

/// Go prints `(default X)` only when the default differs from the type's zero value.
fn is_zero(kind: Kind, shown: &str) -> bool {
    match kind {
        Kind::Bool => shown == "false",
        Kind::Int | Kind::Float => shown == "0",
        Kind::Duration => shown == "0s",
        Kind::String | Kind::Value => shown.is_empty(),
    }
}

/// Usage text like Go's `flag.Usage`: a header, then flags sorted by name with their defaults.
pub fn usage<T>(program: &str, table: &[Flag<T>], defaults: &T) -> String {
    let mut rows: Vec<&Flag<T>> = table.iter().collect();
    rows.sort_by_key(|d| d.name);
    let mut out = format!("Usage of {program}:\n");
    for def in rows {
        let mut line = format!("  -{}", def.name);
        let type_name = type_word(def.kind);
        if !type_name.is_empty() {
            line.push(' ');
            line.push_str(type_name);
        }
        // Go keeps one-letter bool flags on one line and indents the help of all others.
        line.push_str(if line.len() <= 4 { "\t" } else { "\n    \t" });
        line.push_str(&def.help.replace('\n', "\n    \t"));
        let default = (def.get)(defaults);
        if !is_zero(def.kind, &default) {
            let shown = match def.kind {
                Kind::String => format!("{default:?}"),
                _ => default,
            };
            line.push_str(&format!(" (default {shown})"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Go's `strconv.ParseBool`: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(
            "parse error: expected true or false (also 1, t, T, TRUE, True, 0, f, F, FALSE, False)"
                .to_owned(),
        ),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: optional sign, `0x`/`0o`/`0b`/`0` prefixes, `_` separators.
pub fn parse_int(text: &str) -> Result<i64, String> {
    let syntax = || {
        "parse error: expected an integer (decimal, or 0x/0o/0b prefixed; optional sign and _ separators)"
            .to_owned()
    };
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'+') => (false, &text[1..]),
        Some(b'-') => (true, &text[1..]),
        _ => (false, text),
    };
    if unsigned.is_empty() || (unsigned.contains('_') && !underscores_ok(unsigned)) {
        return Err(syntax());
    }
    let (radix, digits) = split_radix(unsigned);
    let mut magnitude: u64 = 0;
    for c in digits.chars().filter(|c| *c != '_') {
        let digit = c.to_digit(radix).ok_or_else(syntax)?;
        magnitude = magnitude
            .checked_mul(u64::from(radix))
            .and_then(|m| m.checked_add(u64::from(digit)))
            .ok_or_else(out_of_range)?;
    }
    if negative {
        0_i64
            .checked_sub_unsigned(magnitude)
            .ok_or_else(out_of_range)
    } else {
        i64::try_from(magnitude).map_err(|_| out_of_range())
    }
}

fn out_of_range() -> String {
    "value out of range: must fit a signed 64-bit integer".to_owned()
}

/// Base and digits of an unsigned Go integer literal (base 0 rules).
fn split_radix(s: &str) -> (u32, &str) {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'0') {
        return (10, s);
    }
    if bytes.len() >= 3 {
        match bytes[1].to_ascii_lowercase() {
            b'x' => return (16, &s[2..]),
            b'o' => return (8, &s[2..]),
            b'b' => return (2, &s[2..]),
            _ => {}
        }
    }
    (8, &s[1..])
}

/// Go's `underscoreOK`: each `_` must sit between digits (a base prefix counts as a digit).
fn underscores_ok(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (mut start, mut saw, mut hex) = (0, b'^', false);
    if bytes.len() >= 2
        && bytes[0] == b'0'
        && matches!(bytes[1].to_ascii_lowercase(), b'b' | b'o' | b'x')
    {
        (start, saw, hex) = (2, b'0', bytes[1].eq_ignore_ascii_case(&b'x'));
    }
    for &c in &bytes[start..] {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else if saw == b'_' {
            return false;
        } else {
            saw = b'!';
        }
    }
    saw != b'_'
}

/// Renders a flag value as it would be written on the command line (Go's `flag.Value.String`).
pub trait Show {
    /// The command-line spelling; `""` for an unset optional value.
    fn show(&self) -> String;
}

macro_rules! show_with_to_string {
    ($($t:ty),*) => { $(impl Show for $t { fn show(&self) -> String { self.to_string() } })* };
}
show_with_to_string!(
    bool,
    u16,
    u32,
    u64,
    usize,
    i32,
    i64,
    f64,
    String,
    std::net::IpAddr
);

impl Show for Duration {
    fn show(&self) -> String {
        format_go_duration(*self)
    }
}

impl Show for PathBuf {
    fn show(&self) -> String {
        self.display().to_string()
    }
}

impl Show for Vec<SocketAddr> {
    fn show(&self) -> String {
        let items: Vec<String> = self.iter().map(SocketAddr::to_string).collect();
        items.join(",")
    }
}

impl<T: Show> Show for Option<T> {
    fn show(&self) -> String {
        self.as_ref().map(Show::show).unwrap_or_default()
    }
}

/// Builds one [`Flag`] row of a program without subcommands: `flag!(name, Kind, field.path, parser, help)`.
///
/// `parser` is any `fn(&str) -> Result<V, E>` with `E` = `String` (a reason, reported as
/// `invalid value "v" for flag -name: reason`) or [`SetError`](crate::SetError); the field's type must be [`Show`].
#[macro_export]
macro_rules! flag {
    ($name:literal, $kind:ident, $($field:ident).+, $parse:expr, $help:expr $(,)?) => {
        $crate::Flag {
            name: $name,
            kind: $crate::Kind::$kind,
            scope: $crate::EVERY_COMMAND,
            help: $help,
            set: |target, value| {
                target.$($field).+ = ($parse)(value)?;
                Ok(())
            },
            get: |target| $crate::goflag::Show::show(&target.$($field).+),
        }
    };
}
pub use crate::flag;

/// Declares a `Copy` enum of fixed command-line spellings with `ALL`, `as_str`, `lookup`,
/// `Display` and [`Show`].
#[macro_export]
macro_rules! spelled_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// Every value, in help order.
            pub const ALL: &[$name] = &[$($name::$variant,)+];

            /// The command-line spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            /// The value spelled exactly `text`.
            pub fn lookup(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::goflag::Show for $name {
            fn show(&self) -> String {
                self.as_str().to_owned()
            }
        }
    };
}
pub use crate::spelled_enum;
