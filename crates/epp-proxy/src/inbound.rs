//! Reading a request body within `--max-request-body-bytes` and the process-wide buffer
//! budget, as ext_proc buffers one.

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use epp_extproc::{BudgetLease, Rejection};

/// Why a body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Over the limit, or the budget is spent: the client gets this.
    Rejected(Rejection),
    /// The client's stream broke (it left, or sent a malformed body).
    Client(hyper::Error),
}

/// Reads the whole body into one buffer, counting it against `lease`. A declared
/// `content-length` over `limit` is refused before a byte is read.
pub(crate) async fn read_body(
    mut body: Incoming,
    declared: Option<u64>,
    limit: usize,
    lease: &mut BudgetLease,
) -> Result<Bytes, BodyError> {
    let too_large = || BodyError::Rejected(Rejection::payload_too_large(limit));
    let declared = declared.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut buffer: Option<Vec<u8>> = None;
    let mut first: Option<Bytes> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Client)?;
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers: nothing to route on
        };
        let held = first.as_ref().map_or(0, Bytes::len) + buffer.as_ref().map_or(0, Vec::len);
        if held.saturating_add(chunk.len()) > limit {
            return Err(too_large());
        }
        lease
            .grow(chunk.len())
            .map_err(|_| BodyError::Rejected(Rejection::budget_exhausted()))?;
        // A body in one frame (the common case) is kept as it came, never copied.
        match (&mut buffer, first.take()) {
            (None, None) => first = Some(chunk),
            (None, Some(earlier)) => {
                let mut joined =
                    Vec::with_capacity(declared.unwrap_or(0).max(earlier.len() + chunk.len()));
                joined.extend_from_slice(&earlier);
                joined.extend_from_slice(&chunk);
                buffer = Some(joined);
            }
            (Some(joined), _) => joined.extend_from_slice(&chunk),
        }
    }
    Ok(match (buffer, first) {
        (Some(joined), _) => Bytes::from(joined),
        (None, Some(only)) => only,
        (None, None) => Bytes::new(),
    })
}
