//! `prefix-cache-scorer`: prefers endpoints that recently served the same prompt prefix,
//! whose KV cache likely still holds it.

use std::sync::Arc;

use serde::Deserialize;

use crate::datastore::{Endpoint, EndpointId, EndpointObserver};
use crate::prefix::{PrefixIndex, PrefixIndexLimits, hash_prompt};
use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{
    Candidate, CycleState, PreRequest, PrefixMatchReport, SchedulingRequest, SchedulingResult,
    Scorer,
};

pub const TYPE: &str = "prefix-cache-scorer";

const DEFAULT_BLOCK_SIZE: i64 = 64;
const DEFAULT_MAX_BLOCKS: i64 = 256;
const DEFAULT_LRU_CAPACITY: i64 = 31250;
/// Default hard cap on the index's memory: 256 MiB, several million entries.
const DEFAULT_MAX_INDEX_BYTES: i64 = 256 << 20;

/// Parameters, as v1.0.1 plus `maxIndexMemoryBytes`. Values `<= 0` fall back to the
/// defaults (with a warning), as v1.0.1 does.
#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Parameters {
    /// Bytes of prompt per block (default 64, about 16 tokens).
    hash_block_size: i64,
    /// Blocks of the prompt that are hashed and matched (default 256).
    max_prefix_blocks_to_match: i64,
    /// Entries remembered per endpoint (default 31250).
    lru_capacity_per_server: i64,
    /// Hard cap on the whole index's memory, in bytes (default 256 MiB).
    max_index_memory_bytes: i64,
}

impl Default for Parameters {
    fn default() -> Self {
        Parameters {
            hash_block_size: DEFAULT_BLOCK_SIZE,
            max_prefix_blocks_to_match: DEFAULT_MAX_BLOCKS,
            lru_capacity_per_server: DEFAULT_LRU_CAPACITY,
            max_index_memory_bytes: DEFAULT_MAX_INDEX_BYTES,
        }
    }
}

/// v1.0.1 prefix-cache scorer.
///
/// The prompt's bytes are cut into blocks of `hashBlockSize`; block hashes form a chain
/// (XXH64, the first seeded with the target model). Scoring walks the chain through the
/// index and stops at the first block no endpoint holds; every endpoint holding block i
/// gets +1, and `score = matched / blocks` (0 for prompts shorter than one block). After
/// the pick, the primary endpoint is recorded as holding every block of this prompt.
///
/// Beyond v1.0.1: the index has a hard memory cap and forgets endpoints that leave.
pub struct PrefixCacheScorer {
    name: Arc<str>,
    block_size: usize,
    max_blocks: usize,
    index: Arc<PrefixIndex>,
}

impl std::fmt::Debug for PrefixCacheScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixCacheScorer")
            .field("name", &self.name)
            .field("block_size", &self.block_size)
            .field("max_blocks", &self.max_blocks)
            .finish_non_exhaustive()
    }
}

/// What scoring leaves in the cycle state: for the pre-request step, and as the cycle's
/// [`PrefixMatchReport`] for the prefix-match metrics.
#[derive(Debug, Default)]
struct PrefixMatch {
    hashes: Vec<u64>,
    matches: Vec<(EndpointId, u32)>,
    block_size: usize,
}

impl PrefixMatchReport for PrefixMatch {
    /// Counted in whole blocks, as v1.0.1's
    /// `RecordPrefixCacheMatch(matchLen*blockSize, total*blockSize)`.
    fn matched_bytes(&self, endpoint: EndpointId) -> (u64, u64) {
        let matched = self
            .matches
            .iter()
            .find(|(id, _)| *id == endpoint)
            .map_or(0, |&(_, n)| n as usize);
        let block = self.block_size as u64;
        (matched as u64 * block, self.hashes.len() as u64 * block)
    }
}

