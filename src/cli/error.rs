//! Why the command line was rejected, with the exit code and stderr text for each case.

/// Why the command line was not turned into [`Options`](super::Options); see
/// [`CliError::exit_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// `-h`/`-help`/`--help`: print the usage text (the payload) to stderr and exit 0.
    #[error("{0}")]
    Help(String),
    /// Malformed command line (unknown flag, missing value): message then usage, exit 2.
    #[error("{message}")]
    Usage {
        /// One line naming the flag.
        message: String,
        /// The full usage text.
        usage: String,
    },
    /// A flag value or combination of flags is invalid: one line, exit 1.
    #[error("{message}")]
    Invalid {
        /// The flag at fault (without dashes).
        flag: String,
        /// One line naming the flag, what is wrong and what is allowed.
        message: String,
    },
    /// Arguments left after the flags (the EPP takes none): one line, exit 1.
    #[error("{message}")]
    Positional {
        /// The leftover arguments.
        args: Vec<String>,
        /// One line naming them.
        message: String,
    },
}

impl CliError {
    /// Process exit code: 0 for help, 2 for usage errors (as Go), 1 for invalid values.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Help(_) => 0,
            CliError::Usage { .. } => 2,
            CliError::Invalid { .. } | CliError::Positional { .. } => 1,
        }
    }

    /// Everything to write to stderr, ending with a newline.
    pub fn stderr_text(&self) -> String {
        match self {
            CliError::Help(usage) => usage.clone(),
            CliError::Usage { message, usage } => format!("{message}\n{usage}"),
            CliError::Invalid { message, .. } | CliError::Positional { message, .. } => {
                format!("{message}\n")
            }
        }
    }

    pub(super) fn invalid(flag: &str, message: impl Into<String>) -> CliError {
        CliError::Invalid {
            flag: flag.to_owned(),
            message: message.into(),
        }
    }
}
