//! `precise-prefix-cache-scorer`: prefers endpoints whose engines *report* holding the
//! request's leading token blocks (vLLM KV-cache events), falling back per endpoint to the
//! approximate index when an endpoint's events cannot be trusted.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::datastore::{Endpoint, EndpointId, EndpointObserver};
use crate::prefix::precise::{MediumWeights, PreciseIndex, PreciseIndexConfig};
use crate::prefix::{PrefixIndex, PrefixIndexLimits, hash_prompt};
use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{
    CachePrediction, Candidate, CycleState, PreRequest, PrefixMatchReport, SchedulingRequest,
    SchedulingResult, Scorer,
};
use crate::tokens::TokenizerSpec;

pub const TYPE: &str = "precise-prefix-cache-scorer";

/// vLLM's default `KVEventsConfig.endpoint` port.
pub const DEFAULT_KV_EVENTS_PORT: u16 = 5557;
const DEFAULT_MAX_BLOCKS: usize = 1024;
/// The approximate fallback index: the `prefix-cache-scorer` defaults.
const FALLBACK_HASH_BLOCK_BYTES: usize = 64;
const FALLBACK_MAX_BLOCKS: usize = 256;
const FALLBACK_LRU_PER_ENDPOINT: usize = 31_250;
const FALLBACK_MAX_BYTES: usize = 64 << 20;

/// Parameters. Durations are Go durations (`"2s"`, `"50ms"`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Parameters {
    /// Tokens per KV block; must equal the engines' `--block-size` (vLLM's default is 16).
    block_size: Option<i64>,
    /// Port of each endpoint's ZMQ PUB socket (vLLM `KVEventsConfig.endpoint`); an endpoint
    /// that is the N-th port of its pod (data-parallel rank N) is read at `kvEventsPort + N`.
    kv_events_port: Option<i64>,
    /// Port of vLLM's replay ROUTER socket (`replay_endpoint`), offset by rank like
    /// `kvEventsPort`; absent: lost batches are not replayed.
    replay_port: Option<i64>,
    /// ZMQ subscription prefix (vLLM `KVEventsConfig.topic`); empty takes everything.
    topic: String,
    tokenizer: Option<TokenizerParameters>,
    medium_weights: Option<WeightParameters>,
    /// Upper bound on the precise index's memory (default 256 MiB).
    max_index_memory_bytes: Option<i64>,
    /// Request blocks matched at most (default 1024).
    max_prefix_blocks_to_match: Option<i64>,
    /// How long a pick counts as cached before its `BlockStored` arrives (default 2s).
    speculative_ttl: Option<String>,
    /// A picked endpoint that publishes nothing for this long is distrusted (default 10s).
    silence_timeout: Option<String>,
    /// Gap-free flow needed after a loss before an endpoint is trusted again (default 1s).
    recovery_period: Option<String>,
    /// `approximate` (default): distrusted endpoints are scored by the approximate index.
    /// `none`: the precise index is used whatever the events' health (for experiments).
    fallback: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TokenizerParameters {
    /// `model-server` (vLLM `/tokenize`, default) or `file`.
    source: Option<String>,
    /// `tokenizer.json`, for `source: file`.
    path: Option<String>,
    /// A chat template or `tokenizer_config.json`, for `source: file`.
    chat_template: Option<String>,
    /// Longest wait for tokens (default 50ms); the request is then scored without them.
    timeout: Option<String>,
    /// Prompts whose tokens are cached, for `source: model-server` (default 4096).
    cache_entries: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct WeightParameters {
    gpu: f64,
    cpu: f64,
    other: f64,
}

impl Default for WeightParameters {
    fn default() -> Self {
        let d = MediumWeights::default();
        Self {
            gpu: d.gpu,
            cpu: d.cpu,
            other: d.other,
        }
    }
}

/// Where the event intake subscribes, for the wiring (one per scorer instance).
#[derive(Debug, Clone)]
pub struct KvEventsSubscription {
    /// The scorer instance's name, for logs.
    pub plugin: Arc<str>,
    pub index: Arc<PreciseIndex>,
    pub port: u16,
    pub replay_port: Option<u16>,
    pub topic: String,
}

/// The precise prefix-cache scorer.
///
/// The request's tokens (fetched before scheduling, see [`crate::tokens`]) are cut into
/// `blockSize` blocks and keyed with the router's chained hash. An endpoint's score is its
/// medium-weighted longest consecutive run of those keys in the precise index, divided by the
/// request's block count. Endpoints whose view is unreliable, and every endpoint when the
/// request has no tokens, get the approximate `prefix-cache-scorer` score from an index this
/// plugin keeps the same way (what was routed where).
///
/// After the pick the primary endpoint gets speculative entries for the request's keys (they
/// count until the engine's `BlockStored` confirms them, or for `speculativeTtl`), and the
/// approximate index records the prompt.
pub struct PrecisePrefixCacheScorer {
    name: Arc<str>,
    index: Arc<PreciseIndex>,
    fallback: Arc<PrefixIndex>,
    max_blocks: usize,
    trust_events_only: bool,
}

impl std::fmt::Debug for PrecisePrefixCacheScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrecisePrefixCacheScorer")
            .field("name", &self.name)
            .field("config", self.index.config())
            .finish_non_exhaustive()
    }
}

