//! inference-perf's `random`/`synthetic`/`mock` generators: prompts of random tokens with
//! lengths drawn from `input_distribution`, outputs from `output_distribution`. With a
//! `total_count`, that many prompts are generated and cycled (request i uses prompt
//! `i mod total_count`); without one, every request gets a fresh prompt.

use std::sync::Arc;

use super::spec::{DataSpec, Distribution, LoadSpec};
use super::tokens::mix;
use super::{
    Arrival, Prompt, RequestSpec, Workload, WorkloadError, arrivals, random_tokens, stream,
};

pub(super) fn generate(
    data: &DataSpec,
    load: &LoadSpec,
    seed: u64,
) -> Result<Workload, WorkloadError> {
    let input = data.input_distribution.clone().unwrap_or_default();
    let output = data.output_distribution.clone().unwrap_or_default();
    input.check("data.input_distribution")?;
    output.check("data.output_distribution")?;
    let pool_size = input.total_count.map(|n| n.max(1) as usize);
    let (arrivals, stages) = arrivals::generate(load, pool_size, &mut stream(seed, 2))?;
    let mut rng = stream(seed, 1);
    let pool: Vec<(Arc<Prompt>, u32)> = (0..pool_size.unwrap_or(0))
        .map(|_| draw(&input, &output, &mut rng))
        .collect();
    let requests = arrivals
        .iter()
        .enumerate()
        .map(|(i, arrival)| {
            let (prompt, output_tokens) = if pool.is_empty() {
                draw(&input, &output, &mut rng)
            } else {
                let (prompt, out) = &pool[i % pool.len()];
                (Arc::clone(prompt), *out)
            };
            RequestSpec {
                arrival: Arrival::At(arrival.time_s),
                stage: arrival.stage,
                prompt,
                output_tokens,
                group: None,
                session: None,
                round: None,
                output_key: mix(&[seed, 3, i as u64]),
                flow: None,
            }
        })
        .collect();
    Ok(Workload {
        name: format!(
            "{:?} input N({}, {}) output N({}, {})",
            data.kind, input.mean, input.std_dev, output.mean, output.std_dev
        )
        .to_lowercase(),
        requests,
        stages,
        max_concurrency: load.max_concurrency,
        classes: Vec::new(),
    })
}

fn draw(
    input: &Distribution,
    output: &Distribution,
    rng: &mut rand::rngs::SmallRng,
) -> (Arc<Prompt>, u32) {
    let len = input.sample(rng);
    let mut tokens = Vec::with_capacity(len as usize);
    random_tokens(rng, len, &mut tokens);
    (Arc::new(Prompt::new(tokens)), output.sample(rng))
}
