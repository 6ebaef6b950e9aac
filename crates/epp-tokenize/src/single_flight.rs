//! One `/tokenize` call per prompt at a time: callers that ask for a prompt already being
//! tokenized wait for that call's answer instead of making their own.

use std::sync::Arc;

use epp_core::tokens::{TokenizeError, Tokens};
use hashbrown::HashMap;
use parking_lot::Mutex;
use tokio::sync::watch;

type Outcome = Option<Result<Tokens, TokenizeError>>;

/// The calls in progress, by cache key. Holds one entry per distinct prompt being
/// tokenized, so it is bounded by the requests in flight.
#[derive(Debug, Default)]
pub struct InFlight {
    calls: Mutex<HashMap<u64, watch::Receiver<Outcome>>>,
}

/// What a caller does for its prompt.
pub enum Role {
    /// Make the call and [`Leader::finish`] with its result.
    Leader(Leader),
    /// Wait for the leader's result with [`wait`].
    Follower(watch::Receiver<Outcome>),
}

impl InFlight {
    pub fn join(self: &Arc<Self>, key: u64) -> Role {
        let mut calls = self.calls.lock();
        if let Some(call) = calls.get(&key) {
            return Role::Follower(call.clone());
        }
        let (sender, receiver) = watch::channel(None);
        calls.insert(key, receiver);
        Role::Leader(Leader {
            flight: Arc::clone(self),
            key,
            sender,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.calls.lock().len()
    }
}

/// The caller making the call for a prompt. Dropping it (finished, or cancelled by its
/// caller's timeout) ends the entry, so a later caller starts afresh.
pub struct Leader {
    flight: Arc<InFlight>,
    key: u64,
    sender: watch::Sender<Outcome>,
}

impl Leader {
    /// Hands `result` to the callers waiting on this prompt.
    pub fn finish(self, result: &Result<Tokens, TokenizeError>) {
        self.sender.send_replace(Some(result.clone()));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.flight.calls.lock().remove(&self.key);
    }
}

/// The leader's result, or `None` if the leader went away without one (its caller gave
/// up): the follower may then lead a call of its own.
pub async fn wait(mut call: watch::Receiver<Outcome>) -> Outcome {
    let outcome = call.wait_for(Option::is_some).await.ok()?;
    outcome.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_result_and_the_entry_ends() {
        let flight = Arc::new(InFlight::default());
        let Role::Leader(leader) = flight.join(7) else {
            panic!("the first caller leads");
        };
        let Role::Follower(follower) = flight.join(7) else {
            panic!("the second caller follows");
        };
        assert!(
            matches!(flight.join(8), Role::Leader(_)),
            "another prompt leads"
        );
        let waiting = tokio::spawn(wait(follower));
        leader.finish(&Ok(Tokens::from(&[1, 2][..])));
        let got = waiting.await.expect("the follower task ran");
        assert_eq!(got, Some(Ok(Tokens::from(&[1, 2][..]))));
        assert_eq!(flight.len(), 0);
        assert!(
            matches!(flight.join(7), Role::Leader(_)),
            "a finished call is gone"
        );
    }

    #[tokio::test]
    async fn a_leader_that_gives_up_releases_its_followers() {
        let flight = Arc::new(InFlight::default());
        let leader = flight.join(1);
        let Role::Follower(follower) = flight.join(1) else {
            panic!("the second caller follows");
        };
        drop(leader);
        assert_eq!(wait(follower).await, None);
        assert_eq!(flight.len(), 0);
    }
}
