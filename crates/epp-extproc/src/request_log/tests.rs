use std::sync::Mutex;
use std::time::Duration;

use super::*;

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    /// Waits (up to 5 s) for `n` lines and parses them.
    fn lines(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8");
            if text.lines().count() >= n || std::time::Instant::now() > deadline {
                return text
                    .lines()
                    .map(|l| serde_json::from_str(l).expect("JSON line"))
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
    }
}

const PROMPT: &str = "The quick brown fox jumps over the lazy dog while the secret \
                      password swordfish stays hidden in the prompt text of request 7.";

fn routed<'a>(prompt: Option<&'a str>, session: Option<&'a str>) -> RoutedRequest<'a> {
    RoutedRequest {
        arrival: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        model: "food-review",
        target_model: "food-review-v2",
        prompt,
        session,
        endpoint: "10.0.0.1:8000",
    }
}

#[test]
fn hashes_are_the_prefix_scorers() {
    let entry = RequestLogEntry::routed(&routed(Some(PROMPT), None), 16);
    // The scorer's call: target model, block size, at most 256 blocks.
    let mut scorer = Vec::new();
    hash_prompt("food-review-v2", PROMPT.as_bytes(), 16, 256, &mut scorer);
    assert_eq!(entry.prompt_block_hashes, scorer);
    assert_eq!(entry.prompt_block_hashes.len(), PROMPT.len() / 16);
    assert_eq!(entry.prompt_bytes, PROMPT.len() as u64);
    assert_eq!(entry.block_size_bytes, 16);
    // Seeded with the target model, as the index is; the client's model name does not count.
    let other_client = RequestLogEntry::routed(
        &RoutedRequest {
            model: "other",
            ..routed(Some(PROMPT), None)
        },
        16,
    );
    assert_eq!(other_client.prompt_block_hashes, scorer);
    let other_target = RequestLogEntry::routed(
        &RoutedRequest {
            target_model: "other",
            ..routed(Some(PROMPT), None)
        },
        16,
    );
    assert_ne!(other_target.prompt_block_hashes[0], scorer[0]);
}

#[test]
fn partial_tail_is_counted_not_hashed() {
    let full = RequestLogEntry::routed(&routed(Some(&PROMPT[..32]), None), 16);
    let tail = RequestLogEntry::routed(&routed(Some(&PROMPT[..47]), None), 16);
    assert_eq!(full.prompt_block_hashes.len(), 2);
    assert_eq!(tail.prompt_block_hashes, full.prompt_block_hashes);
    assert_eq!(tail.prompt_bytes, 47);
}

#[test]
fn no_prompt_no_usage_gives_nulls() {
    let log_out = Shared::default();
    let log = RequestLog::to_writer(log_out.clone(), RequestLogSettings::default())
        .expect("writer thread");
    let mut entry = RequestLogEntry::routed(&routed(None, None), log.block_size());
    entry.finish(None);
    log.record(entry);
    let line = &log_out.lines(1)[0];
    assert_eq!(line["prompt_block_hashes"], serde_json::json!([]));
    assert_eq!(line["prompt_bytes"], 0);
    for field in [
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "session",
        "status",
    ] {
        assert!(line[field].is_null(), "{field} in {line}");
    }
    assert_eq!(line["block_size_bytes"], 64);
    assert_eq!(log.written(), 1);
    assert_eq!(log.dropped(), 0);
}

#[test]
fn line_has_every_field_and_no_prompt_text() {
    let log_out = Shared::default();
    let settings = RequestLogSettings {
        block_size: 16,
        session_header: "X-Session-Id".into(),
    };
    let log = RequestLog::to_writer(log_out.clone(), settings).expect("writer thread");
    assert_eq!(log.session_header(), "x-session-id");
    let mut entry = RequestLogEntry::routed(&routed(Some(PROMPT), Some("chat-9")), 16);
    entry.status = Some(200);
    entry.finish(Some(&Usage {
        prompt_tokens: 30,
        completion_tokens: 12,
        total_tokens: 42,
        cached_tokens: Some(16),
    }));
    let hashes = entry.prompt_block_hashes.clone();
    log.record(entry);
    let line = &log_out.lines(1)[0];
    let keys: Vec<&str> = line
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "arrival_unix_ms",
        "model",
        "target_model",
        "block_size_bytes",
        "prompt_block_hashes",
        "prompt_bytes",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "session",
        "endpoint",
        "status",
    ];
    want.sort_unstable();
    assert_eq!(keys, want, "serde_json maps sort keys");
    assert_eq!(line["arrival_unix_ms"].as_f64(), Some(1_700_000_000_123.0));
    assert_eq!(line["model"], "food-review");
    assert_eq!(line["target_model"], "food-review-v2");
    assert_eq!(line["input_tokens"], 30);
    assert_eq!(line["output_tokens"], 12);
    assert_eq!(line["cached_tokens"], 16);
    assert_eq!(line["session"], "chat-9");
    assert_eq!(line["endpoint"], "10.0.0.1:8000");
    assert_eq!(line["status"], 200);
    let logged: Vec<u64> = line["prompt_block_hashes"]
        .as_array()
        .expect("array")
        .iter()
        .map(|h| h.as_u64().expect("u64 hash, exact"))
        .collect();
    assert_eq!(logged, hashes);
    let text = log_out.text();
    for word in ["quick brown", "swordfish", "lazy", "password", "hidden"] {
        assert!(
            !text.contains(word),
            "prompt text {word:?} in the log: {text}"
        );
    }
}

#[test]
fn long_session_is_cut_at_a_character_boundary() {
    let long = "é".repeat(200); // 400 bytes
    let entry = RequestLogEntry::routed(&routed(None, Some(&long)), 64);
    let session = entry.session.expect("session");
    assert!(session.len() <= MAX_SESSION_BYTES);
    assert_eq!(session.len(), 256);
    assert!(long.starts_with(&session));
}

/// A writer that never returns until told, so the queue fills.
struct Stuck(std::sync::mpsc::Receiver<()>);

impl Write for Stuck {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.recv();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stuck_writer_drops_and_counts_instead_of_waiting() {
    let (release, stuck) = std::sync::mpsc::channel();
    let log =
        RequestLog::to_writer(Stuck(stuck), RequestLogSettings::default()).expect("writer thread");
    // Lines of about 1 MiB of hashes each: the byte bound (64 MiB) is reached long before
    // the line bound.
    let prompt = "a".repeat(64 * 65_536);
    let entry = RequestLogEntry::routed(&routed(Some(&prompt), None), 64);
    let started = std::time::Instant::now();
    for _ in 0..200 {
        log.record(entry.clone());
    }
    assert!(started.elapsed() < Duration::from_secs(2), "record waited");
    // At most 64 MiB / 512 KiB = 128 queued, plus the one being written.
    assert!(log.dropped() >= 71, "dropped {}", log.dropped());
    assert_eq!(log.written(), 0);
    drop(release);
}
