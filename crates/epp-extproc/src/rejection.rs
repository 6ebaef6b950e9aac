//! What a client gets when the EPP does not route its request: one mapping, shared by the
//! ext_proc immediate responses and the router mode (`epp-proxy`), so both answer the same
//! status and body for the same cause.

use epp_core::director::PickError;
use epp_core::flowcontrol::Refusal;
use epp_core::telemetry::metrics::ErrorCode;

/// Response header saying why flow control refused a request (`band_full`, `queue_full`,
/// `displaced`, `expired`).
pub const REJECTION_REASON_HEADER: &str = "x-gateway-inference-rejection-reason";

/// An HTTP answer instead of a routed request: its status, the `error_code` counted in
/// `inference_model_request_error_total`, and the body (v1.0.1's
/// `inference gateway: <Code> - <message>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub code: ErrorCode,
    pub body: String,
    /// [`REJECTION_REASON_HEADER`]'s value, for refusals by flow control.
    pub reason: Option<&'static str>,
}

impl Rejection {
    fn new(status: u16, code: ErrorCode, message: &str) -> Rejection {
        Rejection {
            status,
            code,
            body: format!("inference gateway: {} - {message}", code.as_str()),
            reason: None,
        }
    }

    /// Flow control refused the request: 429 (503 when the pool has no endpoint), with
    /// the reason in [`REJECTION_REASON_HEADER`].
    pub fn flow_control(refusal: Refusal) -> Rejection {
        let code = match refusal.status() {
            503 => ErrorCode::ServiceUnavailable,
            _ => ErrorCode::InferencePoolResourceExhausted,
        };
        let reason = refusal.reason.label();
        Rejection {
            reason: Some(reason),
            ..Rejection::new(
                refusal.status(),
                code,
                &format!("flow control: request {}", reason.replace('_', " ")),
            )
        }
    }

    /// The answer for a failed pick (v1.0.1 `buildErrResponse`); `None` for
    /// [`PickError::PoolNotSynced`], which ext_proc answers with a gRPC `UNAVAILABLE` so the
    /// gateway's failure mode applies (see [`Rejection::pool_not_ready`] for HTTP callers).
    pub fn pick(error: &PickError) -> Option<Rejection> {
        let (status, code) = match error {
            PickError::PoolNotSynced => return None,
            PickError::NoEndpoints | PickError::EmptyResult => (500, ErrorCode::Internal),
            PickError::NoCandidates => (503, ErrorCode::ServiceUnavailable),
            PickError::Shed | PickError::Scheduling(_) => {
                (429, ErrorCode::InferencePoolResourceExhausted)
            }
        };
        Some(Rejection::new(status, code, &error.to_string()))
    }

    /// The pool is not loaded yet, for a caller that must answer in HTTP (the router mode):
    /// 503, counted as ext_proc counts it (`Unknown`).
    pub fn pool_not_ready() -> Rejection {
        Rejection {
            status: 503,
            code: ErrorCode::Unknown,
            body: format!(
                "inference gateway: ServiceUnavailable - {}",
                PickError::PoolNotSynced
            ),
            reason: None,
        }
    }

    /// 413 for a request body over `--max-request-body-bytes` (`limit`).
    pub fn payload_too_large(limit: usize) -> Rejection {
        Rejection::new(
            413,
            ErrorCode::PayloadTooLarge,
            &format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 503 when buffering the body would take all requests past
    /// `--max-buffered-request-bytes`.
    pub fn budget_exhausted() -> Rejection {
        Rejection::new(
            503,
            ErrorCode::ServiceUnavailable,
            "request body buffer budget exhausted",
        )
    }

    /// 400 for a body that cannot be routed (`message` is safe to show).
    pub fn bad_request(message: &str) -> Rejection {
        Rejection::new(400, ErrorCode::BadRequest, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use epp_core::scheduling::SchedulingError;

    #[test]
    fn pick_errors_map_to_v1_statuses() {
        let table = [
            (PickError::NoEndpoints, 500, "Internal"),
            (PickError::EmptyResult, 500, "Internal"),
            (PickError::NoCandidates, 503, "ServiceUnavailable"),
            (PickError::Shed, 429, "InferencePoolResourceExhausted"),
            (
                PickError::Scheduling(SchedulingError::Handler("no runs".to_owned())),
                429,
                "InferencePoolResourceExhausted",
            ),
        ];
        for (error, status, code) in table {
            let rejection = Rejection::pick(&error).expect("an HTTP answer");
            assert_eq!((rejection.status, rejection.code.as_str()), (status, code));
            assert_eq!(
                rejection.body,
                format!("inference gateway: {code} - {error}")
            );
        }
        assert_eq!(Rejection::pick(&PickError::PoolNotSynced), None);
        assert_eq!(Rejection::pool_not_ready().status, 503);
    }

    #[test]
    fn limits_name_the_limit() {
        assert_eq!(
            Rejection::payload_too_large(10).body,
            "inference gateway: PayloadTooLarge - request body exceeds the limit of 10 bytes"
        );
        assert_eq!(Rejection::budget_exhausted().status, 503);
    }
}
