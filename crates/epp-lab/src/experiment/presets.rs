//! Built-in presets: the published workloads of sim-model.md §2.1 with their clusters and
//! policies, plus small ones for CI. Each is an editable experiment file compiled in, so
//! `epp-lab show-preset NAME` prints exactly the text that runs.

/// (name, file text, one-line description).
const PRESETS: &[(&str, &str, &str)] = &[
    (
        "quick",
        include_str!("../../presets/quick.yaml"),
        "tiny CI run: 2 pods, ~20 s simulated, approximate vs load vs random",
    ),
    (
        "w1-small",
        include_str!("../../presets/w1-small.yaml"),
        "W1 at CI scale: 2 pods, 38x5 groups, working set ~74% of KV, shortened ladder",
    ),
    (
        "llmd-73pct",
        include_str!("../../presets/llmd-73pct.yaml"),
        "W1 llm-d 73% capacity: 8 x Qwen3-32B TP2, 150x5 shared prefix, 3..60 QPS ladder",
    ),
    (
        "llmd-73pct-loss",
        include_str!("../../presets/llmd-73pct-loss.yaml"),
        "W1 with lossy KV events: precise at 0/10/50% batch loss, with and without fallback",
    ),
    (
        "kthena-gsp",
        include_str!("../../presets/kthena-gsp.yaml"),
        "W3 Kthena: 3 x R1-Distill-Qwen-7B, GSP 256x32 at 800 req/s, concurrency 300",
    ),
    (
        "sglang-v04",
        include_str!("../../presets/sglang-v04.yaml"),
        "W4 SGLang v0.4: 8 x Llama-3.1-8B A100, GSP 64x16 all at once, cache-aware vs random",
    ),
    (
        "gie-prefix-4a",
        include_str!("../../presets/gie-prefix-4a.yaml"),
        "W6(a) GIE prefix: 150x5 6000/1200/1000, Poisson 10..60 QPS",
    ),
    (
        "gie-prefix-4b",
        include_str!("../../presets/gie-prefix-4b.yaml"),
        "W6(b) GIE prefix: 150x5 1000/6200/1000, Poisson 10..60 QPS",
    ),
    (
        "gie-prefix-4c",
        include_str!("../../presets/gie-prefix-4c.yaml"),
        "W6(c) GIE prefix: 6x1000 multi-turn, N(3000, 900) questions, 1..10 QPS",
    ),
    (
        "gie-prefix-4d",
        include_str!("../../presets/gie-prefix-4d.yaml"),
        "W6(d) GIE prefix: 6x1000 multi-turn, N(30, 9) questions, 1..17 QPS",
    ),
    (
        "ldb-synthetic",
        include_str!("../../presets/ldb-synthetic.yaml"),
        "W7 llm-d-benchmark shared_prefix_synthetic: 32x32 2048/256/256, 2..20 QPS",
    ),
    (
        "ldb-heavy",
        include_str!("../../presets/ldb-heavy.yaml"),
        "W7 llm-d-benchmark heavy: 32x32 4000/256/256, 0.5 then 2 QPS",
    ),
    (
        "ldb-multi-turn",
        include_str!("../../presets/ldb-multi-turn.yaml"),
        "W7 llm-d-benchmark multi_turn_chat: 1x20 users 1000/200/200, 2..5 QPS",
    ),
    (
        "flow-control",
        include_str!("../../presets/flow-control.yaml"),
        "issue 16: interactive + batch objectives at 1.5x capacity, with and without flow control",
    ),
    (
        "ldb-precise-2",
        include_str!("../../presets/ldb-precise-2.yaml"),
        "W7 llm-d-benchmark precise_2: 150x5 2000/500/500, ladder to 30 QPS",
    ),
];

/// (name, one-line description) of every preset, in a stable order.
pub fn list() -> &'static [(&'static str, &'static str)] {
    const fn names() -> [(&'static str, &'static str); PRESETS.len()] {
        let mut out = [("", ""); PRESETS.len()];
        let mut i = 0;
        while i < PRESETS.len() {
            out[i] = (PRESETS[i].0, PRESETS[i].2);
            i += 1;
        }
        out
    }
    const LIST: [(&str, &str); PRESETS.len()] = names();
    &LIST
}

/// The preset's experiment file text.
pub fn text(name: &str) -> Option<&'static str> {
    PRESETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, text, _)| *text)
}
