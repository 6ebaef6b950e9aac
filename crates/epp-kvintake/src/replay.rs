//! The replay client: asks an engine's ROUTER socket for the batches of a gap.
//!
//! vLLM's protocol (`ZmqEventPublisher._service_replay`): a DEALER sends `["", start_seq]`
//! (8 bytes big-endian); the ROUTER answers `["", seq, payload]` for every buffered batch at
//! or after `start_seq`, then `["", 0xFF..FF, ""]`. A fresh socket per gap keeps replies of
//! an abandoned replay from mixing with the next one.

use std::time::Duration;

use bytes::Bytes;
use epp_kvevents::{DecodeError, EventBatch, Limits, decode_replay_message};
use zeromq::{DealerSocket, Socket, SocketOptions, SocketRecv, SocketSend, ZmqMessage};

/// The most batches one replay may hand back (they are held in memory until applied).
const MAX_REPLAYED: u64 = 4096;

/// What a replay brought back, in seq order.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    pub batches: Vec<(u64, EventBatch)>,
    /// The publisher ended the replay (terminator, or the requested range was covered).
    pub finished: bool,
    /// A reply that did not decode, by reason (counted by the caller).
    pub decode_error: Option<&'static str>,
}

/// Requests `from..until` from `endpoint` (`tcp://ip:port`) within `timeout`. Replies at or
/// after `until` are not needed (the live stream has them), so reading stops there.
pub(crate) async fn replay(
    endpoint: &str,
    from: u64,
    until: u64,
    limits: &Limits,
    timeout: Duration,
) -> Replayed {
    let mut out = Replayed::default();
    let _ = tokio::time::timeout(timeout, exchange(endpoint, from, until, limits, &mut out)).await;
    out
}

async fn exchange(endpoint: &str, from: u64, until: u64, limits: &Limits, out: &mut Replayed) {
    let mut options = SocketOptions::default();
    options.no_connect_timeout();
    let mut socket = DealerSocket::with_options(options);
    if let Err(error) = socket.connect(endpoint).await {
        tracing::debug!(endpoint, %error, "KV events: replay connection failed");
        return;
    }
    let request = vec![Bytes::new(), Bytes::copy_from_slice(&from.to_be_bytes())];
    let Ok(request) = ZmqMessage::try_from(request) else {
        return;
    };
    if let Err(error) = socket.send(request).await {
        tracing::debug!(endpoint, %error, "KV events: replay request failed");
        return;
    }
    let wanted = until.saturating_sub(from).min(MAX_REPLAYED);
    while (out.batches.len() as u64) < wanted {
        let Ok(reply) = socket.recv().await else {
            return;
        };
        let frames: Vec<&[u8]> = reply.iter().map(|f| f.as_ref()).collect();
        // The DEALER keeps the ROUTER's empty delimiter frame.
        let frames = match frames.as_slice() {
            [[], rest @ ..] => rest,
            all => all,
        };
        match decode_replay_message(frames, limits) {
            Ok(message) if message.seq >= until => break,
            Ok(message) => out.batches.push((message.seq, message.batch)),
            Err(DecodeError::ReplayTerminator) => break,
            Err(error) => {
                out.decode_error = Some(error.reason());
                return;
            }
        }
    }
    out.finished = true;
}
