//! Why a message or batch could not be decoded.

/// A decoding failure. Field names are the vLLM struct and field (`BlockStored.token_ids`), so a
/// log line says where the payload went wrong; [`DecodeError::reason`] is a fixed label for
/// metrics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not the three frames `[topic, seq, payload]` (or two on the replay socket).
    #[error("expected {expected} frames, got {got}")]
    BadFrames { expected: usize, got: usize },
    /// The sequence frame is not 8 bytes.
    #[error("sequence frame is {len} bytes, expected 8")]
    BadSeq { len: usize },
    /// The all-`0xFF` sequence number: the end of a replay, not a batch.
    #[error("replay terminator")]
    ReplayTerminator,
    /// Past a [`crate::Limits`] bound (or longer than the input could hold).
    #[error("{what}: too large")]
    TooLarge { what: &'static str },
    /// A value of the wrong msgpack type.
    #[error("{field}: expected {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// A field the event cannot do without is absent.
    #[error("{field}: missing")]
    MissingField { field: &'static str },
    /// Not msgpack: truncated input, a reserved byte, invalid UTF-8, trailing bytes.
    #[error("{field}: malformed ({detail})")]
    Malformed {
        field: &'static str,
        detail: &'static str,
    },
}

impl DecodeError {
    /// A small fixed label for a metric: `bad_frames`, `bad_seq`, `replay_terminator`,
    /// `too_large`, `wrong_type`, `missing_field` or `malformed`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadFrames { .. } => "bad_frames",
            Self::BadSeq { .. } => "bad_seq",
            Self::ReplayTerminator => "replay_terminator",
            Self::TooLarge { .. } => "too_large",
            Self::WrongType { .. } => "wrong_type",
            Self::MissingField { .. } => "missing_field",
            Self::Malformed { .. } => "malformed",
        }
    }
}
