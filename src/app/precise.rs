//! The precise prefix scorer's runtime parts: the KV-event intake of each configured
//! `precise-prefix-cache-scorer` and the token source the ext_proc streams ask before
//! scheduling. Nothing starts when no such scorer is configured.

use std::sync::Arc;

use epp_core::config::EndpointPickerConfig;
use epp_core::datastore::Datastore;
use epp_extproc::TokenSettings;
use epp_kvintake::{IntakeHandle, IntakeSettings};

use super::StartError;

/// What runs for the configured precise scorers.
#[derive(Debug, Default)]
pub(super) struct PrecisePrefix {
    /// One per scorer instance; dropping them stops their subscriptions.
    pub intakes: Vec<IntakeHandle>,
    /// `None` when no scorer needs tokens.
    pub tokens: Option<TokenSettings>,
    pub indexes: Vec<Arc<epp_core::prefix::PreciseIndex>>,
}

pub(super) fn start(
    config: &EndpointPickerConfig,
    datastore: &Arc<Datastore>,
) -> Result<PrecisePrefix, StartError> {
    let mut running = PrecisePrefix::default();
    for subscription in config.kv_event_subscriptions() {
        running.indexes.push(Arc::clone(&subscription.index));
        tracing::info!(
            plugin = %subscription.plugin,
            port = subscription.port,
            replay_port = subscription.replay_port,
            "subscribing to KV-cache events of every endpoint"
        );
        running.intakes.push(epp_kvintake::spawn(
            subscription,
            Arc::clone(datastore),
            IntakeSettings::default(),
        ));
    }
    if let Some(spec) = config.tokenizer() {
        epp_net::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .build()
            .map_err(StartError::TokenizerClient)?;
        let built = epp_tokenize::build_with_stats(&spec, Arc::clone(datastore), client)?;
        running.tokens = Some(TokenSettings {
            source: built.source,
            timeout: spec.timeout(),
        });
    }
    Ok(running)
}
