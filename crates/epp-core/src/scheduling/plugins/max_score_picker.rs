//! `max-score-picker`: the highest total score wins; ties break uniformly at random.

use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::{Rng, RngCore};

use crate::scheduling::plugins::max_num_of_endpoints;
use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{Candidate, Picker};

pub const TYPE: &str = "max-score-picker";

/// v1.0.1 `MaxScorePicker`: shuffle, stable-sort by score descending, take the first
/// `maxNumOfEndpoints` (default 1). For one endpoint this is a single pass that keeps a
/// uniformly random one of the tied best (reservoir sampling), without allocating.
#[derive(Debug)]
pub struct MaxScorePicker {
    max_endpoints: usize,
}

impl MaxScorePicker {
    pub fn new(max_endpoints: usize) -> Self {
        MaxScorePicker {
            max_endpoints: max_endpoints.max(1),
        }
    }
}

pub fn factory(ctx: &mut PluginContext<'_>) -> Result<PluginRoles, PluginError> {
    let max_endpoints = max_num_of_endpoints(ctx)?;
    Ok(PluginRoles::picker(Arc::new(MaxScorePicker::new(
        max_endpoints,
    ))))
}

impl Picker for MaxScorePicker {
    fn pick(
        &self,
        candidates: &[Candidate<'_>],
        scores: &[f64],
        rng: &mut dyn RngCore,
        picked: &mut Vec<usize>,
    ) {
        if self.max_endpoints == 1 {
            picked.extend(best_with_random_tie_break(scores, rng));
            return;
        }
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.shuffle(rng);
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        picked.extend(order.into_iter().take(self.max_endpoints));
    }
}

fn best_with_random_tie_break(scores: &[f64], rng: &mut dyn RngCore) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut ties = 0u64;
    for (i, &score) in scores.iter().enumerate() {
        match best.map(|b| score.total_cmp(&scores[b])) {
            None | Some(std::cmp::Ordering::Greater) => {
                best = Some(i);
                ties = 1;
            }
            Some(std::cmp::Ordering::Equal) => {
                ties += 1;
                if rng.random_range(0..ties) == 0 {
                    best = Some(i);
                }
            }
            Some(std::cmp::Ordering::Less) => {}
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;
    use crate::datastore::fixtures::TestEndpoint;
    use crate::scheduling::plugins::testing::candidates;

    fn pick(max: usize, scores: &[f64], seed: u64) -> Vec<usize> {
        let endpoints: Vec<_> = (0..scores.len())
            .map(|i| TestEndpoint::new(&format!("10.0.0.{}:8000", i + 1)).build())
            .collect();
        let mut picked = Vec::new();
        MaxScorePicker::new(max).pick(
            &candidates(&endpoints),
            scores,
            &mut SmallRng::seed_from_u64(seed),
            &mut picked,
        );
        picked
    }

    #[test]
    fn highest_score_wins() {
        assert_eq!(pick(1, &[0.1, 2.5, 0.3], 1), [1]);
        assert_eq!(pick(2, &[0.1, 2.5, 0.3], 1), [1, 2]);
        assert_eq!(
            pick(5, &[0.1, 2.5, 0.3], 1),
            [1, 2, 0],
            "capped at the candidate count"
        );
    }

    #[test]
    fn ties_break_uniformly() {
        let mut counts = [0u32; 4];
        for seed in 0..4000 {
            counts[pick(1, &[1.0, 3.0, 3.0, 3.0], seed)[0]] += 1;
        }
        assert_eq!(counts[0], 0);
        for &c in &counts[1..] {
            assert!((1150..1520).contains(&c), "not uniform: {counts:?}");
        }
        let mut firsts = [0u32; 3];
        for seed in 0..3000 {
            let p = pick(2, &[2.0, 2.0, 2.0], seed);
            assert_eq!(p.len(), 2);
            assert_ne!(p[0], p[1]);
            firsts[p[0]] += 1;
        }
        assert!(
            firsts.iter().all(|&c| (850..1150).contains(&c)),
            "{firsts:?}"
        );
    }
}
