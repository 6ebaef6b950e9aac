//! One row of a flag table, the single definition of "a flag" for all three binaries.

/// How a flag takes its value; decides bool handling and the type word in Go's usage text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A switch: `-name` alone means true; a value must be attached as `-name=false`.
    Bool,
    /// A Go `int` (`strconv.ParseInt(s, 0, 64)` syntax).
    Int,
    /// A Go `float64`.
    Float,
    /// A string; Go's usage shows its default quoted.
    String,
    /// A Go duration (`50ms`, `1h30m`).
    Duration,
    /// Any other value (a Go `flag.Value`, shown as `value` in Go's usage).
    Value,
}

/// Why a setter rejected a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    /// What is wrong and what is allowed; the parser names the flag and the value.
    Invalid(String),
    /// A complete message used verbatim (to keep an upstream wording); it must name the flag.
    Message(String),
}

impl From<String> for SetError {
    fn from(reason: String) -> Self {
        SetError::Invalid(reason)
    }
}

/// Stores a flag's text value into the target, validating it.
pub type Setter<T> = fn(&mut T, &str) -> Result<(), SetError>;
/// Renders a flag's current value (for usage defaults, logs and reports).
pub type Getter<T> = fn(&T) -> String;

/// The scope of every flag of a program without subcommands.
pub const EVERY_COMMAND: u8 = u8::MAX;

/// One row of a flag table.
pub struct Flag<T> {
    /// Name without dashes, e.g. `grpc-port`.
    pub name: &'static str,
    /// How the value is taken and shown.
    pub kind: Kind,
    /// Bit set of the subcommands that take the flag ([`EVERY_COMMAND`] without subcommands).
    pub scope: u8,
    /// One-line help.
    pub help: &'static str,
    /// Applies a value; a switch given bare receives `"true"`.
    pub set: Setter<T>,
    /// Shows the current value.
    pub get: Getter<T>,
}

impl<T> Flag<T> {
    /// A flag that takes a value, for the subcommands in `scope`.
    pub const fn new(
        name: &'static str,
        scope: u8,
        help: &'static str,
        set: Setter<T>,
        get: Getter<T>,
    ) -> Self {
        Flag {
            name,
            kind: Kind::Value,
            scope,
            help,
            set,
            get,
        }
    }

    /// The same flag as a switch, which may be given without a value.
    pub const fn as_switch(self) -> Self {
        Flag {
            kind: Kind::Bool,
            ..self
        }
    }
}
