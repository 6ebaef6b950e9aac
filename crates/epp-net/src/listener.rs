//! Accepting TCP connections on every listener (ext_proc, health, metrics) without
//! spinning when the process runs out of file descriptors.
//!
//! `accept` fails with EMFILE/ENFILE while descriptors are exhausted, and the listening
//! socket stays readable, so a loop that retries at once (tonic's own accept loop does)
//! burns a core and floods the log. [`Acceptor`] backs off instead: 10 ms after the first
//! failure, doubling to 1 s, logging once when it starts failing and once when it
//! accepts again. Errors that belong to one connection (the client reset it before we
//! took it) are skipped without a pause.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::Stream;
use tokio::net::{TcpListener, TcpStream};

/// First pause after a failed `accept`.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between two `accept` attempts while failing.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What to do about one `accept` outcome; pure, so the policy is tested without
/// exhausting descriptors.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    /// Consecutive resource failures (0 = healthy).
    failures: u64,
}

/// The action after a failed `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnError {
    /// Wait this long before the next attempt.
    pub pause: Duration,
    /// Log the error: the first failure of a run.
    pub log: bool,
}

impl AcceptBackoff {
    /// A failed `accept`.
    pub fn on_error(&mut self, error: &io::Error) -> OnError {
        if is_connection_error(error) {
            return OnError {
                pause: Duration::ZERO,
                log: false,
            };
        }
        self.failures += 1;
        let doublings = u32::try_from(self.failures - 1).unwrap_or(u32::MAX).min(16);
        OnError {
            pause: FIRST_BACKOFF
                .saturating_mul(1 << doublings)
                .min(MAX_BACKOFF),
            log: self.failures == 1,
        }
    }

    /// A successful `accept`; returns how many failures ended with it (0 = none, no log).
    pub fn on_success(&mut self) -> u64 {
        std::mem::take(&mut self.failures)
    }
}

/// The client gave up on this one connection; the listener itself is fine.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// A listener that never returns an accept error: it backs off and retries.
#[derive(Debug)]
pub struct Acceptor {
    listener: TcpListener,
    /// The flag that names the port (`grpc-port`, `metrics-port`...), for the log.
    name: &'static str,
    backoff: AcceptBackoff,
}

impl Acceptor {
    pub fn new(listener: TcpListener, name: &'static str) -> Acceptor {
        Acceptor {
            listener,
            name,
            backoff: AcceptBackoff::default(),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection, with `TCP_NODELAY` set (every server here answers small
    /// messages that must not wait for the peer's delayed ACK).
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let failures = self.backoff.on_success();
                    if failures > 0 {
                        tracing::info!(
                            listener = self.name,
                            failed_attempts = failures,
                            "accepting connections again"
                        );
                    }
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(listener = self.name, %peer, %error, "cannot set TCP_NODELAY");
                    }
                    return (stream, peer);
                }
                Err(error) => {
                    let action = self.backoff.on_error(&error);
                    if action.log {
                        tracing::error!(listener = self.name, %error, "cannot accept connections (out of file descriptors?); retrying with back-off up to 1s");
                    }
                    if !action.pause.is_zero() {
                        tokio::time::sleep(action.pause).await;
                    }
                }
            }
        }
    }

    /// The connections as a stream for tonic's `serve_with_incoming`; never yields an error.
    pub fn into_stream(self) -> impl Stream<Item = Result<TcpStream, io::Error>> + Send + 'static {
        futures_util::stream::unfold(self, |mut acceptor| async move {
            let (stream, _) = acceptor.accept().await;
            Some((Ok(stream), acceptor))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(24) // EMFILE
    }

    #[test]
    fn resource_errors_back_off_doubling_to_a_second_and_log_once() {
        let mut backoff = AcceptBackoff::default();
        let actions: Vec<OnError> = (0..10).map(|_| backoff.on_error(&emfile())).collect();
        let pauses: Vec<u64> = actions.iter().map(|a| a.pause.as_millis() as u64).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(actions.iter().filter(|a| a.log).count(), 1);
        assert!(actions[0].log);
        // Recovery reports the run once and resets the policy.
        assert_eq!(backoff.on_success(), 10);
        assert_eq!(backoff.on_success(), 0);
        let again = backoff.on_error(&emfile());
        assert_eq!((again.pause, again.log), (FIRST_BACKOFF, true));
    }

    #[test]
    fn backoff_saturates_after_a_long_outage() {
        let mut backoff = AcceptBackoff::default();
        for _ in 0..100_000 {
            backoff.on_error(&emfile());
        }
        let action = backoff.on_error(&emfile());
        assert_eq!((action.pause, action.log), (MAX_BACKOFF, false));
    }

    #[test]
    fn a_client_reset_is_skipped_without_pause_or_log() {
        let mut backoff = AcceptBackoff::default();
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        let action = backoff.on_error(&reset);
        assert_eq!((action.pause, action.log), (Duration::ZERO, false));
        assert_eq!(backoff.on_success(), 0);
    }

    #[tokio::test]
    async fn accepts_and_sets_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let mut acceptor = Acceptor::new(listener, "test-port");
        let client = tokio::spawn(TcpStream::connect(address));
        let (stream, _) = acceptor.accept().await;
        assert!(stream.nodelay().expect("nodelay"));
        client.await.expect("join").expect("connect");
    }
}