/// What scoring leaves for the pre-request step and the prefix-match metrics.
#[derive(Debug)]
struct PreciseMatch {
    keys: Vec<u64>,
    hashes: Vec<u64>,
    /// Per candidate: `(endpoint, matched tokens or bytes, from the precise index?)`.
    matched: Vec<(EndpointId, u64, bool)>,
    total_tokens: u64,
    total_bytes: u64,
    index: Arc<PreciseIndex>,
}

impl PrefixMatchReport for PreciseMatch {
    /// Tokens when the endpoint was scored precisely, else bytes of the approximate match.
    fn matched_bytes(&self, endpoint: EndpointId) -> (u64, u64) {
        match self.matched.iter().find(|(id, ..)| *id == endpoint) {
            Some(&(_, n, true)) => (n, self.total_tokens),
            Some(&(_, n, false)) => (n, self.total_bytes),
            None => (0, self.total_bytes),
        }
    }

    fn cache_prediction(&self, endpoint: EndpointId) -> Option<CachePrediction> {
        let &(_, tokens, precise) = self.matched.iter().find(|(id, ..)| *id == endpoint)?;
        precise.then(|| CachePrediction {
            predicted_tokens: tokens,
            index: Arc::clone(&self.index),
        })
    }
}

fn duration(field: &str, value: Option<&str>, default: Duration) -> Result<Duration, PluginError> {
    match value {
        None => Ok(default),
        Some(text) => epp_flags::duration::parse_go_duration(text).map_err(|e| {
            PluginError::InvalidParameters {
                message: format!("{field}: {e}"),
            }
        }),
    }
}

fn invalid(message: String) -> PluginError {
    PluginError::InvalidParameters { message }
}

fn port(field: &str, value: i64) -> Result<u16, PluginError> {
    u16::try_from(value)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| invalid(format!("{field}: {value} is not a port (1-65535)")))
}

fn tokenizer_spec(params: Option<TokenizerParameters>) -> Result<TokenizerSpec, PluginError> {
    let params = params.unwrap_or_default();
    let timeout = duration(
        "tokenizer.timeout",
        params.timeout.as_deref(),
        TokenizerSpec::DEFAULT_TIMEOUT,
    )?;
    match params.source.as_deref().unwrap_or("model-server") {
        "model-server" => {
            let cache_entries = match params.cache_entries {
                None => TokenizerSpec::DEFAULT_CACHE_ENTRIES,
                Some(n) => usize::try_from(n).map_err(|_| {
                    invalid(format!("tokenizer.cacheEntries: {n} is negative"))
                })?,
            };
            Ok(TokenizerSpec::ModelServer {
                timeout,
                cache_entries,
            })
        }
        "file" => {
            let path = params.path.filter(|p| !p.is_empty()).ok_or_else(|| {
                invalid("tokenizer.path: required with source: file".to_owned())
            })?;
            Ok(TokenizerSpec::File {
                path: path.into(),
                chat_template: params.chat_template.map(Into::into),
                timeout,
            })
        }
        other => Err(invalid(format!(
            "tokenizer.source: {other:?} is not one of \"model-server\", \"file\""
        ))),
    }
}

