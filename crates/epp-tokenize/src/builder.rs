//! Builds the token source a scorer's [`TokenizerSpec`] asks for.

use std::path::PathBuf;
use std::sync::Arc;

use epp_core::datastore::Datastore;
use epp_core::tokens::{TokenSource, TokenizerSpec};

use crate::chat_template::ChatTemplate;
use crate::file::FileSource;
use crate::model_server::{ModelServerConfig, ModelServerSource};
use crate::stats::StatsHandle;

/// Why a token source could not be built (a start-up error: the binary exits on it).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `tokenizer.path` cannot be read or is not a `tokenizer.json`.
    #[error("tokenizer file {}: {reason}", path.display())]
    Tokenizer { path: PathBuf, reason: String },
    /// `tokenizer.chatTemplate` cannot be read, has no template, or does not compile.
    #[error("chat template file {}: {reason}", path.display())]
    ChatTemplate { path: PathBuf, reason: String },
}

/// A built source and the reader of its counters.
#[derive(Clone)]
pub struct BuiltSource {
    pub source: Arc<dyn TokenSource>,
    pub stats: StatsHandle,
}

impl std::fmt::Debug for BuiltSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltSource")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The source `spec` asks for. A model-server source asks the endpoints of `datastore`
/// through `client`; a file source reads its files now, so a bad path fails start-up.
pub fn build(
    spec: &TokenizerSpec,
    datastore: Arc<Datastore>,
    client: reqwest::Client,
) -> Result<Arc<dyn TokenSource>, BuildError> {
    build_with_stats(spec, datastore, client).map(|built| built.source)
}

/// As [`build`], keeping the reader of the source's counters for the metrics.
pub fn build_with_stats(
    spec: &TokenizerSpec,
    datastore: Arc<Datastore>,
    client: reqwest::Client,
) -> Result<BuiltSource, BuildError> {
    match spec {
        TokenizerSpec::ModelServer {
            timeout,
            cache_entries,
        } => {
            let config = ModelServerConfig {
                timeout: *timeout,
                cache_entries: *cache_entries,
                cache_bytes: ModelServerConfig::DEFAULT_CACHE_BYTES,
            };
            let source = ModelServerSource::new(datastore, client, config);
            let stats = source.stats_handle();
            Ok(BuiltSource {
                source: Arc::new(source),
                stats,
            })
        }
        TokenizerSpec::File {
            path,
            chat_template,
            timeout,
        } => {
            let source = file_source(path, chat_template.as_deref(), *timeout)?;
            let stats = source.stats_handle();
            Ok(BuiltSource {
                source: Arc::new(source),
                stats,
            })
        }
    }
}

fn file_source(
    path: &std::path::Path,
    chat_template: Option<&std::path::Path>,
    timeout: std::time::Duration,
) -> Result<FileSource, BuildError> {
    let tokenizer = FileSource::load_tokenizer(path).map_err(|reason| BuildError::Tokenizer {
        path: path.to_owned(),
        reason,
    })?;
    let template = chat_template
        .map(|template_path| {
            ChatTemplate::load(template_path).map_err(|reason| BuildError::ChatTemplate {
                path: template_path.to_owned(),
                reason,
            })
        })
        .transpose()?;
    // Encoding is CPU-bound: more concurrent encodings than cores only queue.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    Ok(FileSource::new(tokenizer, template, timeout, cores))
}
