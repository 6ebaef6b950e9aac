//! `random-picker`: endpoints chosen uniformly at random, ignoring scores.

use std::sync::Arc;

use rand::RngCore;
use rand::seq::index;

use crate::scheduling::plugins::max_num_of_endpoints;
use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{Candidate, Picker};

pub const TYPE: &str = "random-picker";

/// v1.0.1 `RandomPicker`: shuffle and take the first `maxNumOfEndpoints` (default 1).
#[derive(Debug)]
pub struct RandomPicker {
    max_endpoints: usize,
}

impl RandomPicker {
    pub fn new(max_endpoints: usize) -> Self {
        RandomPicker {
            max_endpoints: max_endpoints.max(1),
        }
    }
}

pub fn factory(ctx: &mut PluginContext<'_>) -> Result<PluginRoles, PluginError> {
    let max_endpoints = max_num_of_endpoints(ctx)?;
    Ok(PluginRoles::picker(Arc::new(RandomPicker::new(
        max_endpoints,
    ))))
}

impl Picker for RandomPicker {
    fn pick(
        &self,
        candidates: &[Candidate<'_>],
        _: &[f64],
        rng: &mut dyn RngCore,
        picked: &mut Vec<usize>,
    ) {
        pick_uniform(candidates.len(), self.max_endpoints, rng, picked);
    }
}

/// Pushes `min(count, len)` distinct indices below `len`, uniformly at random.
pub(crate) fn pick_uniform(
    len: usize,
    count: usize,
    rng: &mut dyn RngCore,
    picked: &mut Vec<usize>,
) {
    let amount = count.min(len);
    picked.extend(index::sample(rng, len, amount));
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn uniform_and_distinct() {
        let mut counts = [0u32; 4];
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..4000 {
            let mut picked = Vec::new();
            pick_uniform(4, 2, &mut rng, &mut picked);
            assert_eq!(picked.len(), 2);
            assert_ne!(picked[0], picked[1]);
            counts[picked[0]] += 1;
        }
        assert!(
            counts.iter().all(|&c| (850..1150).contains(&c)),
            "{counts:?}"
        );
        let mut picked = Vec::new();
        pick_uniform(2, 5, &mut rng, &mut picked);
        assert_eq!(picked.len(), 2);
    }
}
