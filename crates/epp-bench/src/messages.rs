//! The exchange the tool drives, and the replies it acts on read as errors rather than
//! panics. The messages themselves are built and read by `epp_testkit::messages`.

use envoy_types::pb::envoy::service::ext_proc::v3::{
    CommonResponse, ProcessingResponse, processing_response,
};
use epp_extproc::messages::DESTINATION_ENDPOINT;
use epp_testkit::messages as wire;

use crate::load::ErrorKind;

/// Which exchange `direct` drives (`--mode`). Not `epp_extproc::BodyMode`: that names every
/// body mode a gateway may announce, while the tool implements exactly these two
/// exchanges, so a match on this type needs no arm for a mode it cannot drive.
/// [`BodyMode::wire`] is the mode announced on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyMode {
    /// FULL_DUPLEX_STREAMED: chunks go out as they come; the server answers at its pace.
    FullDuplex,
    /// BUFFERED: one body message after the headers reply.
    Buffered,
}

impl BodyMode {
    pub fn wire(self) -> epp_extproc::BodyMode {
        match self {
            BodyMode::FullDuplex => epp_extproc::BodyMode::FullDuplexStreamed,
            BodyMode::Buffered => epp_extproc::BodyMode::Buffered,
        }
    }
}

/// Which phase a reply answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
}

impl Phase {
    /// The reply's kind as `epp_testkit::messages::kind` names it.
    fn kind(self) -> &'static str {
        match self {
            Phase::RequestHeaders => "request_headers",
            Phase::RequestBody => "request_body",
            Phase::ResponseHeaders => "response_headers",
            Phase::ResponseBody => "response_body",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Phase::RequestHeaders => "expected a request-headers reply",
            Phase::RequestBody => "expected a request-body reply",
            Phase::ResponseHeaders => "expected a response-headers reply",
            Phase::ResponseBody => "expected a response-body reply",
        }
    }
}

/// The reply's common part if it answers `phase`; an immediate response is an error with
/// its status, anything else a protocol error.
pub fn expect(
    reply: &ProcessingResponse,
    phase: Phase,
) -> Result<Option<&CommonResponse>, ErrorKind> {
    if let Some(processing_response::Response::ImmediateResponse(r)) = &reply.response {
        let status = r.status.as_ref().map_or(0, |s| s.code);
        return Err(ErrorKind::Immediate(u16::try_from(status).unwrap_or(0)));
    }
    match wire::kind(reply) == phase.kind() {
        true => Ok(wire::common(reply)),
        false => Err(ErrorKind::Protocol(phase.name())),
    }
}

/// The destination a routing reply to `phase` sets; header and `envoy.lb` metadata must agree.
pub fn destination(reply: &ProcessingResponse, phase: Phase) -> Result<String, ErrorKind> {
    expect(reply, phase)?;
    let header = wire::set_header(reply, DESTINATION_ENDPOINT)
        .ok_or(ErrorKind::Protocol("no destination header"))?;
    match wire::metadata_destination(reply) {
        Some(metadata) if metadata == header => Ok(header),
        Some(_) => Err(ErrorKind::Protocol(
            "destination header and metadata differ",
        )),
        None => Err(ErrorKind::Protocol("no destination metadata")),
    }
}

/// The FULL_DUPLEX_STREAMED body chunk a reply to `phase` carries: (length, end_of_stream).
pub fn streamed(reply: &ProcessingResponse, phase: Phase) -> Result<(usize, bool), ErrorKind> {
    expect(reply, phase)?;
    wire::streamed_chunk(reply)
        .map(|s| (s.body.len(), s.end_of_stream))
        .ok_or(ErrorKind::Protocol("expected a streamed body chunk"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use epp_extproc::messages as server;

    #[test]
    fn reads_the_servers_routing_reply() {
        let common = server::routing_common(
            vec![server::set_header(DESTINATION_ENDPOINT, "10.0.0.1:8000")],
            vec![],
        );
        let reply = server::request_headers(
            Some(common),
            Some(server::destination_metadata("10.0.0.1:8000")),
        );
        assert_eq!(
            destination(&reply, Phase::RequestHeaders),
            Ok("10.0.0.1:8000".to_owned())
        );
        assert_eq!(
            destination(&reply, Phase::RequestBody).err(),
            Some(ErrorKind::Protocol(Phase::RequestBody.name()))
        );
        let other =
            server::request_headers(None, Some(server::destination_metadata("10.0.0.2:8000")));
        assert!(destination(&other, Phase::RequestHeaders).is_err());
    }

    #[test]
    fn immediate_responses_carry_their_status() {
        let reply = server::immediate(503, "no".to_owned());
        assert_eq!(
            expect(&reply, Phase::RequestBody).err(),
            Some(ErrorKind::Immediate(503))
        );
    }

    #[test]
    fn reads_streamed_chunks() {
        let reply = server::request_body(Some(server::streamed_chunk(vec![1, 2, 3], true)), None);
        assert_eq!(streamed(&reply, Phase::RequestBody), Ok((3, true)));
        assert!(streamed(&reply, Phase::ResponseBody).is_err());
        let plain = server::request_body(None, None);
        assert!(streamed(&plain, Phase::RequestBody).is_err());
    }
}