pub fn factory(ctx: &mut PluginContext<'_>) -> Result<PluginRoles, PluginError> {
    let params: Parameters = ctx.parameters()?;
    let defaults = PreciseIndexConfig::default();
    let block_size = match params.block_size {
        None => defaults.block_size,
        Some(n) if n > 0 && n <= 1 << 16 => n as usize,
        Some(n) => return Err(invalid(format!("blockSize: {n} is not in 1..=65536"))),
    };
    if params.block_size.is_none() {
        ctx.warn(format!(
            "blockSize not set: assuming {block_size} tokens, vLLM's default; it must equal the engines' block size"
        ));
    }
    let kv_port = port(
        "kvEventsPort",
        params
            .kv_events_port
            .unwrap_or(i64::from(DEFAULT_KV_EVENTS_PORT)),
    )?;
    let replay_port = params
        .replay_port
        .filter(|&p| p != 0)
        .map(|p| port("replayPort", p))
        .transpose()?;
    let weights = params.medium_weights.unwrap_or_default();
    for (field, w) in [("gpu", weights.gpu), ("cpu", weights.cpu), ("other", weights.other)] {
        if !(0.0..=1.0).contains(&w) {
            return Err(invalid(format!("mediumWeights.{field}: {w} is not in [0, 1]")));
        }
    }
    let max_bytes = match params.max_index_memory_bytes {
        None => defaults.max_bytes,
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => return Err(invalid(format!("maxIndexMemoryBytes: {n} is not positive"))),
    };
    let max_blocks = match params.max_prefix_blocks_to_match {
        None => DEFAULT_MAX_BLOCKS,
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => {
            return Err(invalid(format!(
                "maxPrefixBlocksToMatch: {n} is not positive"
            )));
        }
    };
    let trust_events_only = match params.fallback.as_deref().unwrap_or("approximate") {
        "approximate" => false,
        "none" => true,
        other => {
            return Err(invalid(format!(
                "fallback: {other:?} is not one of \"approximate\", \"none\""
            )));
        }
    };
    let config = PreciseIndexConfig {
        block_size,
        weights: MediumWeights {
            gpu: weights.gpu,
            cpu: weights.cpu,
            other: weights.other,
        },
        max_bytes,
        speculative_ttl: duration(
            "speculativeTtl",
            params.speculative_ttl.as_deref(),
            defaults.speculative_ttl,
        )?,
        silence_timeout: duration(
            "silenceTimeout",
            params.silence_timeout.as_deref(),
            defaults.silence_timeout,
        )?,
        recovery: duration(
            "recoveryPeriod",
            params.recovery_period.as_deref(),
            defaults.recovery,
        )?,
    };
    let tokenizer = tokenizer_spec(params.tokenizer)?;
    let scorer = Arc::new(PrecisePrefixCacheScorer::new(
        Arc::clone(ctx.name),
        config,
        max_blocks,
        trust_events_only,
    ));
    Ok(PluginRoles {
        scorer: Some(scorer.clone()),
        pre_request: Some(scorer.clone()),
        prefix_index: Some(Arc::clone(&scorer.fallback)),
        kv_events: Some(KvEventsSubscription {
            plugin: Arc::clone(ctx.name),
            index: Arc::clone(&scorer.index),
            port: kv_port,
            replay_port,
            topic: params.topic,
        }),
        tokenizer: Some(tokenizer),
        endpoint_observer: Some(scorer),
        ..Default::default()
    })
}

