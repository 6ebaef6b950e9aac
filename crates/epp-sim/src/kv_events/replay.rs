//! The replay socket, as vLLM's `ZmqEventPublisher._service_replay`: a bounded buffer of the
//! last batches and a ROUTER that streams them to whoever asks.
//!
//! Framing (vLLM `vllm/distributed/kv_events.py`): a DEALER sends `[b"", start_seq]`, `start_seq`
//! big-endian (vLLM reads it with `int.from_bytes(.., "big")`, so any length; 8 bytes in
//! practice). The ROUTER receives `[identity, b"", start_seq]`; any other frame count is ignored
//! (vLLM logs and drops it). For each buffered batch with `seq >= start_seq`, oldest first, it
//! sends `[identity, b"", seq (8 bytes BE), payload]`, then the terminator
//! `[identity, b"", 0xFF×8 (seq −1), b""]`. The ROUTER strips the identity, so the DEALER reads
//! `[b"", seq, payload]` and finally `[b"", 0xFF×8, b""]`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use zeromq::{RouterSocket, SocketRecv, SocketSend};

use crate::kv_events::faults::Outgoing;
use crate::kv_events::frames_message;
use crate::server::stopped;

/// The seq of the end-of-replay message: −1 as a signed 64-bit integer.
const END_SEQ: [u8; 8] = [0xFF; 8];

/// How long one reply frame may wait for a slow client before the replay is abandoned.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The last `capacity` batches, oldest first (vLLM's `deque(maxlen=buffer_steps)`).
#[derive(Debug)]
pub(crate) struct ReplayBuffer {
    entries: VecDeque<Outgoing>,
    capacity: usize,
}

impl ReplayBuffer {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(capacity.min(1024)),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn push(&mut self, batch: Outgoing) {
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(batch);
    }

    /// Copies (cheap: payloads are shared) of the batches with `seq >= start`, oldest first.
    pub(crate) fn since(&self, start: u64) -> Vec<Outgoing> {
        self.entries
            .iter()
            .filter(|b| b.seq >= start)
            .cloned()
            .collect()
    }
}

/// A replay buffer shared by the publisher (writes) and the replay task (reads).
pub(crate) type SharedReplay = Arc<Mutex<ReplayBuffer>>;

/// `start_seq` as vLLM reads it: big-endian of any length; values past `u64::MAX` saturate.
pub(crate) fn start_seq(frame: &[u8]) -> u64 {
    let split = frame.len().saturating_sub(8);
    let (high, low) = frame.split_at(split);
    if high.iter().any(|&b| b != 0) {
        return u64::MAX;
    }
    low.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// Serves replay requests until `stop`.
pub(crate) async fn serve(
    mut router: RouterSocket,
    buffer: SharedReplay,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let request = tokio::select! {
            request = router.recv() => request,
            () = stopped(&mut stop) => return,
        };
        let frames = match request {
            Ok(message) => message.into_vec(),
            Err(error) => {
                tracing::debug!(%error, "sim: kv-events replay socket");
                continue;
            }
        };
        let [identity, _delimiter, start] = frames.as_slice() else {
            tracing::warn!(
                frames = frames.len(),
                "sim: invalid kv-events replay request"
            );
            continue;
        };
        let batches = buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .since(start_seq(start));
        let replies = batches
            .into_iter()
            .map(|b| (Bytes::copy_from_slice(&b.seq.to_be_bytes()), b.payload))
            .chain([(Bytes::from_static(&END_SEQ), Bytes::new())]);
        for (seq, payload) in replies {
            let reply = frames_message([identity.clone(), Bytes::new(), seq, payload]);
            match tokio::time::timeout(SEND_TIMEOUT, router.send(reply)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%error, "sim: kv-events replay abandoned");
                    break;
                }
                Err(_) => {
                    tracing::debug!("sim: kv-events replay client too slow; abandoned");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seq: u64) -> Outgoing {
        Outgoing {
            seq,
            payload: Bytes::from(vec![seq as u8]),
        }
    }

    #[test]
    fn the_buffer_keeps_the_newest_and_answers_from_a_start() {
        let mut buffer = ReplayBuffer::new(3);
        (0..5).for_each(|s| buffer.push(batch(s)));
        let seqs = |start| {
            buffer
                .since(start)
                .iter()
                .map(|b| b.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(0), [2, 3, 4]);
        assert_eq!(seqs(3), [3, 4]);
        assert!(seqs(5).is_empty());
    }

    #[test]
    fn start_seq_reads_big_endian_of_any_length() {
        assert_eq!(start_seq(&7u64.to_be_bytes()), 7);
        assert_eq!(start_seq(&[1, 0]), 256);
        assert_eq!(start_seq(&[]), 0);
        assert_eq!(start_seq(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 9]), 9);
        assert_eq!(start_seq(&[1, 0, 0, 0, 0, 0, 0, 0, 0]), u64::MAX);
    }
}
