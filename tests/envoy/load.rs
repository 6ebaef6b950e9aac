//! Size and concurrency: a 1 MiB prompt, and 100 SSE streams at once.

use std::time::Instant;

use serde_json::json;

use crate::client::{assert_routed, chat, completion, sse_usage, streaming, tokens};
use crate::harness::{Setup, TEST_TIMEOUT, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_megabyte_prompt() {
    // Room for 262,144 prompt tokens, and no modelled prefill time.
    let stack = Setup::new("full-duplex.yaml")
        .sim_args(&[
            "--max-model-len",
            "300000",
            "--num-gpu-blocks",
            "20000",
            "--prefill-ms-per-token",
            "0",
        ])
        .start()
        .await;
    within(TEST_TIMEOUT, async {
        let prompt = "abcd".repeat(1 << 18);
        let requests = [
            ("/v1/completions", completion(&prompt, 2)),
            ("/v1/chat/completions", chat(&[("user", &prompt)], 2)),
        ];
        for (path, body) in requests {
            let reply = stack.http.post(&stack.url(path), &body, &[]).await;
            assert_routed(&reply);
            // About 4 characters a token: the whole prompt arrived.
            let usage = &reply.json()["usage"];
            assert!(tokens(usage, "prompt_tokens") >= 1 << 18, "{path}: {usage}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_streams() {
    // Real time, 50 tokens each: every stream lasts a few hundred milliseconds.
    let stack = Setup::new("full-duplex.yaml")
        .sim_args(&["--time-scale", "1"])
        .start()
        .await;
    within(TEST_TIMEOUT, async {
        let mut streams = tokio::task::JoinSet::new();
        for n in 0..100 {
            let (path, mut body) = match n % 2 {
                0 => ("/v1/completions", completion(&format!("stream {n}"), 50)),
                _ => (
                    "/v1/chat/completions",
                    chat(&[("user", &format!("stream {n}"))], 50),
                ),
            };
            body["sim"] = json!({"output_tokens": 50});
            let (http, url, body) = (stack.http.clone(), stack.url(path), streaming(body));
            streams.spawn(async move {
                let start = Instant::now();
                let reply = http.post(&url, &body, &[]).await;
                (start, Instant::now(), reply)
            });
        }
        let mut windows = Vec::new();
        while let Some(joined) = streams.join_next().await {
            let (start, end, reply) = joined.expect("stream task");
            assert_routed(&reply);
            let text = reply.text();
            assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
            let usage = sse_usage(&text).unwrap_or_else(|| panic!("no usage in {text}"));
            assert_eq!(tokens(&usage, "completion_tokens"), 50);
            windows.push((start, end));
        }
        assert_eq!(windows.len(), 100);
        // They really ran at the same time: many streams were open at one instant.
        let most_open = windows
            .iter()
            .map(|&(at, _)| windows.iter().filter(|&&(s, e)| s <= at && at < e).count())
            .max()
            .unwrap_or(0);
        assert!(most_open >= 50, "at most {most_open} streams open at once");
    })
    .await;
}
