//! Protocol tests: the real gRPC service driven message by message like Envoy, in
//! FULL_DUPLEX_STREAMED and BUFFERED modes (ported from the upstream hermetic test
//! table, plus the error and edge cases of this EPP).

epp_testkit::loopback_epp!();

mod body_modes;
mod body_text;
mod buffering;
mod burst;
mod errors;
mod hint_limits;
mod logging;
mod mode_override;
mod precise;
mod request_log;
mod response;
mod scenarios;
mod simulated;
mod traces;
