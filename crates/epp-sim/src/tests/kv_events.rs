//! KV-cache events over ZMQ, read with the `zeromq` crate's SUB and DEALER sockets as an EPP
//! would: content against `/tokenize`, seq numbering, drops, replay, ranks.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use epp_kvevents::{
    BlockHash, BlockStored, DecodeError, KvEvent, Limits, Medium, Message, decode_message,
    decode_replay_message,
};
use serde_json::json;
use zeromq::{DealerSocket, Socket, SocketRecv, SocketSend, SubSocket, ZmqMessage};

use super::*;

/// How long one warm-up attempt waits for its batch before sending another request.
const ATTEMPT: Duration = Duration::from_millis(150);

/// A fast server publishing on a free port, with replay.
fn kv_config(kv_events: KvEventsConfig) -> SimConfig {
    SimConfig {
        kv_events: KvEventsConfig {
            port: Some(0),
            replay_port: Some(0),
            ..kv_events
        },
        ..fast()
    }
}

/// A prompt of about 50 tokens (3 full blocks of 16) that no other call of this process uses.
fn unique_prompt() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{n:08} the quick brown fox jumps over the lazy dog ").repeat(4)
}

/// A one-token completion of `prompt`, on `http` (building a client costs ~80 ms in debug).
async fn complete(http: &reqwest::Client, sim: &RunningSim, prompt: &str) {
    let body = json!({"model": sim.config().model, "prompt": prompt, "max_tokens": 1});
    let request = http
        .post(format!("{}/v1/completions", sim.url()))
        .header("content-type", "application/json")
        .body(body.to_string());
    let reply = send(request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

async fn subscribe(sim: &RunningSim) -> SubSocket {
    let mut sub = SubSocket::new();
    sub.subscribe("").await.unwrap();
    let address = sim.kv_events_address().expect("events are on");
    sub.connect(&format!("tcp://{address}")).await.unwrap();
    sub
}

fn frames(message: ZmqMessage) -> Vec<Bytes> {
    message.into_vec()
}

fn decode(message: ZmqMessage) -> Message {
    let frames = frames(message);
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_ref()).collect();
    decode_message(&refs, &Limits::default()).unwrap()
}

/// The next message within `wait`, if any.
async fn next(sub: &mut SubSocket, wait: Duration) -> Option<Message> {
    let message = tokio::time::timeout(wait, sub.recv()).await.ok()?;
    Some(decode(message.unwrap()))
}

/// Sends completions until the subscription is live (PUB drops messages for a subscriber it
/// does not know yet); returns the first message received.
async fn warm_up(http: &reqwest::Client, sim: &RunningSim, sub: &mut SubSocket) -> Message {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no KV events arrived"
        );
        complete(http, sim, &unique_prompt()).await;
        if let Some(message) = next(sub, ATTEMPT).await {
            return message;
        }
    }
}

