//! inference-perf's `shared_prefix` generator (and SGLang's generated-shared-prefix, which
//! is the same data sent with an infinite rate).
//!
//! G·P prompts (G system prompts, P questions each) are generated once and shuffled once;
//! request i uses prompt `i mod G·P`, so later passes repeat identical prompts. With
//! `enable_multi_turn_chat`, prompt s is user session s: round r of the session sends the
//! previous round's prompt, its answer, and the session's question again.

use std::sync::Arc;

use rand::seq::SliceRandom;

use super::spec::{LoadSpec, SharedPrefixSpec};
use super::tokens::{mix, output_token};
use super::{
    Arrival, Prompt, RequestSpec, Workload, WorkloadError, arrivals, random_tokens, spec_error,
    stream,
};

/// One of the G·P generated prompts.
struct Entry {
    group: u32,
    prompt: Arc<Prompt>,
    /// Where the question starts in `prompt` (multi-turn rounds repeat it).
    question_start: usize,
    output_tokens: u32,
}

/// A multi-turn session's last round.
struct Turn {
    prompt: Arc<Prompt>,
    output_key: u64,
    output_tokens: u32,
    round: u32,
}

pub(super) fn generate(
    sp: &SharedPrefixSpec,
    load: &LoadSpec,
    seed: u64,
) -> Result<Workload, WorkloadError> {
    check(sp)?;
    let entries = entries(sp, seed);
    let (arrivals, stages) = arrivals::generate(load, Some(entries.len()), &mut stream(seed, 2))?;
    let mut sessions: Vec<Option<Turn>> = (0..entries.len()).map(|_| None).collect();
    let mut requests = Vec::with_capacity(arrivals.len());
    for (i, arrival) in arrivals.iter().enumerate() {
        let slot = i % entries.len();
        let entry = &entries[slot];
        let output_key = mix(&[seed, 3, i as u64]);
        let (prompt, session, round) = if sp.enable_multi_turn_chat {
            let turn = next_turn(entry, sessions[slot].as_ref());
            let round = turn.round;
            let prompt = Arc::clone(&turn.prompt);
            sessions[slot] = Some(Turn {
                output_key,
                output_tokens: entry.output_tokens,
                ..turn
            });
            (prompt, Some(slot as u32), Some(round))
        } else {
            (Arc::clone(&entry.prompt), None, None)
        };
        requests.push(RequestSpec {
            arrival: Arrival::At(arrival.time_s),
            stage: arrival.stage,
            prompt,
            output_tokens: entry.output_tokens,
            group: Some(entry.group),
            session,
            round,
            output_key,
            flow: None,
        });
    }
    Ok(Workload {
        name: name(sp),
        requests,
        stages,
        max_concurrency: load.max_concurrency,
        classes: Vec::new(),
    })
}

pub(super) fn check(sp: &SharedPrefixSpec) -> Result<(), WorkloadError> {
    if sp.num_groups == 0 || sp.num_prompts_per_group == 0 {
        return Err(spec_error(
            "data.shared_prefix",
            "num_groups and num_prompts_per_group must be at least 1",
        ));
    }
    let lengths = [
        ("system_prompt_len", &sp.system_prompt_len),
        ("question_len", &sp.question_len),
        ("output_len", &sp.output_len),
    ];
    for (field, length) in lengths {
        if let super::Length::Dist(d) = length {
            d.check(&format!("data.shared_prefix.{field}"))?;
        }
    }
    if let Some(d) = &sp.question_distribution {
        d.check("data.shared_prefix.question_distribution")?;
    }
    if let Some(d) = &sp.output_distribution {
        d.check("data.shared_prefix.output_distribution")?;
    }
    Ok(())
}

/// The G·P prompts, shuffled once.
fn entries(sp: &SharedPrefixSpec, seed: u64) -> Vec<Entry> {
    let mut rng = stream(seed, 1);
    let mut entries = Vec::with_capacity((sp.num_groups * sp.num_prompts_per_group) as usize);
    for group in 0..sp.num_groups {
        let mut system = Vec::new();
        let system_len = sp.system_prompt_len.sample(&mut rng);
        random_tokens(&mut rng, system_len, &mut system);
        for _ in 0..sp.num_prompts_per_group {
            let question_len = match &sp.question_distribution {
                Some(d) => d.sample(&mut rng),
                None => sp.question_len.sample(&mut rng),
            };
            let output_tokens = match &sp.output_distribution {
                Some(d) => d.sample(&mut rng),
                None => sp.output_len.sample(&mut rng),
            };
            let mut tokens = system.clone();
            random_tokens(&mut rng, question_len, &mut tokens);
            entries.push(Entry {
                group,
                prompt: Arc::new(Prompt::new(tokens)),
                question_start: system.len(),
                output_tokens,
            });
        }
    }
    entries.shuffle(&mut rng);
    entries
}

/// The next round of a session: the first round is the entry's prompt; later rounds extend
/// the previous prompt by its answer and the question.
fn next_turn(entry: &Entry, previous: Option<&Turn>) -> Turn {
    let Some(previous) = previous else {
        return Turn {
            prompt: Arc::clone(&entry.prompt),
            output_key: 0,
            output_tokens: 0,
            round: 0,
        };
    };
    let question = &entry.prompt.tokens[entry.question_start..];
    let mut tokens = Vec::with_capacity(
        previous.prompt.len() + previous.output_tokens as usize + question.len(),
    );
    tokens.extend_from_slice(&previous.prompt.tokens);
    tokens.extend((0..previous.output_tokens).map(|n| output_token(previous.output_key, n)));
    tokens.extend_from_slice(question);
    Turn {
        prompt: Arc::new(Prompt::new(tokens)),
        output_key: 0,
        output_tokens: 0,
        round: previous.round + 1,
    }
}

fn name(sp: &SharedPrefixSpec) -> String {
    let length = |l: &super::Length| match l {
        super::Length::Fixed(n) => n.to_string(),
        super::Length::Dist(d) => format!("N({}, {})", d.mean, d.std_dev),
    };
    format!(
        "shared_prefix {}x{} {}/{}/{}{}",
        sp.num_groups,
        sp.num_prompts_per_group,
        length(&sp.system_prompt_len),
        sp.question_distribution.as_ref().map_or_else(
            || length(&sp.question_len),
            |d| length(&super::Length::Dist(d.clone()))
        ),
        sp.output_distribution.as_ref().map_or_else(
            || length(&sp.output_len),
            |d| length(&super::Length::Dist(d.clone()))
        ),
        if sp.enable_multi_turn_chat {
            " multi-turn"
        } else {
            ""
        }
    )
}
