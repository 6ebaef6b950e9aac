//! A file that is re-read when its content changes (polling, which also follows the
//! symlink swaps of Kubernetes ConfigMap volumes), keeping the last good version on a bad
//! edit.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a watched file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} file {path}: {message}")]
    Invalid {
        what: &'static str,
        path: String,
        message: String,
    },
}

/// What a watched file holds and how to apply it.
pub trait FileContent: Send + 'static {
    /// What the file holds, for messages (`endpoints`, `objectives`).
    const WHAT: &'static str;

    /// Parses `text` and applies it; returns the number of entries. On error nothing
    /// changes. The message should name the entry and the problem.
    fn apply(&self, text: &str) -> Result<usize, String>;
}

/// A file of `C`, applied at load and again whenever its content changes.
pub struct WatchedFile<C: FileContent> {
    path: PathBuf,
    content: C,
    last_text: String,
}

impl<C: FileContent> WatchedFile<C> {
    /// Reads and applies the file; fails if it is missing or invalid.
    pub fn load(path: &Path, content: C) -> Result<Self, FileError> {
        let mut file = WatchedFile {
            path: path.to_owned(),
            content,
            last_text: String::new(),
        };
        let text = file.read()?;
        file.apply(&text)?;
        file.last_text = text;
        Ok(file)
    }

    /// Polls for changes until the task is dropped. Bad edits are logged and skipped.
    pub async fn watch(mut self, poll: Duration) {
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.reload_if_changed();
        }
    }

    /// One poll: re-applies the file if its content changed. Returns whether it applied.
    pub fn reload_if_changed(&mut self) -> bool {
        let text = match self.read() {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(error = %e, "keeping the last good {}", C::WHAT);
                return false;
            }
        };
        if text == self.last_text {
            return false;
        }
        let result = self.apply(&text);
        // Remember bad text too, so one bad edit is reported once, not every poll.
        self.last_text = text;
        match result {
            Ok(count) => {
                tracing::info!(entries = count, path = %self.path.display(), "{} file reloaded", C::WHAT);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "{} file rejected; keeping the last good version", C::WHAT);
                false
            }
        }
    }

    fn read(&self) -> Result<String, FileError> {
        std::fs::read_to_string(&self.path).map_err(|source| FileError::Read {
            what: C::WHAT,
            path: self.path.display().to_string(),
            source,
        })
    }

    fn apply(&self, text: &str) -> Result<usize, FileError> {
        self.content
            .apply(text)
            .map_err(|message| FileError::Invalid {
                what: C::WHAT,
                path: self.path.display().to_string(),
                message,
            })
    }
}
