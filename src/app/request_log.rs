//! `--request-log-file`: the request log of the ext_proc streams, hashing prompts in the
//! blocks of the config's prefix-cache scorer so a replay sees the prefixes the index saw.

use std::sync::Arc;

use epp_core::config::EndpointPickerConfig;
use epp_core::scheduling::plugins::prefix_cache_scorer;
use epp_extproc::request_log::DEFAULT_BLOCK_SIZE;
use epp_extproc::{RequestLog, RequestLogSettings};

use super::StartError;
use crate::cli::Options;

/// The request log, when `--request-log-file` is set.
pub(super) fn request_log(
    options: &Options,
    config: &EndpointPickerConfig,
) -> Result<Option<Arc<RequestLog>>, StartError> {
    let Some(path) = &options.request_log_file else {
        return Ok(None);
    };
    let settings = RequestLogSettings {
        block_size: prefix_block_size(config),
        session_header: options.request_log_session_header.clone(),
    };
    RequestLog::to_file(path, settings)
        .map(|log| Some(Arc::new(log)))
        .map_err(|source| StartError::RequestLog {
            path: path.display().to_string(),
            source,
        })
}

/// The `hashBlockSize` of the config's first prefix-cache scorer, read as its factory
/// does (a missing, non-positive or oversized value means the default, 64); 64 without one.
fn prefix_block_size(config: &EndpointPickerConfig) -> u32 {
    config
        .effective
        .plugins
        .iter()
        .find(|plugin| plugin.type_name == prefix_cache_scorer::TYPE)
        .and_then(|plugin| plugin.parameters.as_ref()?.get("hashBlockSize")?.as_i64())
        .and_then(|size| u32::try_from(size).ok())
        .filter(|&size| size > 0)
        .unwrap_or(DEFAULT_BLOCK_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(plugins: &str) -> EndpointPickerConfig {
        let text = format!(
            "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n{plugins}"
        );
        EndpointPickerConfig::from_text(&text).expect("config")
    }

    #[test]
    fn block_size_follows_the_prefix_scorer() {
        let cases = [
            ("- type: queue-scorer\n", 64),
            ("- type: prefix-cache-scorer\n", 64),
            (
                "- type: prefix-cache-scorer\n  parameters:\n    hashBlockSize: 32\n",
                32,
            ),
            (
                "- type: prefix-cache-scorer\n  parameters:\n    hashBlockSize: 0\n",
                64,
            ),
        ];
        for (plugins, want) in cases {
            assert_eq!(prefix_block_size(&config(plugins)), want, "{plugins}");
        }
    }
}