fn stored(message: &Message) -> Vec<&BlockStored> {
    message
        .batch
        .events
        .iter()
        .filter_map(|e| match e {
            KvEvent::BlockStored(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// Asks the replay socket for every batch from `start`; returns them and checks the
/// terminator `[b"", 0xFF×8, b""]` ends the reply.
async fn replay(sim: &RunningSim, start: u64) -> Vec<Message> {
    let mut dealer = DealerSocket::new();
    let address = sim.kv_replay_address().expect("replay is on");
    dealer.connect(&format!("tcp://{address}")).await.unwrap();
    let mut request = ZmqMessage::from(Bytes::new());
    request.push_back(Bytes::copy_from_slice(&start.to_be_bytes()));
    dealer.send(request).await.unwrap();
    let mut batches = Vec::new();
    loop {
        let reply = tokio::time::timeout(TIMEOUT, dealer.recv()).await.unwrap();
        let frames = frames(reply.unwrap());
        assert_eq!(frames.len(), 3, "[b\"\", seq, payload]");
        assert!(frames[0].is_empty(), "the empty delimiter comes first");
        let refs = [frames[1].as_ref(), frames[2].as_ref()];
        match decode_replay_message(&refs, &Limits::default()) {
            Ok(message) => batches.push(message),
            Err(DecodeError::ReplayTerminator) => {
                assert_eq!(frames[1].as_ref(), [0xFF; 8]);
                assert!(frames[2].is_empty(), "the terminator's payload is empty");
                return batches;
            }
            Err(error) => panic!("bad replay reply: {error}"),
        }
    }
}

#[tokio::test]
async fn stored_blocks_carry_the_tokenize_ids() {
    let sim = start_local(kv_config(KvEventsConfig::default())).await;
    let http = client();
    let mut sub = subscribe(&sim).await;
    warm_up(&http, &sim, &mut sub).await;
    // One batch per step: the completion's single prefill step stores its 3 full blocks.
    let prompt = unique_prompt();
    let tokenized = post(&sim, "/tokenize", &json!({"prompt": prompt}))
        .await
        .json();
    let tokens: Vec<u32> = tokenized["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| u32::try_from(t.as_u64().unwrap()).unwrap())
        .collect();
    assert!(tokens.len() >= 48, "{} tokens", tokens.len());
    complete(&http, &sim, &prompt).await;
    // A late warm-up batch may come first: skip to the one that stores this prompt.
    let message = loop {
        let message = next(&mut sub, TIMEOUT)
            .await
            .expect("the completion's batch");
        if stored(&message)
            .iter()
            .any(|s| s.token_ids.starts_with(&tokens[..16]))
        {
            break message;
        }
    };
    assert!(message.topic.is_empty(), "vLLM's default topic is empty");
    assert_eq!(message.batch.data_parallel_rank, Some(0));
    assert!(
        (wall_seconds() - message.batch.ts).abs() < 60.0,
        "ts is wall seconds"
    );
    let [stored] = stored(&message)[..] else {
        panic!("one BlockStored: {:?}", message.batch.events);
    };
    assert_eq!(stored.token_ids, tokens[..48]);
    assert_eq!((stored.block_size, stored.block_hashes.len()), (16, 3));
    assert_eq!(stored.parent_block_hash, None);
    assert_eq!(
        (stored.lora_id, stored.medium.clone()),
        (None, Some(Medium::Gpu))
    );
    assert!(
        stored
            .block_hashes
            .iter()
            .all(|h| matches!(h, BlockHash::Int(_)))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn hashes_can_be_sent_as_32_bytes() {
    let config = kv_config(KvEventsConfig {
        hash_form: HashForm::Bytes32,
        ..KvEventsConfig::default()
    });
    let sim = start_local(config).await;
    let http = client();
    let mut sub = subscribe(&sim).await;
    let message = warm_up(&http, &sim, &mut sub).await;
    let hashes = &stored(&message)[0].block_hashes;
    assert!(
        hashes
            .iter()
            .all(|h| matches!(h, BlockHash::Bytes(b) if b.as_bytes().len() == 32))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn live_seqs_are_consecutive_and_the_replay_returns_them_all() {
    let sim = start_local(kv_config(KvEventsConfig::default())).await;
    let http = client();
    let mut sub = subscribe(&sim).await;
    let mut live = vec![warm_up(&http, &sim, &mut sub).await];
    for _ in 0..5 {
        complete(&http, &sim, &unique_prompt()).await;
        live.push(
            next(&mut sub, TIMEOUT)
                .await
                .expect("a batch per completion"),
        );
    }
    let seqs: Vec<u64> = live.iter().map(|m| m.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    // The replay from 0 holds every batch since the start, the live ones included, verbatim.
    let replayed = replay(&sim, 0).await;
    let replayed_seqs: Vec<u64> = replayed.iter().map(|m| m.seq).collect();
    assert_eq!(replayed_seqs, (0..=seqs[5]).collect::<Vec<_>>());
    for message in &live {
        assert_eq!(replayed[message.seq as usize].batch, message.batch);
    }
    // A later start returns only the tail; a start past the end only the terminator.
    let tail = replay(&sim, seqs[3]).await;
    assert_eq!(tail.iter().map(|m| m.seq).collect::<Vec<_>>(), seqs[3..]);
    assert!(replay(&sim, seqs[5] + 1).await.is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn dropped_batches_leave_gaps_but_stay_replayable() {
    let config = kv_config(KvEventsConfig {
        drop_ratio: 0.5,
        ..KvEventsConfig::default()
    });
    let sim = start_local(SimConfig { seed: 7, ..config }).await;
    let http = client();
    let mut sub = subscribe(&sim).await;
    let first = warm_up(&http, &sim, &mut sub).await.seq;
    for _ in 0..16 {
        complete(&http, &sim, &unique_prompt()).await;
    }
    // Every batch so far is in the replay buffer, dropped or not.
    let all = replay(&sim, 0).await;
    let total = all.len() as u64;
    assert_eq!(all.last().map(|m| m.seq), Some(total - 1));
    wait_until("every batch sent or dropped", || async {
        let samples = scrape(&sim).await;
        let published = sample_value(&samples, "epp_sim_kv_events_published_total", &[]);
        let dropped = sample_value(
            &samples,
            "epp_sim_kv_events_dropped_total",
            &[("reason", "fault")],
        );
        published
            .zip(dropped)
            .is_some_and(|(p, d)| p + d == total as f64)
    })
    .await;
    // Everything sent is on the wire by now; read until the stream goes quiet.
    let mut received = BTreeSet::new();
    while let Some(message) = next(&mut sub, ATTEMPT).await {
        assert!(received.insert(message.seq), "no duplicates");
    }
    let missing = (first..total).filter(|s| !received.contains(s)).count();
    assert!(missing > 0, "a drop ratio of 0.5 leaves gaps");
    assert!(received.len() > 3, "and lets some through: {received:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn each_server_publishes_its_own_rank_on_its_own_port() {
    let config = kv_config(KvEventsConfig::default());
    let sims = start_many(config, "127.0.0.1".parse().unwrap(), 0, 2)
        .await
        .unwrap();
    assert_ne!(sims[0].kv_events_address(), sims[1].kv_events_address());
    let http = client();
    let mut sub = subscribe(&sims[1]).await;
    let message = warm_up(&http, &sims[1], &mut sub).await;
    assert_eq!(message.batch.data_parallel_rank, Some(1));
    let replayed = replay(&sims[1], 0).await;
    assert!(
        replayed
            .iter()
            .all(|m| m.batch.data_parallel_rank == Some(1))
    );
    for sim in sims {
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn without_a_port_nothing_is_bound() {
    let sim = start_local(fast()).await;
    assert_eq!(
        (sim.kv_events_address(), sim.kv_replay_address()),
        (None, None)
    );
    let page = get(&sim, "/metrics").await.body;
    assert!(
        !page.contains("epp_sim_kv_events"),
        "no counters without events"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_delay_holds_every_batch_back() {
    let delay = Duration::from_millis(400);
    let config = kv_config(KvEventsConfig {
        delay,
        ..KvEventsConfig::default()
    });
    let sim = start_local(config).await;
    let http = client();
    let mut sub = subscribe(&sim).await;
    // Each batch arrives at least `delay` after its `ts` (when the engine step produced it).
    let first = warm_up(&http, &sim, &mut sub).await;
    assert!(wall_seconds() - first.batch.ts >= delay.as_secs_f64());
    complete(&http, &sim, &unique_prompt()).await;
    let second = next(&mut sub, TIMEOUT).await.expect("a delayed batch");
    assert_eq!(second.seq, first.seq + 1, "order is kept");
    assert!(wall_seconds() - second.batch.ts >= delay.as_secs_f64());
    sim.shutdown().await;
}

fn wall_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
