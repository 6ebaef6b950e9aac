//! How an HTTP request's prompts become engine sequences: [`SimClient`] turns the engine's
//! tokens into [`TokenEvent`]s on the request's channel, with words from its [`OutputPlan`].

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use epp_engine::{Client, Emitted};

use crate::tokens::{OutputPlan, TokenizedPrompt, word_token};

pub use epp_engine::Finish;

/// One output token of choice `index`; the last one carries `finish`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenEvent {
    /// The choice (prompt) this token belongs to.
    pub index: u32,
    /// Index of the word in [`crate::tokens::VOCAB`].
    pub word: u8,
    /// Set on the sequence's last token.
    pub finish: Option<Finish>,
}

/// The engine's view of one choice of an HTTP request.
#[derive(Debug)]
pub struct SimClient {
    /// The choice index reported back in events.
    index: u32,
    output: OutputPlan,
    /// Where tokens go; a closed channel aborts the sequence.
    events: UnboundedSender<TokenEvent>,
}

impl Client for SimClient {
    fn output_token(&mut self, n: usize) -> u32 {
        u32::from_le_bytes(word_token(self.output.word(n)))
    }

    fn emit(&mut self, token: Emitted) -> bool {
        let event = TokenEvent {
            index: self.index,
            word: self.output.word(token.n),
            finish: token.finish,
        };
        self.events.send(event).is_ok()
    }

    fn is_abandoned(&self) -> bool {
        self.events.is_closed()
    }
}

/// One prompt to complete, as the engine takes it.
pub type NewSequence = epp_engine::NewSequence<SimClient>;

/// A sequence for choice `index` of `prompt`, producing `output`, reporting to `events`.
pub fn new_sequence(
    index: u32,
    adapter: Option<Arc<str>>,
    hash_seed: u64,
    prompt: &TokenizedPrompt,
    output: OutputPlan,
    max_tokens: usize,
    events: UnboundedSender<TokenEvent>,
) -> NewSequence {
    NewSequence {
        adapter,
        hash_seed,
        prompt: prompt.token_ids(),
        output_len: output.len,
        max_tokens,
        client: SimClient {
            index,
            output,
            events,
        },
    }
}
