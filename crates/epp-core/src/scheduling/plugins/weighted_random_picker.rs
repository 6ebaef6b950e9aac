//! `weighted-random-picker`: endpoints chosen at random in proportion to their scores.

use std::sync::Arc;

use rand::{Rng, RngCore};

use crate::scheduling::plugins::max_num_of_endpoints;
use crate::scheduling::plugins::random_picker::pick_uniform;
use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{Candidate, Picker};

pub const TYPE: &str = "weighted-random-picker";

/// v1.0.1 `WeightedRandomPicker` (Efraimidis–Spirakis sampling without replacement):
/// each endpoint with score `s > 0` gets the key `U^(1/s)` (U uniform in [0,1), 0 replaced
/// by 1e-10), endpoints with `s <= 0` get key 0; the highest keys win. When no score is
/// positive it behaves as `random-picker`. `maxNumOfEndpoints` as the other pickers.
#[derive(Debug)]
pub struct WeightedRandomPicker {
    max_endpoints: usize,
}

impl WeightedRandomPicker {
    pub fn new(max_endpoints: usize) -> Self {
        WeightedRandomPicker {
            max_endpoints: max_endpoints.max(1),
        }
    }
}

pub fn factory(ctx: &mut PluginContext<'_>) -> Result<PluginRoles, PluginError> {
    let max_endpoints = max_num_of_endpoints(ctx)?;
    Ok(PluginRoles::picker(Arc::new(WeightedRandomPicker::new(
        max_endpoints,
    ))))
}

impl Picker for WeightedRandomPicker {
    fn pick(
        &self,
        candidates: &[Candidate<'_>],
        scores: &[f64],
        rng: &mut dyn RngCore,
        picked: &mut Vec<usize>,
    ) {
        if !scores.iter().any(|&s| s > 0.0) {
            pick_uniform(candidates.len(), self.max_endpoints, rng, picked);
            return;
        }
        let mut keyed: Vec<(f64, usize)> = scores
            .iter()
            .enumerate()
            .map(|(i, &score)| {
                if score <= 0.0 {
                    return (0.0, i);
                }
                let u: f64 = rng.random();
                let u = if u == 0.0 { 1e-10 } else { u };
                (u.powf(1.0 / score), i)
            })
            .collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
        picked.extend(keyed.into_iter().take(self.max_endpoints).map(|(_, i)| i));
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;
    use crate::datastore::fixtures::TestEndpoint;
    use crate::scheduling::plugins::testing::candidates;

    fn frequencies(scores: &[f64], rounds: u32) -> Vec<f64> {
        let endpoints: Vec<_> = (0..scores.len())
            .map(|i| TestEndpoint::new(&format!("10.0.0.{}:8000", i + 1)).build())
            .collect();
        let cands = candidates(&endpoints);
        let picker = WeightedRandomPicker::new(1);
        let mut rng = SmallRng::seed_from_u64(42);
        let mut counts = vec![0u32; scores.len()];
        for _ in 0..rounds {
            let mut picked = Vec::new();
            picker.pick(&cands, scores, &mut rng, &mut picked);
            counts[picked[0]] += 1;
        }
        counts
            .iter()
            .map(|&c| f64::from(c) / f64::from(rounds))
            .collect()
    }

    #[test]
    fn proportional_to_scores() {
        let f = frequencies(&[1.0, 3.0], 20_000);
        assert!((f[1] - 0.75).abs() < 0.02, "{f:?}");
        let f = frequencies(&[0.0, 2.0, 2.0], 20_000);
        assert_eq!(
            f[0], 0.0,
            "a zero score is never picked while others are positive"
        );
        assert!((f[1] - 0.5).abs() < 0.02, "{f:?}");
    }

    #[test]
    fn all_zero_is_uniform() {
        let f = frequencies(&[0.0, 0.0, 0.0, 0.0], 20_000);
        assert!(f.iter().all(|x| (x - 0.25).abs() < 0.02), "{f:?}");
    }
}
