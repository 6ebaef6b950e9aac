//! Request bodies, built before the run so that generating them is never measured.
//!
//! Text is random lowercase words; one token is taken as 4 characters, as the simulator counts
//! (`ceil(len/4)`).

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Characters per token when lengths are given in tokens.
pub const CHARS_PER_TOKEN: usize = 4;

/// The system message of the `chat` workload.
const CHAT_SYSTEM: &str = "You are a helpful assistant.";

/// The OpenAI API a body is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Completions,
    Chat,
}

impl Api {
    pub fn path(self) -> &'static str {
        match self {
            Api::Completions => "/v1/completions",
            Api::Chat => "/v1/chat/completions",
        }
    }
}

/// What the prompts look like.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadKind {
    /// Completions with distinct random prompts of exactly `prompt_bytes` characters.
    Fixed { prompt_bytes: usize },
    /// Chat: a short system message and a user message of exactly `prompt_bytes` characters.
    Chat { prompt_bytes: usize },
    /// inference-perf `shared_prefix`: `groups` random system prompts of `system_prompt_len`
    /// tokens, each followed (after one space) by `prompts_per_group` random questions of
    /// `question_len` tokens; all prompts shuffled once, then sent in a cycle.
    SharedPrefix {
        groups: usize,
        prompts_per_group: usize,
        system_prompt_len: usize,
        question_len: usize,
    },
}

impl WorkloadKind {
    pub fn api(&self) -> Api {
        match self {
            WorkloadKind::Chat { .. } => Api::Chat,
            WorkloadKind::Fixed { .. } | WorkloadKind::SharedPrefix { .. } => Api::Completions,
        }
    }
}

/// Everything that decides the bodies.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    pub kind: WorkloadKind,
    pub model: String,
    /// `max_tokens` of every request (the simulator generates exactly that many by default).
    pub max_tokens: u32,
    /// Distinct prompts of `fixed` and `chat` (shared-prefix has groups × prompts per group).
    pub distinct_prompts: usize,
    /// `"stream": true` (and usage in the stream), as the proxy mode sends.
    pub stream: bool,
    pub seed: u64,
}

/// One prebuilt request.
#[derive(Clone, Debug)]
pub struct PreparedRequest {
    pub body: Bytes,
    /// The shared-prefix group, if any.
    pub group: Option<usize>,
}

/// The prebuilt requests; request `i` uses entry `i mod len`.
#[derive(Debug)]
pub struct Workload {
    pub api: Api,
    requests: Vec<PreparedRequest>,
}

impl Workload {
    pub fn build(spec: &WorkloadSpec) -> Workload {
        let mut rng = SmallRng::seed_from_u64(spec.seed);
        let prompts: Vec<(Value, Option<usize>)> = match spec.kind {
            WorkloadKind::Fixed { prompt_bytes } => (0..spec.distinct_prompts.max(1))
                .map(|_| (json!(filler(&mut rng, prompt_bytes)), None))
                .collect(),
            WorkloadKind::Chat { prompt_bytes } => (0..spec.distinct_prompts.max(1))
                .map(|_| (chat_messages(filler(&mut rng, prompt_bytes)), None))
                .collect(),
            WorkloadKind::SharedPrefix {
                groups,
                prompts_per_group,
                system_prompt_len,
                question_len,
            } => shared_prefix(
                &mut rng,
                groups,
                prompts_per_group,
                system_prompt_len,
                question_len,
            )
            .into_iter()
            .map(|(prompt, group)| (json!(prompt), Some(group)))
            .collect(),
        };
        let api = spec.kind.api();
        let requests = prompts
            .into_iter()
            .map(|(prompt, group)| PreparedRequest {
                body: Bytes::from(body(spec, api, prompt)),
                group,
            })
            .collect();
        Workload { api, requests }
    }

    /// The request with index `index` (cycling through the prebuilt ones).
    pub fn get(&self, index: u64) -> &PreparedRequest {
        // `requests` is never empty: every kind builds at least one (groups ≥ 1 is validated).
        let slot = usize::try_from(index % self.requests.len() as u64).unwrap_or(0);
        &self.requests[slot]
    }

    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// (smallest, largest) body in bytes.
    pub fn body_bytes(&self) -> (usize, usize) {
        let sizes = self.requests.iter().map(|r| r.body.len());
        (sizes.clone().min().unwrap_or(0), sizes.max().unwrap_or(0))
    }
}

fn chat_messages(user: String) -> Value {
    json!([
        {"role": "system", "content": CHAT_SYSTEM},
        {"role": "user", "content": user},
    ])
}

fn body(spec: &WorkloadSpec, api: Api, prompt: Value) -> Vec<u8> {
    let prompt_key = match api {
        Api::Completions => "prompt",
        Api::Chat => "messages",
    };
    let mut body = json!({
        "model": spec.model,
        "max_tokens": spec.max_tokens,
        "stream": spec.stream,
    });
    body[prompt_key] = prompt;
    if spec.stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    serde_json::to_vec(&body).expect("a JSON value always serializes")
}