impl PrecisePrefixCacheScorer {
    /// A scorer with its own precise and fallback indexes (the lab builds it through the
    /// config like the EPP; this is for tests and benches).
    pub fn new(
        name: Arc<str>,
        config: PreciseIndexConfig,
        max_blocks: usize,
        trust_events_only: bool,
    ) -> Self {
        let fallback = PrefixIndexLimits::from_memory_budget(
            FALLBACK_LRU_PER_ENDPOINT,
            FALLBACK_MAX_BYTES,
        );
        Self {
            name,
            index: Arc::new(PreciseIndex::new(config)),
            fallback: Arc::new(PrefixIndex::new(fallback)),
            max_blocks,
            trust_events_only,
        }
    }

    pub fn index(&self) -> &Arc<PreciseIndex> {
        &self.index
    }
}

impl Scorer for PrecisePrefixCacheScorer {
    fn score(
        &self,
        request: &SchedulingRequest<'_>,
        state: &mut CycleState,
        candidates: &[Candidate<'_>],
        scores: &mut [f64],
    ) {
        let block_size = self.index.config().block_size;
        let mut found = PreciseMatch {
            keys: Vec::new(),
            hashes: Vec::new(),
            matched: Vec::with_capacity(candidates.len()),
            total_tokens: 0,
            total_bytes: 0,
            index: Arc::clone(&self.index),
        };
        if let Some(tokens) = request.tokens {
            let usable = tokens.len().min(self.max_blocks.saturating_mul(block_size));
            let seed = self.index.seed_for(request.target_model);
            epp_kvevents::block_keys(seed, &tokens[..usable], block_size, &mut found.keys);
            found.total_tokens = (found.keys.len() * block_size) as u64;
        }
        if let Some(prompt) = request.prompt {
            hash_prompt(
                request.target_model,
                prompt.as_bytes(),
                FALLBACK_HASH_BLOCK_BYTES,
                FALLBACK_MAX_BLOCKS,
                &mut found.hashes,
            );
            found.total_bytes = (found.hashes.len() * FALLBACK_HASH_BLOCK_BYTES) as u64;
        }
        let ids: Vec<EndpointId> = candidates.iter().map(|c| c.id()).collect();
        let mut precise = Vec::new();
        if request.tokens.is_some() {
            self.index.score(
                &found.keys,
                &ids,
                request.now,
                !self.trust_events_only,
                &mut precise,
            );
        }
        let mut approximate = Vec::new();
        if !found.hashes.is_empty() && (precise.is_empty() || precise.iter().any(Option::is_none)) {
            self.fallback.match_prefix(&found.hashes, &mut approximate);
        }
        let fallback_blocks = found.hashes.len();
        for (i, (score, id)) in scores.iter_mut().zip(&ids).enumerate() {
            match precise.get(i).copied().flatten() {
                Some(fraction) => {
                    *score = fraction;
                    let tokens = (fraction * found.total_tokens as f64).round() as u64;
                    found.matched.push((*id, tokens, true));
                }
                None => {
                    let blocks = approximate
                        .iter()
                        .find(|(e, _)| e == id)
                        .map_or(0, |&(_, n)| n as usize);
                    *score = if fallback_blocks == 0 {
                        0.0
                    } else {
                        blocks as f64 / fallback_blocks as f64
                    };
                    let bytes = (blocks * FALLBACK_HASH_BLOCK_BYTES) as u64;
                    found.matched.push((*id, bytes, false));
                }
            }
        }
        state.insert_prefix_match(&self.name, found);
    }
}

impl PreRequest for PrecisePrefixCacheScorer {
    fn pre_request(
        &self,
        request: &SchedulingRequest<'_>,
        result: &SchedulingResult,
        state: &CycleState,
    ) {
        let (Some(target), Some(found)) = (
            result.primary_targets().first(),
            state.get::<PreciseMatch>(&self.name),
        ) else {
            return;
        };
        self.index
            .add_speculative(&found.keys, target.id(), request.now);
        if !found.hashes.is_empty() {
            self.fallback.add(&found.hashes, target.id());
        }
    }
}

impl EndpointObserver for PrecisePrefixCacheScorer {
    fn endpoint_removed(&self, endpoint: &Endpoint) {
        self.index.forget_endpoint(endpoint.id());
        self.fallback.remove_endpoint(endpoint.id());
    }
}

#[cfg(test)]
mod tests;
