//! Standalone discovery: a fixed `--endpoints` list, or an `--endpoints-file` that is
//! re-read when it changes (keeping the last good version on a bad edit).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;

use crate::watched_file::{FileContent, WatchedFile};
use epp_core::datastore::{Datastore, DatastoreError, EndpointSpec, PoolInfo};

/// Pool name reported in standalone mode (no InferencePool object exists).
pub const STANDALONE_POOL: &str = "standalone";

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
enum FileLayout {
    List(Vec<FileEntry>),
    Wrapped { endpoints: Vec<FileEntry> },
}

/// Parses endpoints-file text (YAML or JSON); the error names the entry.
pub fn parse_endpoints_file(text: &str) -> Result<Vec<EndpointSpec>, String> {
    let file: FileLayout = serde_saphyr::from_str(text).map_err(|e| {
        format!("expected a list of \"ip:port\" strings or {{address, name, labels}} entries: {e}")
    })?;
    let entries = match file {
        FileLayout::List(entries) | FileLayout::Wrapped { endpoints: entries } => entries,
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
            .map_err(|_| format!("entry {i}: address \"{address}\" is not ip:port"))?;
        if specs.iter().any(|s| s.address == parsed) {
            return Err(format!("entry {i}: address {parsed} is listed twice"));
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

/// The content of an `--endpoints-file`: the pool's endpoints.
pub struct EndpointsFile(pub Arc<Datastore>);

impl FileContent for EndpointsFile {
    const WHAT: &'static str = "endpoints";

    fn apply(&self, text: &str) -> Result<usize, String> {
        let specs = parse_endpoints_file(text)?;
        let count = specs.len();
        self.0
            .replace_endpoints(specs.clone())
            .map_err(|e| e.to_string())?;
        set_standalone_pool(&self.0, &specs);
        Ok(count)
    }
}

/// Watches an `--endpoints-file`.
pub type EndpointsFileWatcher = WatchedFile<EndpointsFile>;

#[cfg(test)]
mod tests;
