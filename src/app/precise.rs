//! The precise prefix scorer's runtime parts: the KV-event intake of each configured
//! `precise-prefix-cache-scorer` and the token source the ext_proc streams ask before
//! scheduling. Nothing starts when no such scorer is configured.

use std::sync::Arc;

use epp_core::config::EndpointPickerConfig;
use epp_core::datastore::Datastore;
use epp_core::telemetry::metrics::definitions as defs;
use epp_core::telemetry::metrics::{Collector, EppMetrics, Exposition};
use epp_extproc::TokenSettings;
use epp_kvintake::{IntakeHandle, IntakeSettings, IntakeStats};

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
    metrics: &Arc<EppMetrics>,
) -> Result<PrecisePrefix, StartError> {
    let mut running = PrecisePrefix::default();
    let mut token_stats = None;
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
        token_stats = Some(built.stats);
    }
    if !running.intakes.is_empty() || token_stats.is_some() {
        metrics.register_collector(Arc::new(PreciseRuntimeCollector {
            intakes: running
                .intakes
                .iter()
                .map(IntakeHandle::stats_reader)
                .collect(),
            tokens: token_stats,
        }));
    }
    Ok(running)
}

/// Exports the intakes' and the token source's counters at scrape time.
#[derive(Debug)]
pub(super) struct PreciseRuntimeCollector {
    pub intakes: Vec<epp_kvintake::StatsReader>,
    pub tokens: Option<epp_tokenize::StatsHandle>,
}

impl Collector for PreciseRuntimeCollector {
    fn collect(&self, page: &mut Exposition) {
        if !self.intakes.is_empty() {
            let mut sum = IntakeStats::default();
            for reader in &self.intakes {
                let s = reader.read();
                sum.messages += s.messages;
                sum.decode_errors += s.decode_errors;
                sum.rank_mismatches += s.rank_mismatches;
                sum.flood_drops += s.flood_drops;
                sum.reorders_resolved += s.reorders_resolved;
                sum.replays_requested += s.replays_requested;
                sum.replays_succeeded += s.replays_succeeded;
                sum.replays_failed += s.replays_failed;
                sum.replayed_batches += s.replayed_batches;
                sum.connects += s.connects;
                sum.connect_failures += s.connect_failures;
                sum.reconnects += s.reconnects;
                sum.endpoints += s.endpoints;
            }
            let mut intake = page.family(&defs::KV_EVENT_INTAKE);
            for (event, n) in [
                ("messages", sum.messages),
                ("decode_errors", sum.decode_errors),
                ("rank_mismatches", sum.rank_mismatches),
                ("flood_drops", sum.flood_drops),
                ("reorders_resolved", sum.reorders_resolved),
                ("replays_requested", sum.replays_requested),
                ("replays_succeeded", sum.replays_succeeded),
                ("replays_failed", sum.replays_failed),
                ("replayed_batches", sum.replayed_batches),
                ("connects", sum.connects),
                ("connect_failures", sum.connect_failures),
                ("reconnects", sum.reconnects),
            ] {
                intake.sample(&[event], n as f64);
            }
            page.family(&defs::KV_EVENT_SUBSCRIPTIONS)
                .sample(&[], sum.endpoints as f64);
        }
        if let Some(tokens) = &self.tokens {
            let s = tokens.read();
            let mut calls = page.family(&defs::TOKENIZE_CALLS);
            for (outcome, n) in [
                ("cache_hit", s.cache_hits),
                ("tokenizer", s.cache_misses),
                ("coalesced", s.coalesced),
                ("passthrough", s.passthrough),
            ] {
                calls.sample(&[outcome], n as f64);
            }
            let mut errors = page.family(&defs::TOKENIZE_ERRORS);
            for (reason, n) in s.errors.by_reason() {
                errors.sample(&[reason], n as f64);
            }
            page.family(&defs::TOKENIZE_CACHE_ENTRIES)
                .sample(&[], s.cache_entries as f64);
        }
    }
}
