//! Standalone discovery: a fixed `--endpoints` list, or an `--endpoints-file` that is
//! re-read when it changes (keeping the last good version on a bad edit).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::datastore::{Datastore, DatastoreError, EndpointSpec, PoolInfo};

/// Pool name reported in standalone mode (no InferencePool object exists).
pub const STANDALONE_POOL: &str = "standalone";

/// Why an endpoints file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum EndpointsFileError {
    #[error("cannot read endpoints file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("endpoints file {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("endpoints file {path}: {source}")]
    Datastore {
        path: String,
        #[source]
        source: DatastoreError,
    },
}

/// One entry: `"ip:port"` or `{address: "ip:port", name: ..., labels: {...}}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileEntry {
    Address(String),
    Detailed(DetailedEntry),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailedEntry {
    address: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The file: a list of entries, or `{endpoints: [...]}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EndpointsFile {
    List(Vec<FileEntry>),
    Wrapped { endpoints: Vec<FileEntry> },
}

/// Parses endpoints-file text (YAML or JSON).
pub fn parse_endpoints_file(
    text: &str,
    path: &str,
) -> Result<Vec<EndpointSpec>, EndpointsFileError> {
    let invalid = |message: String| EndpointsFileError::Invalid {
        path: path.to_owned(),
        message,
    };
    let file: EndpointsFile = serde_saphyr::from_str(text).map_err(|e| {
        invalid(format!(
            "expected a list of \"ip:port\" strings or {{address, name, labels}} entries: {e}"
        ))
    })?;
    let entries = match file {
        EndpointsFile::List(entries) | EndpointsFile::Wrapped { endpoints: entries } => entries,
    };
    let mut specs: Vec<EndpointSpec> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let (address, name, labels) = match entry {
            FileEntry::Address(address) => (address, None, BTreeMap::new()),
            FileEntry::Detailed(d) => (d.address, d.name, d.labels),
        };
        let parsed: SocketAddr = address
            .trim()
            .parse()
            .map_err(|_| invalid(format!("entry {i}: address \"{address}\" is not ip:port")))?;
        if specs.iter().any(|s| s.address == parsed) {
            return Err(invalid(format!(
                "entry {i}: address {parsed} is listed twice"
            )));
        }
        specs.push(EndpointSpec {
            address: parsed,
            name: name.unwrap_or_else(|| parsed.to_string()),
            labels,
        });
    }
    Ok(specs)
}

/// Marks the standalone pool as synced, with the target ports of `specs`.
fn set_standalone_pool(datastore: &Datastore, specs: &[EndpointSpec]) {
    let mut ports: Vec<u16> = specs.iter().map(|s| s.address.port()).collect();
    ports.sort_unstable();
    ports.dedup();
    datastore.set_pool(PoolInfo {
        name: STANDALONE_POOL.into(),
        namespace: String::new(),
        target_ports: ports,
    });
}

/// Loads a fixed list (`--endpoints`); the pool counts as synced at once.
pub fn load_static(datastore: &Datastore, addresses: &[SocketAddr]) -> Result<(), DatastoreError> {
    let specs: Vec<EndpointSpec> = addresses
        .iter()
        .copied()
        .map(EndpointSpec::from_address)
        .collect();
    datastore.replace_endpoints(specs.clone())?;
    set_standalone_pool(datastore, &specs);
    Ok(())
}

/// Watches an endpoints file: loaded once now (an error here is fatal), then re-read
/// every `poll` when its content changes.
pub struct EndpointsFileWatcher {
    path: PathBuf,
    datastore: Arc<Datastore>,
    last_text: String,
}

impl EndpointsFileWatcher {
    /// Reads and applies the file; fails if it is missing or invalid.
    pub fn load(path: &Path, datastore: Arc<Datastore>) -> Result<Self, EndpointsFileError> {
        let mut watcher = EndpointsFileWatcher {
            path: path.to_owned(),
            datastore,
            last_text: String::new(),
        };
        let text = watcher.read()?;
        watcher.apply(&text)?;
        watcher.last_text = text;
        Ok(watcher)
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
                tracing::warn!(error = %e, "keeping the last good endpoints");
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
                tracing::info!(endpoints = count, path = %self.path.display(), "endpoints file reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "endpoints file rejected; keeping the last good endpoints");
                false
            }
        }
    }

    fn read(&self) -> Result<String, EndpointsFileError> {
        std::fs::read_to_string(&self.path).map_err(|source| EndpointsFileError::Read {
            path: self.path.display().to_string(),
            source,
        })
    }

    fn apply(&self, text: &str) -> Result<usize, EndpointsFileError> {
        let path = self.path.display().to_string();
        let specs = parse_endpoints_file(text, &path)?;
        let count = specs.len();
        self.datastore
            .replace_endpoints(specs.clone())
            .map_err(|source| EndpointsFileError::Datastore { path, source })?;
        set_standalone_pool(&self.datastore, &specs);
        Ok(count)
    }
}

#[cfg(test)]
mod tests;