/// Random lowercase words separated by single spaces, exactly `bytes` long (no JSON escaping
/// is needed, so the body grows by the prompt's length only).
pub fn filler(rng: &mut SmallRng, bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 8);
    while text.len() < bytes {
        if !text.is_empty() {
            text.push(' ');
        }
        for _ in 0..rng.random_range(2..=7) {
            text.push(char::from(b'a' + rng.random_range(0..26u8)));
        }
    }
    text.truncate(bytes);
    text
}

/// (prompt, group) pairs of inference-perf's `shared_prefix`, shuffled once.
fn shared_prefix(
    rng: &mut SmallRng,
    groups: usize,
    prompts_per_group: usize,
    system_prompt_len: usize,
    question_len: usize,
) -> Vec<(String, usize)> {
    let mut prompts = Vec::with_capacity(groups * prompts_per_group);
    for group in 0..groups {
        let system = filler(rng, system_prompt_len * CHARS_PER_TOKEN);
        for _ in 0..prompts_per_group {
            let question = filler(rng, question_len * CHARS_PER_TOKEN);
            prompts.push((format!("{system} {question}"), group));
        }
    }
    prompts.shuffle(rng);
    prompts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: WorkloadKind) -> WorkloadSpec {
        WorkloadSpec {
            kind,
            model: "m".to_owned(),
            max_tokens: 16,
            distinct_prompts: 4,
            stream: false,
            seed: 7,
        }
    }

    fn parsed(workload: &Workload, index: u64) -> Value {
        serde_json::from_slice(&workload.get(index).body).expect("valid JSON")
    }

    #[test]
    fn fixed_prompts_have_the_exact_size_and_differ() {
        for prompt_bytes in [1, 4096, 65_536, 225_280] {
            let w = Workload::build(&spec(WorkloadKind::Fixed { prompt_bytes }));
            assert_eq!(w.len(), 4);
            assert_eq!(w.api, Api::Completions);
            let prompts: Vec<String> = (0..4)
                .map(|i| parsed(&w, i)["prompt"].as_str().expect("prompt").to_owned())
                .collect();
            assert!(prompts.iter().all(|p| p.len() == prompt_bytes));
            if prompt_bytes > 100 {
                assert_ne!(prompts[0], prompts[1]);
            }
            // No escaping: the body is the prompt plus a small constant envelope.
            let (min, max) = w.body_bytes();
            assert_eq!(min, max);
            assert!(max > prompt_bytes && max < prompt_bytes + 100, "{max}");
        }
    }

    #[test]
    fn chat_user_message_has_the_size() {
        let w = Workload::build(&spec(WorkloadKind::Chat { prompt_bytes: 4096 }));
        assert_eq!(w.api.path(), "/v1/chat/completions");
        let body = parsed(&w, 0);
        let messages = body["messages"].as_array().expect("messages");
        assert_eq!(messages[0]["role"], "system");
        assert_eq!(
            messages[1]["content"].as_str().expect("content").len(),
            4096
        );
        assert_eq!(body["model"], "m");
        assert_eq!(body["max_tokens"], 16);
    }

    #[test]
    fn stream_bodies_ask_for_usage() {
        let mut s = spec(WorkloadKind::Fixed { prompt_bytes: 10 });
        s.stream = true;
        let body = parsed(&Workload::build(&s), 0);
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
    }

    #[test]
    fn same_seed_same_bodies() {
        let s = spec(WorkloadKind::Fixed { prompt_bytes: 300 });
        let (a, b) = (Workload::build(&s), Workload::build(&s));
        assert_eq!(a.get(3).body, b.get(3).body);
    }

    #[test]
    fn shared_prefix_groups_share_exactly_the_system_prompt() {
        let (groups, per_group, system_len, question_len) = (5, 4, 60, 12);
        let w = Workload::build(&spec(WorkloadKind::SharedPrefix {
            groups,
            prompts_per_group: per_group,
            system_prompt_len: system_len,
            question_len,
        }));
        assert_eq!(w.len(), groups * per_group);
        let system_chars = system_len * CHARS_PER_TOKEN;
        let mut by_group: Vec<Vec<String>> = vec![Vec::new(); groups];
        for i in 0..w.len() as u64 {
            let prompt = parsed(&w, i)["prompt"].as_str().expect("prompt").to_owned();
            assert_eq!(
                prompt.len(),
                system_chars + 1 + question_len * CHARS_PER_TOKEN
            );
            assert_eq!(&prompt[system_chars..=system_chars], " ");
            by_group[w.get(i).group.expect("group")].push(prompt);
        }
        for prompts in &by_group {
            assert_eq!(prompts.len(), per_group);
            // Same system prompt, different questions.
            for p in prompts {
                assert_eq!(p[..system_chars], prompts[0][..system_chars]);
            }
            assert_ne!(prompts[0], prompts[1]);
        }
        // Different groups do not share the whole system prompt.
        for a in 0..groups {
            for b in a + 1..groups {
                assert_ne!(
                    by_group[a][0][..system_chars],
                    by_group[b][0][..system_chars]
                );
            }
        }
        // Shuffled: the first requests are not all from group 0; the cycle repeats.
        assert!((0..per_group as u64).any(|i| w.get(i).group != Some(0)));
        assert_eq!(w.get(0).body, w.get(w.len() as u64).body);
    }
}