pub fn factory(ctx: &mut PluginContext<'_>) -> Result<PluginRoles, PluginError> {
    let params: Parameters = ctx.parameters()?;
    let defaults = Parameters::default();
    let block_size = positive_or_default(
        ctx,
        "hashBlockSize",
        params.hash_block_size,
        defaults.hash_block_size,
    );
    let max_blocks = positive_or_default(
        ctx,
        "maxPrefixBlocksToMatch",
        params.max_prefix_blocks_to_match,
        defaults.max_prefix_blocks_to_match,
    );
    let lru = positive_or_default(
        ctx,
        "lruCapacityPerServer",
        params.lru_capacity_per_server,
        defaults.lru_capacity_per_server,
    );
    let budget = positive_or_default(
        ctx,
        "maxIndexMemoryBytes",
        params.max_index_memory_bytes,
        defaults.max_index_memory_bytes,
    );
    if block_size < 16 {
        ctx.warn(format!(
            "hashBlockSize {block_size} is very small: the index fills {}x faster than with 64",
            64 / block_size.max(1)
        ));
    }
    let limits = PrefixIndexLimits::from_memory_budget(lru, budget);
    let scorer = Arc::new(PrefixCacheScorer {
        name: Arc::clone(ctx.name),
        block_size,
        max_blocks,
        index: Arc::new(PrefixIndex::new(limits)),
    });
    Ok(PluginRoles {
        scorer: Some(scorer.clone()),
        pre_request: Some(scorer.clone()),
        prefix_index: Some(Arc::clone(&scorer.index)),
        endpoint_observer: Some(scorer),
        ..Default::default()
    })
}

fn positive_or_default(
    ctx: &mut PluginContext<'_>,
    field: &str,
    value: i64,
    default: i64,
) -> usize {
    let chosen = if value <= 0 {
        ctx.warn(format!(
            "{field} {value} is not positive; using the default {default}"
        ));
        default
    } else {
        value
    };
    usize::try_from(chosen).unwrap_or(usize::MAX)
}

impl PrefixCacheScorer {
    /// The index, for size reporting.
    pub fn index(&self) -> &Arc<PrefixIndex> {
        &self.index
    }
}

impl Scorer for PrefixCacheScorer {
    fn score(
        &self,
        request: &SchedulingRequest<'_>,
        state: &mut CycleState,
        candidates: &[Candidate<'_>],
        scores: &mut [f64],
    ) {
        let mut prefix = PrefixMatch {
            block_size: self.block_size,
            ..PrefixMatch::default()
        };
        if let Some(prompt) = request.prompt {
            hash_prompt(
                request.target_model,
                prompt.as_bytes(),
                self.block_size,
                self.max_blocks,
                &mut prefix.hashes,
            );
        }
        let blocks = prefix.hashes.len();
        if blocks > 0 {
            self.index.match_prefix(&prefix.hashes, &mut prefix.matches);
            for (score, endpoint) in scores.iter_mut().zip(candidates) {
                let matched = prefix
                    .matches
                    .iter()
                    .find(|(id, _)| *id == endpoint.id())
                    .map_or(0, |&(_, n)| n);
                *score = f64::from(matched) / blocks as f64;
            }
        }
        state.insert_prefix_match(&self.name, prefix);
    }
}

impl PreRequest for PrefixCacheScorer {
    fn pre_request(
        &self,
        _: &SchedulingRequest<'_>,
        result: &SchedulingResult,
        state: &CycleState,
    ) {
        let (Some(target), Some(prefix)) = (
            result.primary_targets().first(),
            state.get::<PrefixMatch>(&self.name),
        ) else {
            return;
        };
        if !prefix.hashes.is_empty() {
            self.index.add(&prefix.hashes, target.id());
        }
    }
}

impl EndpointObserver for PrefixCacheScorer {
    fn endpoint_removed(&self, endpoint: &Endpoint) {
        self.index.remove_endpoint(endpoint.id());
    }
}

#[cfg(test)]
mod tests;
